// The search page: the form (service, operation, tags, time range, durations, limit) lives in
// the URL with Jaeger UI's query-string names, so every search is a deep link; the results
// list and a duration-over-time scatter plot whose points open the trace.

import { getOperations, getServices, searchTraces } from './api.js';
import { fmtAgo, fmtDuration, fmtTime, h, niceStep, parseTags, s, serviceColour, tagsToLogfmt, toLocalInput } from './util.js';

const LOOKBACKS = [
  ['5m', 'Last 5 minutes', 5 * 60e6], ['15m', 'Last 15 minutes', 15 * 60e6], ['1h', 'Last hour', 3600e6],
  ['2h', 'Last 2 hours', 7200e6], ['6h', 'Last 6 hours', 6 * 3600e6], ['12h', 'Last 12 hours', 12 * 3600e6],
  ['1d', 'Last 24 hours', 86400e6], ['2d', 'Last 2 days', 2 * 86400e6], ['7d', 'Last 7 days', 7 * 86400e6],
  ['custom', 'Custom time range', 0],
];
const lookbackUs = (v) => LOOKBACKS.find((l) => l[0] === v)?.[2] ?? 0;

let servicesCache = null; // the service list, kept while the page lives (refreshed on focus)

/** A one-trace summary for the list: name, counts, duration, errors, services. */
function summarise(t) {
  const ids = new Set(t.spans.map((sp) => sp.spanID));
  let root = null;
  let t0 = Infinity;
  let t1 = -Infinity;
  let errors = 0;
  const services = new Map();
  for (const sp of t.spans) {
    const svc = t.processes?.[sp.processID]?.serviceName ?? 'unknown-service';
    services.set(svc, (services.get(svc) || 0) + 1);
    if (sp.startTime < t0) t0 = sp.startTime;
    if (sp.startTime + sp.duration > t1) t1 = sp.startTime + sp.duration;
    if ((sp.tags || []).some((tg) => tg.key === 'error' && (tg.value === true || tg.value === 'true'))) errors++;
    const hasParent = (sp.references || []).some((r) => r.refType === 'CHILD_OF' && ids.has(r.spanID));
    if (!hasParent && (!root || sp.startTime < root.startTime)) root = sp;
  }
  root = root || t.spans[0];
  const rootSvc = t.processes?.[root.processID]?.serviceName ?? 'unknown-service';
  return {
    traceID: t.traceID,
    name: `${rootSvc}: ${root.operationName}`,
    spans: t.spans.length,
    services: [...services.entries()].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1)),
    start: t0,
    duration: t1 - t0,
    errors,
  };
}

