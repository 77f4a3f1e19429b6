// The Jaeger v1 query API (reference/jaeger-api.md §2) and the trace model the views share:
// one pass over a trace's spans that links parents, orders the tree depth-first by start time
// and computes depth, subtree sizes, services, the critical path and the text find searches,
// so views never walk the spans again. The model is built in a worker (trace_worker.js) when
// the browser has workers, so a 20,000-span trace never freezes the page; it is made of typed
// arrays and strings only, so posting it to the page costs little and its arrays are moved,
// not copied. This module is loaded by the page and by the worker: nothing here touches the
// DOM or `window`.

import { BASE, fmtValue } from './util.js';

/** An API error: the HTTP status and the server's message (Jaeger's envelope errors[].msg). */
export class ApiError extends Error {
  constructor(status, msg) {
    super(msg);
    this.status = status;
  }
}

/**
 * GET a URL of the query API and return the envelope's data. The query API may sit behind
 * basic or bearer auth that the browser handles: same-origin credentials go with the request
 * (from a worker too).
 */
export async function fetchJson(url, { signal } = {}) {
  let res;
  try {
    res = await fetch(url, { headers: { Accept: 'application/json' }, credentials: 'same-origin', signal });
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    throw new ApiError(0, `cannot reach the server: ${e.message}`);
  }
  const text = await res.text();
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON: reported below */
  }
  if (!res.ok) {
    const msg = body?.errors?.[0]?.msg ?? (text.trim() || res.statusText);
    throw new ApiError(res.status, msg);
  }
  if (!body) throw new ApiError(res.status, 'the server answered with something that is not JSON');
  if (body.errors?.length && !body.data) throw new ApiError(res.status, body.errors[0].msg);
  return body.data;
}

/** GET {base}/api/<path> and return the envelope's data. */
export async function apiGet(path, params) {
  let url = `${BASE}/api/${path}`;
  if (params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) {
      if (v !== undefined && v !== null && v !== '') q.append(k, String(v));
    }
    const qs = q.toString();
    if (qs) url += `?${qs}`;
  }
  return fetchJson(url);
}

export const getServices = () => apiGet('services').then((d) => d ?? []);
export const getOperations = (svc) => apiGet(`services/${encodeURIComponent(svc)}/operations`).then((d) => d ?? []);
export const searchTraces = (params) => apiGet('traces', params).then((d) => d ?? []);
export const getDependencies = (endTs, lookback) => apiGet('dependencies', { endTs, lookback }).then((d) => d ?? []);

/** Fetch one trace's JSON from an absolute URL; returns the trace (data[0]), 404 when none. */
export async function fetchTrace(url, opts) {
  const data = await fetchJson(url, opts);
  if (!data || !data.length) throw new ApiError(404, 'trace not found');
  return data[0];
}

/** The worker could not be used (none, failed to load, or its answer could not be read). */
class WorkerUnavailable extends Error {}

/**
 * Fetch one trace and build its model: in a worker when the browser has module workers, else
 * (or when the worker fails to start) here. Resolves to the model, whose `builtIn` says where
 * it was built ('worker' or 'main'); rejects with ApiError (404 "trace not found", 401, …)
 * or, once `signal` aborts, with an AbortError (the worker is terminated).
 * Leaves the measures th:trace-fetch, th:trace-build (and th:trace-receive for a worker: from
 * the model built to the model received) and the mark th:trace-model ({detail: {builtIn,
 * fallback}}: fallback says why no worker was used) in the page's performance timeline.
 */
export async function getTrace(id, { signal } = {}) {
  // Absolute: a worker resolves relative URLs against its own script, not the page's base.
  const url = new URL(`${BASE}/api/traces/${encodeURIComponent(id)}`, globalThis.location.href).href;
  let why = 'this browser has no Worker';
  if (typeof Worker === 'function') {
    try {
      return done(await buildInWorker(url, signal));
    } catch (e) {
      if (!(e instanceof WorkerUnavailable)) throw e;
      why = e.message;
    }
  }
  const t0 = performance.now();
  const raw = await fetchTrace(url, { signal });
  const t1 = performance.now();
  const tr = buildTrace(raw);
  performance.measure('th:trace-fetch', { start: t0, end: t1 });
  performance.measure('th:trace-build', { start: t1, end: performance.now() });
  tr.builtIn = 'main';
  tr.fallback = why;
  return done(tr);
}

