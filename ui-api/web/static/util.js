// Small shared helpers: DOM building, formatting of times and durations, service colours,
// the logfmt/JSON tag codec Jaeger UI uses in its URLs, and trace-ID validation. Nothing here
// touches the DOM when the module loads, so the trace worker can import it (through api.js).

/**
 * The base path without a trailing slash ('' at the root), set by index.html. (globalThis, not
 * window: this module is also loaded by the trace worker, which has no window and no base.)
 */
export const BASE = (globalThis.TH_BASE || '').replace(/\/+$/, '');

/**
 * Create an element. attrs: plain attributes, plus `class`, `text`, `on<event>` handlers and
 * `dataset` (object). children: nodes or strings (null/undefined/false are skipped).
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVGNS = 'http://www.w3.org/2000/svg';

/** Create an SVG element with attributes and children. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVGNS, tag);
  if (attrs) {
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') el.textContent = v;
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, String(v));
    }
  }
  for (const c of children.flat()) {
    if (c) el.append(c);
  }
  return el;
}

/** A duration in microseconds as a short human string: 850µs, 12.3ms, 4.56s, 2m 3s. */
export function fmtDuration(us) {
  if (!Number.isFinite(us)) return '';
  if (us < 1000) return `${Math.round(us)}µs`;
  if (us < 1_000_000) return `${trim(us / 1000)}ms`;
  if (us < 60_000_000) return `${trim(us / 1_000_000)}s`;
  const m = Math.floor(us / 60_000_000);
  const sec = Math.round((us % 60_000_000) / 1_000_000);
  return `${m}m ${sec}s`;
}

function trim(x) {
  return x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1).replace(/\.0$/, '') : x.toFixed(2).replace(/\.?0+$/, '');
}

const pad2 = (n) => String(n).padStart(2, '0');

/** Epoch microseconds as local "YYYY-MM-DD HH:MM:SS.mmm". */
export function fmtTime(us) {
  const d = new Date(us / 1000);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ` +
    `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

/** Epoch microseconds as a relative "3 minutes ago". */
export function fmtAgo(us) {
  const sec = (Date.now() - us / 1000) / 1000;
  if (sec < 0) return 'in the future';
  if (sec < 60) return `${Math.round(sec)}s ago`;
  if (sec < 3600) return `${Math.round(sec / 60)}m ago`;
  if (sec < 86400) return `${Math.round(sec / 3600)}h ago`;
  return `${Math.round(sec / 86400)}d ago`;
}

/** Value for an <input type=datetime-local> from epoch microseconds (local time). */
export function toLocalInput(us) {
  const d = new Date(us / 1000);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}T${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
}

// A palette of distinct hues with enough contrast on white. A service's colour comes from a
// hash of its name, so it is the same in the results list, the waterfall and the map; when two
// services of one session hash to the same colour, the later one takes the next free colour.
const PALETTE = ['#1f77b4', '#e8590c', '#2b8a3e', '#9c36b5', '#c2255c', '#0b7285', '#5f3dc4',
  '#5c940d', '#8c5a2b', '#c99a06', '#495057', '#f06595'];
const colourOf = new Map();
const taken = new Set();

/** A stable colour for a service name (FNV-1a of the name picks the palette entry). */
export function serviceColour(name) {
  let c = colourOf.get(name);
  if (!c) {
    let x = 0x811c9dc5;
    for (let i = 0; i < name.length; i++) x = Math.imul(x ^ name.charCodeAt(i), 0x01000193);
    let k = (x >>> 0) % PALETTE.length;
    for (let probe = 0; probe < PALETTE.length && taken.has(PALETTE[k]); probe++) k = (k + 1) % PALETTE.length;
    c = PALETTE[k];
    taken.add(c);
    colourOf.set(name, c);
  }
  return c;
}

/** A round step (1, 2 or 5 times a power of ten) near span/parts, for axis ticks. */
export function niceStep(span, parts) {
  const raw = span / parts;
  if (!(raw > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(raw));
  const f = raw / p;
  return (f <= 1 ? 1 : f <= 2 ? 2 : f <= 5 ? 5 : 10) * p;
}

/**
 * Parse tags typed by a person or read from a URL: a JSON object ({"k":"v"}) or logfmt
 * (k=v k2="v 2"). Values are always strings (what /api/traces?tags= expects).
 * @returns {{tags: Object<string,string>, error: string|null}}
 */
export function parseTags(text) {
  const t = (text || '').trim();
  if (!t) return { tags: {}, error: null };
  if (t.startsWith('{')) {
    try {
      const o = JSON.parse(t);
      if (!o || typeof o !== 'object' || Array.isArray(o)) return { tags: {}, error: 'tags: expected a JSON object' };
      const tags = {};
      for (const [k, v] of Object.entries(o)) tags[k] = typeof v === 'string' ? v : JSON.stringify(v);
      return { tags, error: null };
    } catch (e) {
      return { tags: {}, error: `tags: ${e.message}` };
    }
  }
  const tags = {};
  let i = 0;
  while (i < t.length) {
    while (i < t.length && /\s/.test(t[i])) i++;
    if (i >= t.length) break;
    let key = '';
    while (i < t.length && t[i] !== '=' && !/\s/.test(t[i])) key += t[i++];
    if (t[i] !== '=' || !key) return { tags: {}, error: `tags: expected key=value near "${key || t.slice(i, i + 10)}"` };
    i++;
    let val = '';
    if (t[i] === '"') {
      i++;
      while (i < t.length && t[i] !== '"') {
        if (t[i] === '\\' && i + 1 < t.length) i++;
        val += t[i++];
      }
      if (t[i] !== '"') return { tags: {}, error: 'tags: unterminated quote' };
      i++;
    } else {
      while (i < t.length && !/\s/.test(t[i])) val += t[i++];
    }
    tags[key] = val;
  }
  return { tags, error: null };
}

/** Tags as logfmt for the input box. */
export function tagsToLogfmt(tags) {
  return Object.entries(tags).map(([k, v]) => (/[\s"=]/.test(v) || v === '' ? `${k}=${JSON.stringify(v)}` : `${k}=${v}`)).join(' ');
}

/** True for a trace ID the API accepts: 1–32 hex digits. */
export function validTraceId(id) {
  return /^[0-9a-fA-F]{1,32}$/.test(id);
}

/** A span/trace attribute value for display. */
export function fmtValue(v) {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}
