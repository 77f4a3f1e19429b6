// The Jaeger v1 query API (reference/jaeger-api.md §2) and the trace model the views share:
// one pass over a trace's spans that links parents, orders the tree depth-first by start time
// and computes depth, services and the critical path, so views never walk the spans again.

import { BASE } from './util.js';

/** An API error: the HTTP status and the server's message (Jaeger's envelope errors[].msg). */
export class ApiError extends Error {
  constructor(status, msg) {
    super(msg);
    this.status = status;
  }
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
  let res;
  try {
    res = await fetch(url, { headers: { Accept: 'application/json' } });
  } catch (e) {
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

export const getServices = () => apiGet('services').then((d) => d ?? []);
export const getOperations = (svc) => apiGet(`services/${encodeURIComponent(svc)}/operations`).then((d) => d ?? []);
export const searchTraces = (params) => apiGet('traces', params).then((d) => d ?? []);
export const getDependencies = (endTs, lookback) => apiGet('dependencies', { endTs, lookback }).then((d) => d ?? []);

/** Fetch one trace and build its model. */
export async function getTrace(id) {
  const t0 = performance.now();
  const data = await apiGet(`traces/${encodeURIComponent(id)}`);
  if (!data || !data.length) throw new ApiError(404, 'trace not found');
  const t1 = performance.now();
  const tr = buildTrace(data[0]);
  // Visible in the browser's performance timeline (and read by the tests).
  performance.measure('th:trace-fetch', { start: t0, end: t1 });
  performance.measure('th:trace-build', { start: t1, end: performance.now() });
  return tr;
}

/**
 * Build the view model of a Jaeger JSON trace.
 * Spans come out in display order (depth-first, children by start time), each with:
 * idx, spanID, parent (idx or -1), children (idx[]), depth, service, op, start/end/duration
 * (µs, start relative to the trace start is rel), error, kind, onCritical.
 */
export function buildTrace(raw) {
  const procs = raw.processes || {};
  const n = raw.spans.length;
  const byId = new Map();
  const tmp = new Array(n);
  for (let i = 0; i < n; i++) {
    const sp = raw.spans[i];
    const proc = procs[sp.processID] || { serviceName: sp.process?.serviceName || 'unknown-service', tags: [] };
    const tags = sp.tags || [];
    let err;
    let kind = '';
    for (const t of tags) {
      if (t.key === 'error') err = t.value;
      else if (t.key === 'span.kind') kind = t.value;
    }
    tmp[i] = {
      raw: sp,
      spanID: sp.spanID,
      op: sp.operationName,
      service: proc.serviceName,
      process: proc,
      start: sp.startTime,
      duration: sp.duration,
      end: sp.startTime + sp.duration,
      error: err === true || err === 'true',
      kind,
      parentRaw: -1,
      kids: [],
      // Filled in display order below.
      idx: 0,
      rel: 0,
      depth: 0,
      parent: -1,
      children: null,
      onCritical: false,
      hay: null, // lower-cased text for search within the trace, built lazily
    };
    if (!byId.has(sp.spanID)) byId.set(sp.spanID, i);
  }
  // The parent is the first CHILD_OF reference in this trace, else the first FOLLOWS_FROM
  // (Jaeger UI takes the first reference of either kind; links also arrive as FOLLOWS_FROM).
  const roots = [];
  for (let i = 0; i < n; i++) {
    const refs = tmp[i].raw.references || [];
    let p = -1;
    for (const r of refs) {
      if (r.refType === 'CHILD_OF' && byId.has(r.spanID) && byId.get(r.spanID) !== i) { p = byId.get(r.spanID); break; }
    }
    if (p < 0 && !refs.some((r) => r.refType === 'CHILD_OF')) {
      for (const r of refs) {
        if (byId.has(r.spanID) && byId.get(r.spanID) !== i) { p = byId.get(r.spanID); break; }
      }
    }
    tmp[i].parentRaw = p;
    if (p >= 0) tmp[p].kids.push(i);
    else roots.push(i);
  }
  const byStart = (a, b) => tmp[a].start - tmp[b].start || (tmp[a].spanID < tmp[b].spanID ? -1 : 1);
  roots.sort(byStart);
  // Iterative depth-first order; a visited mark guards against reference cycles.
  const order = [];
  const depthOf = new Int32Array(n);
  const seen = new Uint8Array(n);
  const stack = [];
  const pushKids = (list, d) => {
    for (let k = list.length - 1; k >= 0; k--) stack.push(list[k], d);
  };
  const visit = (r) => {
    stack.push(r, 0);
    while (stack.length) {
      const d = stack.pop();
      const i = stack.pop();
      if (seen[i]) continue;
      seen[i] = 1;
      depthOf[i] = d;
      order.push(i);
      const kids = tmp[i].kids;
      kids.sort(byStart);
      pushKids(kids, d + 1);
    }
  };
  for (const r of roots) visit(r);
  // Spans only reachable through a cycle become roots of their own.
  for (let i = 0; i < n; i++) {
    if (!seen[i]) { roots.push(i); visit(i); }
  }
  const newIdx = new Int32Array(n);
  order.forEach((oldI, k) => { newIdx[oldI] = k; });
  let t0 = Infinity;
  let t1 = -Infinity;
  for (const x of tmp) {
    if (x.start < t0) t0 = x.start;
    if (x.end > t1) t1 = x.end;
  }
  const services = new Map();
  let maxDepth = 0;
  let errors = 0;
  // The span objects are reused in display order (one allocation per span: 20,000-span
  // traces spend their time in the garbage collector otherwise).
  const spans = new Array(order.length);
  for (let k = 0; k < order.length; k++) {
    const oldI = order[k];
    const sp = tmp[oldI];
    const d = depthOf[oldI];
    sp.idx = k;
    sp.rel = sp.start - t0;
    sp.depth = d;
    sp.parent = sp.parentRaw >= 0 && d > 0 ? newIdx[sp.parentRaw] : -1;
    const kids = sp.kids;
    const children = [];
    for (let c = 0; c < kids.length; c++) if (depthOf[kids[c]] === d + 1) children.push(newIdx[kids[c]]);
    sp.children = children;
    if (d > maxDepth) maxDepth = d;
    if (sp.error) errors++;
    services.set(sp.service, (services.get(sp.service) || 0) + 1);
    spans[k] = sp;
  }
  const rootSpans = spans.filter((sp) => sp.parent < 0);
  markCriticalPath(spans, rootSpans);
  const first = rootSpans[0] || spans[0];
  return {
    traceID: raw.traceID,
    spans,
    roots: rootSpans.map((sp) => sp.idx),
    start: t0,
    end: t1,
    duration: t1 - t0,
    services,
    depth: maxDepth + 1,
    errors,
    name: first ? `${first.service}: ${first.op}` : raw.traceID,
    warnings: raw.warnings || [],
  };
}

/**
 * The critical path: the spans that determine when the trace ends. From the root (the root
 * that ends last), walk back from its end: the child that finished last before the current
 * point is on the path; the point then moves to that child's start, and the walk continues
 * among the children that finished before it; each chosen child is walked the same way.
 */
export function markCriticalPath(spans, roots) {
  if (!roots.length) return;
  let root = roots[0];
  for (const r of roots) if (r.end > root.end) root = r;
  const work = [root];
  while (work.length) {
    const sp = work.pop();
    sp.onCritical = true;
    const kids = sp.children.length > 1 ? sp.children.map((c) => spans[c]).sort((a, b) => b.end - a.end)
      : sp.children.map((c) => spans[c]);
    let point = sp.end;
    for (const c of kids) {
      if (c.start >= point) continue; // starts after the point: ran in parallel, not blocking it
      if (c.end <= sp.start) continue; // entirely before the parent began (skew)
      work.push(c);
      point = c.start;
      if (point <= sp.start) break;
    }
  }
}