function done(tr) {
  performance.mark('th:trace-model', { detail: { builtIn: tr.builtIn, fallback: tr.fallback ?? null } });
  return tr;
}

/**
 * Run trace_worker.js (a module worker next to this file, so under the base path) on one URL.
 * Rejects with WorkerUnavailable when the worker cannot start (blocked, script missing, no
 * module workers) before it said it was running, so the caller builds the model itself.
 */
function buildInWorker(url, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DOMException('the trace view was left', 'AbortError'));
      return;
    }
    let w;
    try {
      w = new Worker(new URL('./trace_worker.js', import.meta.url), { type: 'module', name: 'tracehouse-trace' });
    } catch (e) {
      reject(new WorkerUnavailable(`the worker could not be created: ${e.message}`));
      return;
    }
    let running = false; // the worker's script loaded and said so
    const stop = () => {
      w.terminate();
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      stop();
      reject(new DOMException('the trace view was left', 'AbortError'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    w.onmessage = (ev) => {
      const m = ev.data;
      if (m.type === 'ready') {
        running = true;
        return;
      }
      stop();
      if (m.type === 'model') {
        const rec = performance.now();
        const at = (epochMs) => Math.max(0, epochMs - performance.timeOrigin);
        performance.measure('th:trace-fetch', { start: at(m.timings.fetchStart), end: at(m.timings.fetchEnd) });
        performance.measure('th:trace-build', { start: at(m.timings.fetchEnd), end: at(m.timings.buildEnd) });
        performance.measure('th:trace-receive', { start: Math.min(rec, at(m.timings.buildEnd)), end: rec });
        m.model.builtIn = 'worker';
        resolve(m.model);
      } else {
        reject(new ApiError(m.status, m.message));
      }
    };
    w.onerror = (ev) => {
      ev.preventDefault();
      stop();
      const msg = ev.message || 'the worker failed to load';
      reject(running ? new ApiError(0, `building the trace failed: ${msg}`) : new WorkerUnavailable(msg));
    };
    w.onmessageerror = () => {
      stop();
      reject(new WorkerUnavailable('the model sent by the worker could not be read'));
    };
    w.postMessage({ url });
  });
}

/** The ArrayBuffers of a model: moved, not copied, when it is posted. */
export function modelTransfer(tr) {
  return Object.values(tr).filter((v) => ArrayBuffer.isView(v)).map((v) => v.buffer);
}

/** Bits of the model's `flags`. */
export const F_ERROR = 1;
export const F_CRITICAL = 2;

// Text in the model is UTF-8 in typed arrays rather than strings: a posted string is copied
// (about 25 ms per 5 MB on the receiving thread), a posted ArrayBuffer is moved for nothing.
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

const NON_ASCII = /[^\x00-\x7f]/;

/** The length of a string in UTF-8 as TextEncoder writes it (a lone surrogate becomes U+FFFD). */
function utf8Length(x) {
  if (!NON_ASCII.test(x)) return x.length;
  let n = 0;
  for (let i = 0; i < x.length; i++) {
    const c = x.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if ((c & 0xfc00) === 0xd800 && (x.charCodeAt(i + 1) & 0xfc00) === 0xdc00) { n += 4; i++; }
    else n += 3;
  }
  return n;
}

/**
 * Strings as one UTF-8 array and byte offsets: item k is bytes[off[k] .. off[k + 1]]. One
 * encode of the joined text (an encode per string costs more in calls than in bytes).
 */
function pack(list) {
  const off = new Int32Array(list.length + 1);
  let len = 0;
  for (let k = 0; k < list.length; k++) {
    off[k] = len;
    len += utf8Length(list[k]);
  }
  off[list.length] = len;
  const bytes = utf8.encode(list.join(''));
  if (bytes.length !== len) throw new Error('UTF-8 length mismatch');
  return [bytes, off];
}

