// The service map: /api/dependencies drawn as a layered graph in SVG. Layers come from the
// longest path from a source (cycles are broken by ignoring edges back to a node on the
// current DFS path); nodes within a layer are ordered by the mean position of their parents
// to reduce crossings; edges are curves with arrowheads and call counts.

import { getDependencies } from './api.js';
import { h, s, serviceColour } from './util.js';

const LOOKBACKS = [['1h', 3600e3], ['6h', 6 * 3600e3], ['1d', 86400e3], ['2d', 2 * 86400e3], ['7d', 7 * 86400e3]];

export function renderDeps(ctx) {
  const { main, params, navigate } = ctx;
  const alive = { v: true };
  ctx.onCleanup(() => { alive.v = false; });
  const lb = LOOKBACKS.find((l) => l[0] === params.get('lookback')) || LOOKBACKS[4];
  const sel = h('select', { id: 'deps-lookback', 'aria-label': 'Time window' },
    LOOKBACKS.map(([v]) => h('option', { value: v, text: `Last ${v}`, selected: v === lb[0] })));
  sel.addEventListener('change', () => navigate(`/dependencies?lookback=${sel.value}`, { replace: true }));
  const body = h('div', { class: 'deps-body', id: 'deps-body' }, h('p', { class: 'muted', text: 'Loading…' }));
  main.append(h('div', { class: 'deps-page' },
    h('div', { class: 'deps-head' }, h('h1', { text: 'Service map' }), h('span', { class: 'spacer' }), sel), body));
  getDependencies(Date.now(), lb[1]).then((links) => {
    if (!alive.v) return;
    if (!links.length) {
      body.replaceChildren(h('div', { class: 'empty', id: 'deps-empty' },
        h('p', { text: 'No dependencies in this time window: spans calling across services create them.' })));
      return;
    }
    body.replaceChildren(graph(links, navigate), table(links));
  }, (e) => {
    if (alive.v) body.replaceChildren(h('p', { class: 'error', role: 'alert', text: `Could not load dependencies: ${e.message}` }));
  });
}

function layout(links) {
  const nodes = new Map();
  const node = (name) => {
    let nd = nodes.get(name);
    if (!nd) {
      nd = { name, out: [], in: [], layer: 0, order: 0, calls: 0 };
      nodes.set(name, nd);
    }
    return nd;
  };
  const edges = [];
  for (const l of links) {
    const a = node(l.parent);
    const b = node(l.child);
    const e = { from: a, to: b, count: l.callCount, back: false };
    a.out.push(e);
    b.in.push(e);
    b.calls += l.callCount;
    edges.push(e);
  }
  // Mark back edges (and self loops) with a DFS from every source, then from the rest.
  const state = new Map();
  const dfs = (start) => {
    const stack = [[start, 0]];
    state.set(start, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [nd, k] = top;
      if (k < nd.out.length) {
        top[1]++;
        const e = nd.out[k];
        const st = state.get(e.to);
        if (st === 1) e.back = true;
        else if (!st) { state.set(e.to, 1); stack.push([e.to, 0]); }
      } else {
        state.set(nd, 2);
        stack.pop();
      }
    }
  };
  const all = [...nodes.values()].sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const nd of all) if (!nd.in.length && !state.get(nd)) dfs(nd);
  for (const nd of all) if (!state.get(nd)) dfs(nd);
  // Longest-path layering over forward edges (Kahn's order).
  const indeg = new Map(all.map((nd) => [nd, nd.in.filter((e) => !e.back).length]));
  const queue = all.filter((nd) => indeg.get(nd) === 0);
  while (queue.length) {
    const nd = queue.shift();
    for (const e of nd.out) {
      if (e.back) continue;
      e.to.layer = Math.max(e.to.layer, nd.layer + 1);
      indeg.set(e.to, indeg.get(e.to) - 1);
      if (indeg.get(e.to) === 0) queue.push(e.to);
    }
  }
  const layers = [];
  for (const nd of all) (layers[nd.layer] ||= []).push(nd);
  layers.forEach((layer, li) => {
    if (li > 0) {
      const key = (nd) => {
        const ps = nd.in.filter((e) => !e.back && e.from.layer < li).map((e) => e.from.order);
        return ps.length ? ps.reduce((x, y) => x + y, 0) / ps.length : 0;
      };
      layer.sort((a, b) => key(a) - key(b) || (a.name < b.name ? -1 : 1));
    }
    layer.forEach((nd, i) => { nd.order = i; });
  });
  return { nodes: all, edges, layers };
}

