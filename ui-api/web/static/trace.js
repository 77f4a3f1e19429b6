// The trace view: header, a virtualised waterfall (only the rows in view plus a margin are in
// the DOM; layout is computed once per trace, so a 20,000-span trace scrolls smoothly),
// collapse/expand, the critical path, search within the trace and the span details panel.
// The model (api.js buildTrace: typed arrays indexed by span in display order) is built in a
// worker while the page shows a loading state and stays usable; leaving the view cancels it.

import { ApiError, F_CRITICAL, F_ERROR, getTrace, spanDetail, spanHay, spanId, spanIndex, str } from './api.js';
import { fmtDuration, fmtTime, fmtValue, h, serviceColour, validTraceId } from './util.js';

const ROW = 26; // px: fixed row height, the virtualisation depends on it
const MARGIN = 12; // rows rendered above and below the visible window
const INDENT = 14; // px per depth level
const MAX_INDENT_LEVELS = 40; // deeper spans stop moving right (their depth is still shown)

const esc = (v) => String(v).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

export function renderTrace(ctx, id) {
  const { main } = ctx;
  const alive = { v: true };
  const teardown = [];
  const loading = new AbortController(); // leaving the view stops the fetch and the worker
  ctx.onCleanup(() => { alive.v = false; loading.abort(); teardown.forEach((f) => f()); });
  if (!validTraceId(id)) {
    main.append(h('div', { class: 'pad' }, h('h2', { text: 'Invalid trace ID' }),
      h('p', { class: 'error', id: 'trace-error', role: 'alert', text: `“${id}” is not a trace ID: use 1–32 hex digits.` })));
    return;
  }
  main.append(h('p', { class: 'pad muted loading', id: 'trace-loading', role: 'status', 'aria-busy': 'true' },
    h('span', { class: 'spinner', 'aria-hidden': 'true' }), `Loading trace ${id}…`));
  getTrace(id, { signal: loading.signal }).then((tr) => {
    if (!alive.v) return;
    main.replaceChildren();
    mount(main, tr, teardown);
  }, (e) => {
    if (!alive.v || e?.name === 'AbortError') return;
    const notFound = e instanceof ApiError && e.status === 404;
    main.replaceChildren(h('div', { class: 'pad' },
      h('h2', { text: notFound ? 'Trace not found' : 'Could not load the trace' }),
      h('p', { class: 'error', id: 'trace-error', role: 'alert',
        text: notFound ? `trace not found: no trace with ID ${id} is stored.` : e.message }),
      h('p', {}, h('a', { href: 'search', 'data-nav': true, text: 'Back to search' }))));
  });
}