const unpack = (bytes, off, k) => fromUtf8.decode(bytes.subarray(off[k], off[k + 1]));

/** The span ID of span i. */
export function spanId(tr, i) {
  return unpack(tr.idBytes, tr.idOff, i);
}

/** Entry k of the model's string table (service, operation and kind names); decoded once. */
export function str(tr, k) {
  const cache = tr.strCache || (tr.strCache = new Array(tr.strOff.length - 1));
  return cache[k] ?? (cache[k] = unpack(tr.strBytes, tr.strOff, k));
}

/** The attributes, events, references and warnings of span i: {tags, logs, references, warnings}. */
export function spanDetail(tr, i) {
  return JSON.parse(unpack(tr.detailBytes, tr.detailOff, i));
}

/**
 * The lower-cased text find searches, one string per span (service, operation, span ID,
 * attributes, process tags, event fields as key=value lines). Decoded on first use and kept.
 */
export function spanHay(tr) {
  if (!tr.hay) tr.hay = fromUtf8.decode(tr.hayBytes).split('\0');
  return tr.hay;
}

/** The display index of the first span with this ID, or -1 (compares bytes, decodes nothing). */
export function spanIndex(tr, spanID) {
  const want = utf8.encode(String(spanID));
  const { idBytes, idOff } = tr;
  for (let i = 0; i + 1 < idOff.length; i++) {
    const o = idOff[i];
    if (idOff[i + 1] - o !== want.length) continue;
    let k = 0;
    while (k < want.length && idBytes[o + k] === want[k]) k++;
    if (k === want.length) return i;
  }
  return -1;
}

/**
 * Build the view model of a Jaeger JSON trace: plain data only (structured-cloneable: typed
 * arrays, a Map, small objects; text is UTF-8 in typed arrays, read with spanId, str,
 * spanDetail and spanHay), indexed by span in display order (depth-first, children by start
 * time). Per span i:
 *   idBytes/idOff        its span ID (spanId)
 *   parent[i]            display index of the parent, -1 for a root
 *   level[i]             depth (0 for a root)
 *   size[i]              spans in its subtree, itself included: the subtree is [i, i + size[i])
 *   nkids[i]             number of children (the children are i+1, then c + size[c] within it)
 *   rel[i], dur[i]       start relative to the trace start, and duration (µs)
 *   flags[i]             F_ERROR | F_CRITICAL (on the critical path)
 *   svc[i], op[i], kind[i]  indices into the string table strBytes/strOff (str): service,
 *                        operation, span.kind or ''
 *   proc[i]              index into `procs` ({serviceName, tags})
 *   detailBytes[detailOff[i] .. detailOff[i + 1]]  UTF-8 JSON of {tags, logs, references,
 *                        warnings}, parsed when shown (spanDetail)
 *   hayBytes             UTF-8 of the lower-cased text find searches, one NUL-separated part
 *                        per span (spanHay)
 * and for the trace: traceID, name, start/end/duration (µs), depth (levels), errors,
 * services (Map name → span count), warnings, n; and from getTrace, builtIn.
 */