function graph(links, navigate) {
  const { nodes, edges, layers } = layout(links);
  const NW = 170;
  const NH = 40;
  const GX = 120;
  const GY = 34;
  const tallest = Math.max(...layers.map((l) => l.length));
  const W = layers.length * NW + (layers.length - 1) * GX + 40;
  const H = tallest * NH + (tallest - 1) * GY + 40;
  // Room above for self loops and below for arcs of back edges, only when there are some.
  const loops = edges.some((e) => e.from === e.to);
  const arcs = edges.some((e) => e.from !== e.to && (e.back || e.to.layer <= e.from.layer));
  const top = loops ? 50 : 0;
  const bottom = arcs ? 140 : 0;
  for (const layer of layers) {
    const off = (H - (layer.length * NH + (layer.length - 1) * GY)) / 2;
    layer.forEach((nd, i) => {
      nd.x = 20 + nd.layer * (NW + GX);
      nd.y = off + i * (NH + GY);
    });
  }
  const defs = s('defs', {}, s('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: '10', refY: '5', markerWidth: '8', markerHeight: '8', orient: 'auto-start-reverse' },
    s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow' })));
  const edgeEls = edges.map((e) => {
    let d;
    let lx;
    let ly;
    if (e.from === e.to) {
      const x = e.from.x + NW / 2;
      const y = e.from.y;
      d = `M${x - 20},${y} C${x - 40},${y - 40} ${x + 40},${y - 40} ${x + 20},${y}`;
      lx = x;
      ly = y - 34;
    } else if (!e.back && e.to.layer > e.from.layer) {
      const x1 = e.from.x + NW;
      const y1 = e.from.y + NH / 2;
      const x2 = e.to.x;
      const y2 = e.to.y + NH / 2;
      const mx = (x1 + x2) / 2;
      d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
      lx = mx;
      ly = (y1 + y2) / 2 - 6;
    } else {
      // Back edge (cycle) or same layer: arc below the nodes.
      const x1 = e.from.x + NW / 2;
      const y1 = e.from.y + NH;
      const x2 = e.to.x + NW / 2 + 8;
      const y2 = e.to.y + NH;
      const dy = 50 + Math.abs(x1 - x2) / 6;
      d = `M${x1},${y1} C${x1},${y1 + dy} ${x2},${y2 + dy} ${x2},${y2}`;
      lx = (x1 + x2) / 2;
      ly = Math.max(y1, y2) + dy * 0.75;
    }
    return s('g', { class: 'edge', dataset: { parent: e.from.name, child: e.to.name, calls: String(e.count) } },
      s('title', { text: `${e.from.name} → ${e.to.name}: ${e.count} call${e.count === 1 ? '' : 's'}` }),
      s('path', { d, 'marker-end': 'url(#arrow)' }),
      s('text', { x: lx, y: ly, 'text-anchor': 'middle', class: 'edge-label', text: String(e.count) }));
  });
  const nodeEls = nodes.map((nd) => {
    const g = s('g', { class: 'node', tabindex: '0', role: 'link', transform: `translate(${nd.x},${nd.y})`,
      'aria-label': `${nd.name}: search its traces`, dataset: { service: nd.name } },
    s('title', { text: `${nd.name}\nSearch traces of ${nd.name}` }),
    s('rect', { width: NW, height: NH, rx: 6 }),
    s('rect', { width: 6, height: NH, rx: 3, fill: serviceColour(nd.name) }),
    s('text', { x: 14, y: NH / 2 + 5, class: 'node-label', text: nd.name.length > 20 ? `${nd.name.slice(0, 19)}…` : nd.name }));
    const open = () => navigate(`/search?service=${encodeURIComponent(nd.name)}`);
    g.addEventListener('click', open);
    g.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') open(); });
    return g;
  });
  // Room for self loops above and arcs below.
  return h('div', { class: 'deps-graph' }, s('svg', { id: 'deps-svg', viewBox: `0 ${-top} ${W} ${H + top + bottom}`, width: W, height: H + top + bottom,
    role: 'img', 'aria-label': 'Service dependency graph' }, defs, edgeEls, nodeEls));
}

function table(links) {
  const rows = [...links].sort((a, b) => b.callCount - a.callCount);
  return h('details', { class: 'deps-table' }, h('summary', { text: `${rows.length} dependencies as a table` }),
    h('table', { class: 'kv' }, h('thead', {}, h('tr', {}, h('th', { text: 'Caller' }), h('th', { text: 'Callee' }), h('th', { text: 'Calls' }))),
      h('tbody', {}, rows.map((l) => h('tr', {}, h('td', { text: l.parent }), h('td', { text: l.child }), h('td', { class: 'mono', text: String(l.callCount) }))))));
}
