// The single-page shell: routes on Jaeger UI's own paths under the base path
// ({base}/search, {base}/trace/<id>, {base}/dependencies), history.pushState navigation for
// in-app links, and the trace-ID lookup box in the top bar.

import { BASE, validTraceId } from './util.js';
import { renderSearch } from './search.js';
import { renderTrace } from './trace.js';
import { renderDeps } from './deps.js';

const main = document.getElementById('main');
let cleanup = null; // the current view's teardown (listeners, timers)

/** The route part of the current location: the path with the base removed. */
function routePath() {
  let p = window.location.pathname;
  if (BASE && p.startsWith(BASE)) p = p.slice(BASE.length);
  return p || '/';
}

/** Navigate inside the app to a route path ('/search?…'); replace instead of push when asked. */
export function navigate(to, { replace = false } = {}) {
  const url = BASE + (to.startsWith('/') ? to : `/${to}`);
  if (replace) window.history.replaceState(null, '', url);
  else window.history.pushState(null, '', url);
  render();
}

function setActiveNav(name) {
  for (const a of document.querySelectorAll('nav a[data-route]')) {
    if (a.dataset.route === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function render() {
  if (cleanup) {
    try { cleanup(); } catch { /* a view's teardown must not block the next view */ }
    cleanup = null;
  }
  main.replaceChildren();
  const p = routePath();
  const params = new URLSearchParams(window.location.search);
  const ctx = { main, params, navigate, onCleanup: (fn) => { cleanup = fn; } };
  let m;
  if ((m = /^\/trace\/([^/]+)\/?$/.exec(p))) {
    setActiveNav('');
    const id = decodeURIComponent(m[1]);
    document.title = `Trace ${id} · Tracehouse`;
    renderTrace(ctx, id);
  } else if (/^\/dependencies\/?$/.test(p)) {
    setActiveNav('dependencies');
    document.title = 'Service map · Tracehouse';
    renderDeps(ctx);
  } else if (/^\/(search\/?)?$/.test(p) || p === '/index.html') {
    setActiveNav('search');
    document.title = 'Search · Tracehouse';
    renderSearch(ctx);
  } else {
    setActiveNav('');
    document.title = 'Not found · Tracehouse';
    main.append(Object.assign(document.createElement('p'), { className: 'pad error', textContent: `No page at ${p}.` }));
  }
}

// In-app links (data-nav, or any same-origin link under the base) use pushState; modifier
// clicks keep the browser's behaviour (new tab, etc.).
document.addEventListener('click', (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = ev.target.closest('a[href]');
  if (!a || a.target || a.hasAttribute('download')) return;
  const url = new URL(a.href, window.location.href);
  if (url.origin !== window.location.origin) return;
  if (BASE && !url.pathname.startsWith(`${BASE}/`) && url.pathname !== BASE) return;
  const rel = url.pathname.slice(BASE.length) + url.search;
  if (!/^\/(search|trace|dependencies)\b/.test(rel) && rel !== '/' && rel !== '') return;
  ev.preventDefault();
  navigate(rel || '/search');
});

window.addEventListener('popstate', render);

// The lookup box: a bad ID is refused with a message here; a well-formed one opens the trace
// view, which says "trace not found" when the server does not have it.
const lookup = document.getElementById('lookup');
const lookupMsg = document.getElementById('lookup-msg');
lookup.addEventListener('submit', (ev) => {
  ev.preventDefault();
  const input = lookup.elements.id;
  const id = input.value.trim();
  if (!id) {
    lookupMsg.textContent = 'Enter a trace ID.';
    return;
  }
  if (!validTraceId(id)) {
    lookupMsg.textContent = 'Not a trace ID: use 1–32 hex digits.';
    input.setAttribute('aria-invalid', 'true');
    return;
  }
  lookupMsg.textContent = '';
  input.removeAttribute('aria-invalid');
  input.value = '';
  navigate(`/trace/${id.toLowerCase()}`);
});
lookup.elements.id.addEventListener('input', () => {
  lookupMsg.textContent = '';
  lookup.elements.id.removeAttribute('aria-invalid');
});

// Keyboard: "/" focuses the lookup box unless typing somewhere already.
document.addEventListener('keydown', (ev) => {
  if (ev.key === '/' && !/^(INPUT|TEXTAREA|SELECT)$/.test(document.activeElement?.tagName || '')) {
    ev.preventDefault();
    lookup.elements.id.focus();
  }
});

render();