export function buildTrace(raw) {
  const procTable = raw.processes || {};
  const rs = raw.spans || [];
  const n = rs.length;
  const strings = [];
  const strIdx = new Map();
  const intern = (v) => {
    const str = v === undefined || v === null ? '' : String(v);
    let k = strIdx.get(str);
    if (k === undefined) {
      k = strings.length;
      strings.push(str);
      strIdx.set(str, k);
    }
    return k;
  };
  // One entry per process (spans share them); a span without a known process gets one per
  // service name, without tags.
  const procs = [];
  const procIdx = new Map();
  const procOf = (sp) => {
    const p = procTable[sp.processID];
    const key = p ? `p:${sp.processID}` : `s:${sp.process?.serviceName || 'unknown-service'}`;
    let k = procIdx.get(key);
    if (k === undefined) {
      k = procs.length;
      procs.push(p ? { serviceName: p.serviceName, tags: p.tags || [] }
        : { serviceName: sp.process?.serviceName || 'unknown-service', tags: [] });
      procIdx.set(key, k);
    }
    return k;
  };

  // Pass 1, in the order received.
  const start0 = new Float64Array(n);
  const dur0 = new Float64Array(n);
  const proc0 = new Int32Array(n);
  const kind0 = new Int32Array(n);
  const err0 = new Uint8Array(n);
  const byId = new Map();
  for (let i = 0; i < n; i++) {
    const sp = rs[i];
    proc0[i] = procOf(sp);
    start0[i] = Number(sp.startTime) || 0;
    dur0[i] = Number(sp.duration) || 0;
    let err;
    let kind = '';
    for (const t of sp.tags || []) {
      if (t.key === 'error') err = t.value;
      else if (t.key === 'span.kind') kind = t.value;
    }
    err0[i] = err === true || err === 'true' ? 1 : 0;
    kind0[i] = intern(kind);
    if (!byId.has(sp.spanID)) byId.set(sp.spanID, i);
  }
  // The parent is the first CHILD_OF reference in this trace, else the first FOLLOWS_FROM
  // (Jaeger UI takes the first reference of either kind; links also arrive as FOLLOWS_FROM).
  const parent0 = new Int32Array(n).fill(-1);
  const kids = new Array(n).fill(null);
  const roots = [];
  for (let i = 0; i < n; i++) {
    const refs = rs[i].references || [];
    let p = -1;
    for (const r of refs) {
      if (r.refType === 'CHILD_OF' && byId.has(r.spanID) && byId.get(r.spanID) !== i) { p = byId.get(r.spanID); break; }
    }
    if (p < 0 && !refs.some((r) => r.refType === 'CHILD_OF')) {
      for (const r of refs) {
        if (byId.has(r.spanID) && byId.get(r.spanID) !== i) { p = byId.get(r.spanID); break; }
      }
    }
    parent0[i] = p;
    if (p >= 0) (kids[p] || (kids[p] = [])).push(i);
    else roots.push(i);
  }
  const byStart = (a, b) => {
    if (start0[a] !== start0[b]) return start0[a] - start0[b];
    const x = rs[a].spanID;
    const y = rs[b].spanID;
    return x < y ? -1 : x > y ? 1 : a - b;
  };
  roots.sort(byStart);
  // Iterative depth-first order; a visited mark guards against reference cycles.
  const order = new Int32Array(n);
  let nOrder = 0;
  const depthOf = new Int32Array(n);
  const seen = new Uint8Array(n);
  const stack = [];
  const visit = (r) => {
    stack.push(r, 0);
    while (stack.length) {
      const d = stack.pop();
      const i = stack.pop();
      if (seen[i]) continue;
      seen[i] = 1;
      depthOf[i] = d;
      order[nOrder++] = i;
      const list = kids[i];
      if (list) {
        list.sort(byStart);
        for (let k = list.length - 1; k >= 0; k--) stack.push(list[k], d + 1);
      }
    }
  };
  for (const r of roots) visit(r);
  // Spans only reachable through a cycle become roots of their own.
  for (let i = 0; i < n; i++) {
    if (!seen[i]) visit(i);
  }
  const newIdx = new Int32Array(n);
  for (let k = 0; k < n; k++) newIdx[order[k]] = k;
  let t0 = Infinity;
  let t1 = -Infinity;
  for (let i = 0; i < n; i++) {
    if (start0[i] < t0) t0 = start0[i];
    if (start0[i] + dur0[i] > t1) t1 = start0[i] + dur0[i];
  }
  if (!n) t0 = t1 = 0;

  // Pass 2, in display order.
  const tr = {
    traceID: raw.traceID,
    name: raw.traceID,
    start: t0,
    end: t1,
    duration: t1 - t0,
    depth: 0,
    errors: 0,
    services: new Map(),
    warnings: raw.warnings || [],
    n,
    idBytes: null,
    idOff: null,
    parent: new Int32Array(n),
    level: new Int32Array(n),
    size: new Int32Array(n).fill(1),
    nkids: new Int32Array(n),
    rel: new Float64Array(n),
    dur: new Float64Array(n),
    flags: new Uint8Array(n),
    svc: new Int32Array(n),
    op: new Int32Array(n),
    kind: new Int32Array(n),
    proc: new Int32Array(n),
    strBytes: null,
    strOff: null,
    procs,
    detailBytes: null,
    detailOff: null,
    hayBytes: null,
  };
  const ids = new Array(n);
  const details = new Array(n);
  const hay = new Array(n);
  let maxDepth = 0;
  for (let k = 0; k < n; k++) {
    const i = order[k];
    const sp = rs[i];
    const d = depthOf[i];
    const pr = procs[proc0[i]];
    ids[k] = String(sp.spanID ?? '');
    tr.parent[k] = parent0[i] >= 0 && d > 0 ? newIdx[parent0[i]] : -1;
    tr.level[k] = d;
    let nk = 0;
    for (const c of kids[i] || []) if (depthOf[c] === d + 1) nk++;
    tr.nkids[k] = nk;
    tr.rel[k] = start0[i] - t0;
    tr.dur[k] = dur0[i];
    tr.flags[k] = err0[i] ? F_ERROR : 0;
    tr.svc[k] = intern(pr.serviceName);
    tr.op[k] = intern(sp.operationName);
    tr.kind[k] = kind0[i];
    tr.proc[k] = proc0[i];
    const tags = sp.tags || [];
    const logs = sp.logs || [];
    details[k] = JSON.stringify({ tags, logs, references: sp.references || [], warnings: sp.warnings || [] });
    const parts = [pr.serviceName, sp.operationName, sp.spanID];
    for (const t of tags) parts.push(`${t.key}=${fmtValue(t.value)}`);
    for (const t of pr.tags) parts.push(`${t.key}=${fmtValue(t.value)}`);
    for (const l of logs) for (const f of l.fields || []) parts.push(`${f.key}=${fmtValue(f.value)}`);
    const text = parts.join('\n');
    hay[k] = text.includes('\0') ? text.replaceAll('\0', ' ') : text;
    if (d > maxDepth) maxDepth = d;
    if (err0[i]) tr.errors++;
    tr.services.set(pr.serviceName, (tr.services.get(pr.serviceName) || 0) + 1);
  }
  [tr.idBytes, tr.idOff] = pack(ids);
  [tr.detailBytes, tr.detailOff] = pack(details);
  tr.hayBytes = utf8.encode(hay.join('\0').toLowerCase());
  // Subtree sizes: a parent comes before its children in display order.
  for (let k = n - 1; k >= 0; k--) {
    if (tr.parent[k] >= 0) tr.size[tr.parent[k]] += tr.size[k];
  }
  tr.depth = n ? maxDepth + 1 : 0;
  if (n) tr.name = `${strings[tr.svc[0]]}: ${strings[tr.op[0]]}`;
  [tr.strBytes, tr.strOff] = pack(strings);
  markCriticalPath(tr);
  return tr;
}