function mount(main, tr, teardown) {
  const { n, parent, size, level, nkids, rel, dur, flags } = tr;
  // Spans are in depth-first order, so a subtree is the contiguous range [i, i + size[i]):
  // collapsing skips ranges without walking them.
  const svcName = (i) => str(tr, tr.svc[i]);
  const opName = (i) => str(tr, tr.op[i]);
  const collapsed = new Uint8Array(n);
  let matches = []; // span indices matching the find box, in display order
  let matchSet = new Set();
  let current = -1; // index into matches
  let filterOnly = false;
  let showCritical = true;
  let selected = -1;
  let visible = new Int32Array(0);
  let posOf = new Int32Array(n); // span index -> row position in `visible`, -1 when hidden

  function computeVisible() {
    const out = new Int32Array(n);
    let k = 0;
    if (filterOnly && matches.length) {
      // Matches and their ancestors, so each match keeps its place in the tree.
      const keep = new Uint8Array(n);
      for (const m of matches) {
        for (let a = m; a >= 0 && !keep[a]; a = parent[a]) keep[a] = 1;
      }
      for (let i = 0; i < n; i++) if (keep[i]) out[k++] = i;
    } else {
      for (let i = 0; i < n;) {
        out[k++] = i;
        i += collapsed[i] ? size[i] : 1;
      }
    }
    visible = out.subarray(0, k);
    posOf = new Int32Array(n).fill(-1);
    for (let j = 0; j < k; j++) posOf[visible[j]] = j;
    spacer.style.height = `${k * ROW}px`;
    countEl.textContent = k === n ? `${n} spans` : `${k} of ${n} spans shown`;
  }

  // ---- header
  const svcList = [...tr.services.entries()].sort((a, b) => b[1] - a[1]);
  const head = h('header', { class: 'trace-head' },
    h('div', { class: 'trace-title' },
      h('h1', { id: 'trace-name' }, tr.name),
      tr.errors ? h('span', { class: 'badge err', id: 'trace-errors' }, `${tr.errors} error${tr.errors > 1 ? 's' : ''}`) : null,
      h('span', { class: 'mono muted trace-id', id: 'trace-id', title: 'Trace ID' }, tr.traceID)),
    h('dl', { class: 'trace-meta' },
      meta('Start', fmtTime(tr.start), 'meta-start'), meta('Duration', fmtDuration(tr.duration), 'meta-duration'),
      meta('Services', String(tr.services.size), 'meta-services'), meta('Depth', String(tr.depth), 'meta-depth'),
      meta('Spans', String(n), 'meta-spans')),
    h('div', { class: 'svc-legend' }, svcList.map(([svc, c]) => h('span', { class: 'svc-chip', dataset: { service: svc } },
      h('i', { style: `background:${serviceColour(svc)}` }), `${svc} (${c})`))),
    tr.warnings.length ? h('p', { class: 'warn', text: `Warnings: ${tr.warnings.join('; ')}` }) : null);

  // ---- toolbar
  const findIn = h('input', { id: 'find', type: 'search', placeholder: 'Find in trace (service, operation, tag, ID)…', spellcheck: 'false',
    'aria-label': 'Find in trace' });
  const findCount = h('span', { class: 'find-count', id: 'find-count', 'aria-live': 'polite' });
  const prevBtn = h('button', { type: 'button', id: 'find-prev', title: 'Previous match (Shift+Enter)', 'aria-label': 'Previous match' }, '↑');
  const nextBtn = h('button', { type: 'button', id: 'find-next', title: 'Next match (Enter)', 'aria-label': 'Next match' }, '↓');
  const filterCb = h('input', { type: 'checkbox', id: 'find-filter' });
  const critCb = h('input', { type: 'checkbox', id: 'critical-toggle', checked: true });
  const countEl = h('span', { class: 'muted', id: 'row-count' });
  const tools = h('div', { class: 'trace-tools', role: 'toolbar', 'aria-label': 'Trace tools' },
    h('button', { type: 'button', id: 'expand-all', onclick: () => { collapsed.fill(0); refresh(); } }, 'Expand all'),
    h('button', { type: 'button', id: 'collapse-all', onclick: () => {
      for (let i = 0; i < n; i++) collapsed[i] = nkids[i] ? 1 : 0;
      refresh();
    } }, 'Collapse all'),
    h('label', { class: 'check', title: 'The spans that determine when the trace ends' }, critCb, ' Critical path', h('span', { class: 'crit-key' })),
    h('span', { class: 'spacer' }),
    findIn, findCount, prevBtn, nextBtn,
    h('label', { class: 'check' }, filterCb, ' Only matches'),
    countEl);

  // ---- waterfall
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  const ruler = h('div', { class: 'wf-ruler', id: 'wf-ruler' }, ticks.map((t) => h('span', {
    class: 'tick', style: `left:${t * 100}%`, 'data-edge': t === 0 ? 'start' : t === 1 ? 'end' : null,
  }, t === 0 ? '0' : fmtDuration(tr.duration * t))));
  const wfHead = h('div', { class: 'wf-head' }, h('div', { class: 'wf-name-col' }, 'Service · Operation'), ruler);
  const rowsEl = h('div', { class: 'wf-rows', id: 'wf-rows', role: 'rowgroup' });
  const spacer = h('div', { class: 'wf-spacer' }, rowsEl);
  const scroller = h('div', { class: 'wf-scroll', id: 'wf-scroll', tabindex: '0', role: 'treegrid',
    'aria-label': 'Span waterfall; arrow keys move, Enter opens details, Left/Right collapse/expand' }, spacer);
  const details = h('section', { class: 'details', id: 'span-details', hidden: true, 'aria-label': 'Span details' });
  const wf = h('div', { class: 'wf' }, wfHead, scroller);
  // data-model: where the model was built ('worker', or 'main' when workers are unavailable).
  main.append(h('div', { class: 'trace-page', dataset: { model: tr.builtIn || 'main' } }, head, tools, wf, details));

  function rowHtml(i) {
    const depth = level[i];
    const svc = svcName(i);
    const isErr = (flags[i] & F_ERROR) !== 0;
    const left = tr.duration > 0 ? (rel[i] / tr.duration) * 100 : 0;
    const width = tr.duration > 0 ? Math.max((dur[i] / tr.duration) * 100, 0.15) : 100;
    const colour = serviceColour(svc);
    const ind = Math.min(depth, MAX_INDENT_LEVELS) * INDENT;
    const hasKids = nkids[i] > 0;
    const cls = ['wf-row'];
    if (i === selected) cls.push('selected');
    if (isErr) cls.push('error');
    if (showCritical && flags[i] & F_CRITICAL) cls.push('critical');
    if (matchSet.has(i)) cls.push('match');
    if (current >= 0 && matches[current] === i) cls.push('current');
    // The duration label: right of the bar when there is room, else inside its right end
    // (wide bars), else left of it.
    const labelRight = left + width < 85;
    const labelInside = !labelRight && width > 8;
    const depthNote = depth > MAX_INDENT_LEVELS ? `<span class="deep">${depth}</span>` : '';
    return `<div class="${cls.join(' ')}" role="row" data-index="${i}" data-span-id="${esc(spanId(tr, i))}" data-depth="${depth}"` +
      ` aria-level="${depth + 1}"${hasKids ? ` aria-expanded="${collapsed[i] ? 'false' : 'true'}"` : ''}` +
      ` aria-selected="${i === selected}" style="top:${posOf[i] * ROW}px">` +
      `<div class="wf-name" role="gridcell" style="padding-left:${ind + 4}px">` +
      (hasKids ? `<button type="button" class="tog" tabindex="-1" data-toggle="${i}" aria-label="${collapsed[i] ? 'Expand' : 'Collapse'}">${collapsed[i] ? '▸' : '▾'}</button>`
        : '<span class="tog-pad"></span>') +
      `<span class="svc-bar" style="background:${colour}"></span>${depthNote}` +
      (isErr ? '<span class="err-mark" title="Error">!</span>' : '') +
      `<span class="svc">${esc(svc)}</span> <span class="op">${esc(opName(i))}</span>` +
      (collapsed[i] ? `<span class="hidden-count">+${size[i] - 1}</span>` : '') +
      `</div><div class="wf-time" role="gridcell">` +
      `<span class="bar" style="left:${left}%;width:${width}%;background:${colour}"></span>` +
      `<span class="dur ${labelRight ? 'r' : labelInside ? 'in' : 'l'}" style="${labelRight ? `left:calc(${left + width}% + 4px)`
        : labelInside ? `right:calc(${100 - left - width}% + 4px)` : `right:calc(${100 - left}% + 4px)`}">${fmtDuration(dur[i])}</span>` +
      `</div></div>`;
  }

  let lastRange = '';
  let laidOut = false; // the first draw reads no geometry (a forced layout of the new page)
  function draw(force) {
    let viewH = window.innerHeight;
    let top = 0;
    if (laidOut) {
      viewH = scroller.clientHeight || 600;
      // After a collapse the list can be shorter than the old scroll offset: clamp now rather
      // than render an empty window until the browser's own clamp fires a scroll event.
      const maxTop = Math.max(0, visible.length * ROW - viewH);
      if (scroller.scrollTop > maxTop) scroller.scrollTop = maxTop;
      top = Math.min(scroller.scrollTop, maxTop);
    }
    laidOut = true;
    const first = Math.max(0, Math.floor(top / ROW) - MARGIN);
    const last = Math.min(visible.length, Math.ceil((top + viewH) / ROW) + MARGIN);
    const key = `${first}:${last}`;
    if (!force && key === lastRange) return;
    lastRange = key;
    let html = '';
    for (let j = first; j < last; j++) html += rowHtml(visible[j]);
    rowsEl.innerHTML = html;
  }
  let raf = 0;
  const onScroll = () => {
    if (!raf) raf = requestAnimationFrame(() => { raf = 0; draw(false); });
  };
  scroller.addEventListener('scroll', onScroll, { passive: true });
  const onResize = () => draw(true);
  window.addEventListener('resize', onResize);
  teardown.push(() => { window.removeEventListener('resize', onResize); if (raf) cancelAnimationFrame(raf); });

  function refresh() {
    computeVisible();
    draw(true);
  }

  function scrollToSpan(i) {
    // Make it visible: expand collapsed ancestors.
    let changed = false;
    for (let a = parent[i]; a >= 0; a = parent[a]) {
      if (collapsed[a]) { collapsed[a] = 0; changed = true; }
    }
    if (changed) computeVisible();
    const pos = posOf[i];
    if (pos < 0) return;
    const y = pos * ROW;
    if (y < scroller.scrollTop || y + ROW > scroller.scrollTop + scroller.clientHeight) {
      scroller.scrollTop = Math.max(0, y - scroller.clientHeight / 3);
    }
    draw(true);
  }

  function select(i, { scroll = false } = {}) {
    selected = i;
    if (scroll) scrollToSpan(i);
    else draw(true);
    showDetails(i);
  }

  rowsEl.addEventListener('click', (ev) => {
    const tog = ev.target.closest('[data-toggle]');
    if (tog) {
      const i = Number(tog.dataset.toggle);
      collapsed[i] ^= 1;
      refresh();
      return;
    }
    const row = ev.target.closest('.wf-row');
    if (!row) return;
    const i = Number(row.dataset.index);
    if (i === selected && !details.hidden) {
      selected = -1;
      details.hidden = true;
      draw(true);
    } else {
      select(i);
    }
  });

  scroller.addEventListener('keydown', (ev) => {
    if (!visible.length) return;
    let pos = selected >= 0 ? posOf[selected] : -1;
    if (ev.key === 'ArrowDown' || ev.key === 'ArrowUp') {
      ev.preventDefault();
      pos = Math.max(0, Math.min(visible.length - 1, pos + (ev.key === 'ArrowDown' ? 1 : -1)));
      select(visible[pos], { scroll: true });
    } else if ((ev.key === 'ArrowLeft' || ev.key === 'ArrowRight') && selected >= 0) {
      ev.preventDefault();
      if (nkids[selected]) {
        collapsed[selected] = ev.key === 'ArrowLeft' ? 1 : 0;
        refresh();
      }
    } else if (ev.key === 'Escape') {
      details.hidden = true;
    }
  });

  // ---- search within the trace (the text searched was made with the model, in the worker)
  let findTimer = 0;
  function runFind() {
    const q = findIn.value.trim().toLowerCase();
    matches = [];
    if (q) {
      // Several words: every one must appear in the span (service, operation, tags, logs, IDs).
      const words = q.split(/\s+/);
      const hay = spanHay(tr);
      for (let i = 0; i < n; i++) {
        const hs = hay[i];
        if (words.every((w) => hs.includes(w))) matches.push(i);
      }
    }
    matchSet = new Set(matches);
    current = matches.length ? 0 : -1;
    findCount.textContent = q ? (matches.length ? `1 of ${matches.length}` : 'no matches') : '';
    computeVisible();
    if (current >= 0) scrollToSpan(matches[0]);
    else draw(true);
  }
  function step(d) {
    if (!matches.length) return;
    current = (current + d + matches.length) % matches.length;
    findCount.textContent = `${current + 1} of ${matches.length}`;
    scrollToSpan(matches[current]);
  }
  findIn.addEventListener('input', () => {
    clearTimeout(findTimer);
    findTimer = setTimeout(runFind, n > 2000 ? 200 : 60);
  });
  findIn.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter') {
      ev.preventDefault();
      clearTimeout(findTimer);
      if (findCount.textContent === '' && findIn.value.trim()) runFind();
      else step(ev.shiftKey ? -1 : 1);
    }
  });
  teardown.push(() => clearTimeout(findTimer));
  prevBtn.addEventListener('click', () => step(-1));
  nextBtn.addEventListener('click', () => step(1));
  filterCb.addEventListener('change', () => { filterOnly = filterCb.checked; refresh(); });
  critCb.addEventListener('change', () => { showCritical = critCb.checked; draw(true); });

  // ---- details
  function showDetails(i) {
    const { tags, logs, references: refs, warnings } = spanDetail(tr, i);
    const svc = svcName(i);
    const proc = tr.procs[tr.proc[i]];
    const isErr = (flags[i] & F_ERROR) !== 0;
    const tv = (k) => tags.find((t) => t.key === k)?.value;
    const status = tv('otel.status_code') || (isErr ? 'ERROR' : 'UNSET');
    const statusMsg = tv('otel.status_description');
    const spanLink = (sid) => {
      const k = spanIndex(tr, sid);
      if (k < 0) return h('span', { class: 'mono' }, sid);
      return h('a', { href: '#', class: 'mono', onclick: (ev) => { ev.preventDefault(); select(k, { scroll: true }); } },
        `${sid} (${svcName(k)}: ${opName(k)})`);
    };
    const kv = (list, id) => (list.length
      ? h('table', { class: 'kv', id }, h('tbody', {}, list.map((t) => h('tr', {},
        h('th', { scope: 'row' }, t.key), h('td', { class: t.type === 'string' ? '' : 'mono' }, fmtValue(t.value))))))
      : h('p', { class: 'muted', id, text: 'None' }));
    details.replaceChildren(
      h('div', { class: 'details-head' },
        h('span', { class: 'svc-bar big', style: `background:${serviceColour(svc)}` }),
        h('h2', { id: 'details-title' }, h('span', { class: 'svc' }, svc), ' ', h('span', { class: 'op' }, opName(i))),
        h('span', { class: 'spacer' }),
        h('button', { type: 'button', id: 'details-close', 'aria-label': 'Close details', onclick: () => {
          details.hidden = true; selected = -1; draw(true); scroller.focus();
        } }, '×')),
      h('dl', { class: 'trace-meta', id: 'details-meta' },
        meta('Duration', fmtDuration(dur[i])), meta('Start', `+${fmtDuration(rel[i])}`),
        meta('Kind', str(tr, tr.kind[i]) || 'unspecified', 'details-kind'),
        meta('Status', statusMsg ? `${status}: ${statusMsg}` : status, 'details-status'),
        meta('Span ID', spanId(tr, i), 'details-span-id'), meta('Parent', parent[i] >= 0 ? spanId(tr, parent[i]) : '—'),
        meta('Trace ID', tr.traceID), meta('Critical path', flags[i] & F_CRITICAL ? 'yes' : 'no')),
      section('Attributes', kv(tags, 'details-tags')),
      section(`Process (${proc.serviceName})`, kv(proc.tags || [], 'details-process')),
      section(`Events (${logs.length})`, logs.length
        ? h('ol', { class: 'logs', id: 'details-logs' }, logs.map((l) => h('li', {},
          h('span', { class: 'log-time mono' }, `+${fmtDuration(l.timestamp - (tr.start + rel[i]))}`),
          kv(l.fields || []))))
        : h('p', { class: 'muted', id: 'details-logs', text: 'None' })),
      section(`References (${refs.length})`, refs.length
        ? h('ul', { class: 'refs', id: 'details-refs' }, refs.map((r) => h('li', {},
          h('span', { class: 'badge' }, r.refType === 'CHILD_OF' ? 'child of' : 'follows from / link'), ' ',
          r.traceID === tr.traceID ? spanLink(r.spanID)
            : h('a', { href: `trace/${r.traceID}`, 'data-nav': true, class: 'mono' }, `${r.traceID} / ${r.spanID}`))))
        : h('p', { class: 'muted', id: 'details-refs', text: 'None' })),
      warnings.length ? section('Warnings', h('ul', {}, warnings.map((w) => h('li', { text: w })))) : null);
    details.hidden = false;
    details.scrollTop = 0;
  }

  computeVisible();
  draw(true);
  performance.mark('th:first-rows');
  // Deep link to a span: /trace/<id>?uiFind=<text> as in Jaeger UI.
  const uiFind = new URLSearchParams(window.location.search).get('uiFind');
  if (uiFind) {
    findIn.value = uiFind;
    runFind();
  }
}

function meta(label, value, id) {
  return h('div', { class: 'meta' }, h('dt', { text: label }), h('dd', { id, text: value }));
}

function section(title, body) {
  return h('section', { class: 'dsec' }, h('h3', { text: title }), body);
}