/** Read the form state from URL params (Jaeger UI's names; tags as JSON or logfmt). */
function readState(params) {
  const tagsRaw = params.getAll('tags');
  let tags = {};
  let tagError = null;
  for (const raw of tagsRaw) {
    const r = parseTags(raw);
    if (r.error) tagError = r.error;
    Object.assign(tags, r.tags);
  }
  // The older repeated form tag=key:value.
  for (const kv of params.getAll('tag')) {
    const i = kv.indexOf(':');
    if (i > 0) tags[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const lookback = params.get('lookback') || (params.get('start') ? 'custom' : '1h');
  return {
    service: params.get('service') || '',
    operation: params.get('operation') || '',
    tags,
    tagError,
    lookback: LOOKBACKS.some((l) => l[0] === lookback) ? lookback : 'custom',
    start: params.get('start') || '',
    end: params.get('end') || '',
    minDuration: params.get('minDuration') || '',
    maxDuration: params.get('maxDuration') || '',
    limit: params.get('limit') || '20',
  };
}

/** The API query for a form state: start/end in µs, from the lookback unless custom. */
function apiQuery(st) {
  let end = Number(st.end) || Date.now() * 1000;
  let start = Number(st.start) || end - 3600e6;
  if (st.lookback !== 'custom') {
    end = Date.now() * 1000;
    start = end - lookbackUs(st.lookback);
  }
  return {
    service: st.service,
    operation: st.operation,
    tags: Object.keys(st.tags).length ? JSON.stringify(st.tags) : '',
    start: Math.floor(start),
    end: Math.ceil(end),
    minDuration: st.minDuration,
    maxDuration: st.maxDuration,
    limit: st.limit,
  };
}

export function renderSearch(ctx) {
  const { main, params, navigate } = ctx;
  const st = readState(params);
  const alive = { v: true };
  ctx.onCleanup(() => { alive.v = false; });

  const svcSel = h('select', { id: 'f-service', name: 'service', required: true },
    h('option', { value: '', text: 'Loading services…' }));
  const opSel = h('select', { id: 'f-operation', name: 'operation' }, h('option', { value: '', text: 'All operations' }));
  const tagsIn = h('input', { id: 'f-tags', name: 'tags', type: 'text', value: tagsToLogfmt(st.tags),
    placeholder: 'http.status_code=500 error=true', spellcheck: 'false' });
  const lbSel = h('select', { id: 'f-lookback', name: 'lookback' },
    LOOKBACKS.map(([v, label]) => h('option', { value: v, text: label, selected: v === st.lookback })));
  const now = Date.now() * 1000;
  const startIn = h('input', { id: 'f-start', name: 'start', type: 'datetime-local',
    value: toLocalInput(Number(st.start) || now - 3600e6) });
  const endIn = h('input', { id: 'f-end', name: 'end', type: 'datetime-local', value: toLocalInput(Number(st.end) || now) });
  const custom = h('div', { class: 'custom-range', hidden: st.lookback !== 'custom' },
    field('From', startIn), field('To', endIn));
  const minIn = h('input', { id: 'f-min', name: 'minDuration', type: 'text', value: st.minDuration, placeholder: 'e.g. 100ms', spellcheck: 'false' });
  const maxIn = h('input', { id: 'f-max', name: 'maxDuration', type: 'text', value: st.maxDuration, placeholder: 'e.g. 1.2s', spellcheck: 'false' });
  const limitIn = h('input', { id: 'f-limit', name: 'limit', type: 'number', min: '1', max: '1500', value: st.limit });
  const formMsg = h('p', { class: 'form-msg error', role: 'alert' }, st.tagError || '');
  lbSel.addEventListener('change', () => { custom.hidden = lbSel.value !== 'custom'; });

  const form = h('form', { class: 'search-form', id: 'search-form', 'aria-label': 'Find traces' },
    h('h2', { text: 'Find traces' }),
    field('Service', svcSel), field('Operation', opSel),
    field('Tags', tagsIn, 'logfmt: key=value key2="a b", or JSON'),
    field('Lookback', lbSel), custom,
    h('div', { class: 'row2' }, field('Min duration', minIn), field('Max duration', maxIn)),
    field('Limit results', limitIn),
    formMsg,
    h('button', { type: 'submit', class: 'primary', id: 'f-submit' }, 'Find traces'));

  const results = h('section', { class: 'results', id: 'results', 'aria-live': 'polite' });
  main.append(h('div', { class: 'search-page' }, h('aside', { class: 'search-side' }, form), results));

  const DUR_RE = /^(\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)((\d+(\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h))*$/;
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const parsed = parseTags(tagsIn.value);
    if (parsed.error) { formMsg.textContent = parsed.error; tagsIn.focus(); return; }
    for (const inp of [minIn, maxIn]) {
      const v = inp.value.trim();
      if (v && v !== '0' && !DUR_RE.test(v)) {
        formMsg.textContent = `${inp === minIn ? 'Min' : 'Max'} duration: use a number with a unit, e.g. 250ms, 1.5s, 2m`;
        inp.focus();
        return;
      }
    }
    if (!svcSel.value) { formMsg.textContent = 'Choose a service.'; svcSel.focus(); return; }
    formMsg.textContent = '';
    const q = new URLSearchParams();
    q.set('service', svcSel.value);
    if (opSel.value) q.set('operation', opSel.value);
    if (Object.keys(parsed.tags).length) q.set('tags', JSON.stringify(parsed.tags));
    q.set('lookback', lbSel.value);
    let end = Date.now() * 1000;
    let start = end - lookbackUs(lbSel.value);
    if (lbSel.value === 'custom') {
      start = new Date(startIn.value).getTime() * 1000;
      end = new Date(endIn.value).getTime() * 1000 + 59_999_999; // the "To" minute inclusive
      if (!Number.isFinite(start) || !Number.isFinite(end) || end < start) {
        formMsg.textContent = 'Custom range: "From" must be before "To".';
        return;
      }
    }
    q.set('start', String(Math.floor(start)));
    q.set('end', String(Math.floor(end)));
    if (minIn.value.trim()) q.set('minDuration', minIn.value.trim());
    if (maxIn.value.trim()) q.set('maxDuration', maxIn.value.trim());
    q.set('limit', limitIn.value || '20');
    navigate(`/search?${q.toString()}`);
  });

  // Services, then operations of the chosen service.
  const loadOps = async (svc, selected) => {
    opSel.replaceChildren(h('option', { value: '', text: 'All operations' }));
    if (!svc) return;
    try {
      const ops = await getOperations(svc);
      if (!alive.v || svcSel.value !== svc) return;
      for (const op of ops) opSel.append(h('option', { value: op, text: op, selected: op === selected }));
      if (selected && !ops.includes(selected)) opSel.append(h('option', { value: selected, text: selected, selected: true }));
    } catch (e) {
      formMsg.textContent = `Operations: ${e.message}`;
    }
  };
  svcSel.addEventListener('change', () => loadOps(svcSel.value, ''));
  (async () => {
    try {
      servicesCache = await getServices();
    } catch (e) {
      formMsg.textContent = `Services: ${e.message}`;
      servicesCache = servicesCache || [];
    }
    if (!alive.v) return;
    const list = [...servicesCache];
    if (st.service && !list.includes(st.service)) list.push(st.service);
    svcSel.replaceChildren(h('option', { value: '', text: list.length ? 'Choose a service' : 'No services yet' }),
      ...list.map((sv) => h('option', { value: sv, text: sv, selected: sv === st.service })));
    if (!st.service && list.length === 1) svcSel.value = list[0];
    loadOps(svcSel.value, st.operation);
  })();

  if (st.service) {
    runSearch(st, results, navigate, alive);
  } else {
    results.append(h('div', { class: 'empty' }, h('p', { text: 'Choose a service and press “Find traces”.' })));
  }
}

function field(label, input, hint) {
  return h('label', { class: 'field' }, h('span', { class: 'field-label', text: label }), input,
    hint ? h('span', { class: 'hint', text: hint }) : null);
}

async function runSearch(st, results, navigate, alive) {
  results.replaceChildren(h('p', { class: 'muted', text: 'Searching…' }));
  let traces;
  const t0 = performance.now();
  try {
    traces = await searchTraces(apiQuery(st));
  } catch (e) {
    if (alive.v) results.replaceChildren(h('p', { class: 'error', role: 'alert', text: `Search failed: ${e.message}` }));
    return;
  }
  if (!alive.v) return;
  const took = performance.now() - t0;
  const sums = traces.filter((t) => t.spans?.length).map(summarise);
  if (!sums.length) {
    results.replaceChildren(h('div', { class: 'empty', id: 'no-results' }, h('p', { text: 'No traces match this search.' })));
    return;
  }
  const sortSel = h('select', { id: 'sort', 'aria-label': 'Sort results' },
    h('option', { value: 'recent', text: 'Most recent' }), h('option', { value: 'longest', text: 'Longest first' }),
    h('option', { value: 'shortest', text: 'Shortest first' }), h('option', { value: 'spans', text: 'Most spans' }),
    h('option', { value: 'errors', text: 'Most errors' }));
  const list = h('ol', { class: 'result-list', id: 'result-list' });
  const draw = () => {
    const v = sortSel.value;
    const sorted = [...sums].sort((a, b) => (v === 'longest' ? b.duration - a.duration
      : v === 'shortest' ? a.duration - b.duration : v === 'spans' ? b.spans - a.spans
        : v === 'errors' ? b.errors - a.errors : b.start - a.start));
    list.replaceChildren(...sorted.map((t) => resultItem(t, sums)));
  };
  sortSel.addEventListener('change', draw);
  draw();
  results.replaceChildren(
    scatter(sums, navigate),
    h('div', { class: 'results-head' },
      h('h2', { id: 'result-count', text: `${sums.length} trace${sums.length === 1 ? '' : 's'}` }),
      h('span', { class: 'muted', text: ` in ${Math.round(took)} ms` }), h('span', { class: 'spacer' }), sortSel),
    list);
}

function resultItem(t, all) {
  const maxDur = Math.max(...all.map((x) => x.duration), 1);
  return h('li', { class: 'result', dataset: { traceId: t.traceID } },
    h('a', { class: 'result-link', href: `trace/${t.traceID}`, 'data-nav': true },
      h('div', { class: 'result-top' },
        h('span', { class: 'result-name' }, t.name),
        t.errors ? h('span', { class: 'badge err', title: `${t.errors} span(s) with errors` }, `${t.errors} error${t.errors > 1 ? 's' : ''}`) : null,
        h('span', { class: 'spacer' }),
        h('span', { class: 'result-duration' }, fmtDuration(t.duration))),
      h('div', { class: 'result-bar' }, h('span', { style: `width:${Math.max(0.5, (100 * t.duration) / maxDur)}%` })),
      h('div', { class: 'result-meta' },
        h('span', { class: 'result-spans' }, `${t.spans} span${t.spans === 1 ? '' : 's'}`),
        h('span', { class: 'result-services' }, t.services.map(([svc, n]) => h('span', { class: 'svc-chip', dataset: { service: svc } },
          h('i', { style: `background:${serviceColour(svc)}` }), `${svc} (${n})`))),
        h('span', { class: 'spacer' }),
        h('span', { class: 'result-time', title: fmtTime(t.start) }, `${fmtTime(t.start)} · ${fmtAgo(t.start)}`),
        h('span', { class: 'trace-id mono' }, t.traceID.slice(0, 7)))));
}

/** Duration over start time; each point is a link to its trace. */
function scatter(sums, navigate) {
  const W = 900;
  const H = 180;
  const m = { l: 56, r: 16, t: 12, b: 28 };
  let x0 = Math.min(...sums.map((t) => t.start));
  let x1 = Math.max(...sums.map((t) => t.start));
  if (x1 - x0 < 1000) { x0 -= 500_000; x1 += 500_000; }
  // Room so that the first and last points are not cut by the axes.
  const padX = (x1 - x0) * 0.03;
  x0 -= padX;
  x1 += padX;
  const yStep = niceStep(Math.max(...sums.map((t) => t.duration), 1) * 1.05, 4);
  const yMax = yStep * Math.ceil((Math.max(...sums.map((t) => t.duration), 1) * 1.05) / yStep);
  const X = (v) => m.l + ((v - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (v) => H - m.b - (v / yMax) * (H - m.t - m.b);
  const maxSpans = Math.max(...sums.map((t) => t.spans));
  const g = [];
  for (let v = 0; v <= yMax + yStep / 2; v += yStep) {
    g.push(s('line', { x1: m.l, x2: W - m.r, y1: Y(v), y2: Y(v), class: 'grid' }),
      s('text', { x: m.l - 6, y: Y(v) + 4, 'text-anchor': 'end', class: 'axis', text: v === 0 ? '0' : fmtDuration(v) }));
  }
  for (let i = 0; i <= 4; i++) {
    const v = x0 + ((x1 - x0) * i) / 4;
    const d = new Date(v / 1000);
    g.push(s('text', { x: X(v), y: H - 8, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle', class: 'axis',
      text: d.toLocaleTimeString() }));
  }
  const pts = sums.map((t) => {
    const r = 4 + 6 * Math.sqrt(t.spans / maxSpans);
    const c = s('circle', { cx: X(t.start), cy: Y(t.duration), r, class: `pt${t.errors ? ' err' : ''}`, tabindex: '0',
      role: 'link', 'aria-label': `${t.name}, ${fmtDuration(t.duration)}`, dataset: { traceId: t.traceID } },
    s('title', { text: `${t.name}\n${fmtDuration(t.duration)} · ${t.spans} spans\n${fmtTime(t.start)}` }));
    const open = () => navigate(`/trace/${t.traceID}`);
    c.addEventListener('click', open);
    c.addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); open(); } });
    return c;
  });
  return h('div', { class: 'scatter-wrap' },
    s('svg', { class: 'scatter', id: 'scatter', viewBox: `0 0 ${W} ${H}`, role: 'img',
      'aria-label': 'Trace duration over time' }, g, pts));
}