/**
 * The critical path: the spans that determine when the trace ends. From the root (the root
 * that ends last), walk back from its end: the child that finished last before the current
 * point is on the path; the point then moves to that child's start, and the walk continues
 * among the children that finished before it; each chosen child is walked the same way.
 * Sets F_CRITICAL in tr.flags.
 */
export function markCriticalPath(tr) {
  const { n, size, rel, dur, flags } = tr;
  const end = (i) => rel[i] + dur[i];
  let root = -1;
  // The roots are the top-level subtrees, which follow each other in display order.
  for (let i = 0; i < n; i += size[i]) if (root < 0 || end(i) > end(root)) root = i;
  if (root < 0) return;
  const work = [root];
  const kids = [];
  while (work.length) {
    const s = work.pop();
    flags[s] |= F_CRITICAL;
    kids.length = 0;
    for (let c = s + 1; c < s + size[s]; c += size[c]) kids.push(c);
    // Latest end first; a stable sort keeps ties in start order.
    if (kids.length > 1) kids.sort((a, b) => end(b) - end(a));
    let point = end(s);
    for (const c of kids) {
      if (rel[c] >= point) continue; // starts after the point: ran in parallel, not blocking it
      if (end(c) <= rel[s]) continue; // entirely before the parent began (skew)
      work.push(c);
      point = rel[c];
      if (point <= rel[s]) break;
    }
  }
}
