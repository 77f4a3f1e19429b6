// The built-in web UI in a real browser (headless Debian Chromium driven by playwright-core)
// against a real tracehouse filled by the official JS SDK: search by service, operation and
// tag; the waterfall's rows, order and nesting against the spans sent; span details; the
// critical path; search within the trace; the service map's edges; trace lookup by ID; deep
// links; a 20,000-span trace whose model is built in a Web Worker (no long main-thread task
// from navigation to the first rows), that renders, scrolls to its last span and never blocks
// the page for a second; the loading state, leaving a loading trace (the worker is
// terminated), the main-thread fallback without workers, errors (404, 401) through the
// worker, the worker's fetch behind basic auth; and the whole UI under base_path /jaeger.
// Screenshots go to $TH_TEST_ARTIFACTS or tests/integration/artifacts/.
//
// While the binary does not serve ui-api/web yet, lib-webui/devserver.mjs serves the sources
// and forwards /api to the binary; once `GET {base}/` on the query port returns the UI, the
// tests use the binary directly.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { freePorts, SOURCE_DIR, Tracehouse } from './lib/harness.mjs';
import { startDevServer } from './lib-webui/devserver.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = process.env.TH_TEST_ARTIFACTS ?? path.join(here, 'artifacts');
const WEB_DIR = path.join(SOURCE_DIR, 'ui-api', 'web');
const haveChromium = fs.existsSync(CHROMIUM);
const skip = haveChromium ? false : `${CHROMIUM} is missing: install Debian's chromium package to run the browser tests`;

// The longest main-thread task allowed from navigation to the first rows of the 20,001-span
// trace. Measured on this 2-core machine while other builds and tests ran (and with a CPU hog
// beside): with the model built on the main thread, 450–1,170 ms (fetch + JSON.parse +
// buildTrace in one task); with the worker, 0–135 ms: what is left is the page's own start
// (module parsing, first layout) and the model's arrival (its arrays are moved, not copied),
// usually none over the 50 ms long-task threshold. 300 ms leaves over 2× the worst seen under
// load and is still well below the old single task.
const LOAD_TASK_BOUND_MS = 300;

function storeConfig(qport, basePath, { htpasswd } = {}) {
  return `
extensions:
${htpasswd ? `  basicauth/query:\n    htpasswd:\n      inline: |\n        ${htpasswd}\n` : ''}  jaeger_storage:
    backends:
      main:
        lmdb:
          path: {out}-data
  jaeger_query:
    storage:
      traces: main
    http:
      endpoint: 127.0.0.1:${qport}
${htpasswd ? '      auth:\n        authenticator: basicauth/query\n' : ''}${basePath ? `    base_path: ${basePath}\n` : ''}receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
        max_request_body_size: 67108864
exporters:
  jaeger_storage_exporter:
    trace_storage: main
service:
  extensions: [jaeger_storage, jaeger_query${htpasswd ? ', basicauth/query' : ''}]
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
`;
}

function request(port, p, { method = 'GET', body, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Poll fn until it returns a truthy value (or throw after ms). */
async function until(fn, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * A tracehouse with the store and query API, and the URL the UI is served at: the binary's
 * own query port when it serves the UI, else the dev server in front of it.
 */
async function startStack(basePath = '') {
  const [qport] = await freePorts(1);
  const th = await Tracehouse.start({ yaml: storeConfig(qport, basePath) });
  await until(async () => {
    try { return (await request(qport, `${basePath}/api/services`)).status === 200; } catch { return false; }
  }, 10_000, 'the query port');
  const root = await request(qport, `${basePath}/`);
  let url;
  let dev = null;
  if (root.status === 200 && /static\/app\.js/.test(root.text)) {
    url = `http://127.0.0.1:${qport}${basePath}`;
  } else {
    dev = await startDevServer({ webDir: WEB_DIR, basePath, apiPort: qport });
    url = dev.url;
  }
  return { th, qport, url, servedByBinary: !dev, close: async () => { await dev?.close(); await th.stop(); } };
}

let playwright;
let browser;
let stack;
const mem = {};
let traceA; // the checkout trace: {traceId, spans: ReadableSpan[]}
let traceB;
const bigTrace = { traceId: '', lastSpanId: '', count: 0 };

function provider(service, captured) {
  return new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service, 'host.name': `${service}-host-1`, 'deployment.environment': 'test' }),
    spanProcessors: [
      new SimpleSpanProcessor(new ProtoExporter({ url: `${stack.th.baseUrl}/v1/traces` })),
      new SimpleSpanProcessor(captured),
    ],
  });
}

/** Send the two small traces over three services with the SDK; return what was exported. */
async function sendSmallTraces() {
  for (const s of ['frontend', 'backend', 'db']) mem[s] = new InMemorySpanExporter();
  const fe = provider('frontend', mem.frontend);
  const be = provider('backend', mem.backend);
  const db = provider('db', mem.db);
  const t0 = Date.now() - 60_000;
  const web = fe.getTracer('web', '2.0.0');
  const api = be.getTracer('api', '1.4.0');
  const pg = db.getTracer('pg', '1.0.0');

  const root = web.startSpan('GET /checkout', { kind: SpanKind.SERVER, startTime: t0,
    attributes: { 'http.request.method': 'GET', 'http.response.status_code': 200, 'customer.tier': 'gold' } });
  const rootCtx = trace.setSpan(context.active(), root);
  const call = web.startSpan('call backend', { kind: SpanKind.CLIENT, startTime: t0 + 10 }, rootCtx);
  const srv = api.startSpan('POST /orders', { kind: SpanKind.SERVER, startTime: t0 + 20,
    attributes: { 'order.items': 3, 'order.total': 99.5, 'order.express': true } }, trace.setSpan(context.active(), call));
  const srvCtx = trace.setSpan(context.active(), srv);
  const validate = api.startSpan('validate', { kind: SpanKind.INTERNAL, startTime: t0 + 25,
    links: [{ context: root.spanContext(), attributes: { why: 'audit' } }] }, srvCtx);
  validate.addEvent('rule checked', { rule: 'stock', ok: true }, t0 + 27);
  validate.end(t0 + 30);
  const query = pg.startSpan('SELECT orders', { kind: SpanKind.CLIENT, startTime: t0 + 40,
    attributes: { 'db.system': 'postgresql', 'db.query.text': 'SELECT * FROM orders' } }, srvCtx);
  // Runs beside the query and ends before it: not on the critical path.
  const cache = api.startSpan('cache lookup', { kind: SpanKind.INTERNAL, startTime: t0 + 45 }, srvCtx);
  cache.end(t0 + 100);
  query.setStatus({ code: SpanStatusCode.ERROR, message: 'deadlock detected' });
  query.end(t0 + 540);
  srv.end(t0 + 600);
  call.end(t0 + 610);
  root.end(t0 + 620);

  const r2 = web.startSpan('GET /home', { kind: SpanKind.SERVER, startTime: t0 + 5000 });
  const c2 = web.startSpan('call backend', { kind: SpanKind.CLIENT, startTime: t0 + 5010 }, trace.setSpan(context.active(), r2));
  const s2 = api.startSpan('GET /items', { kind: SpanKind.SERVER, startTime: t0 + 5020 }, trace.setSpan(context.active(), c2));
  s2.end(t0 + 5080);
  c2.end(t0 + 5090);
  r2.end(t0 + 5100);
  await Promise.all([fe.forceFlush(), be.forceFlush(), db.forceFlush()]);
  // (Collected before shutdown: the in-memory exporter forgets its spans when shut down.)
  const all = [...mem.frontend.getFinishedSpans(), ...mem.backend.getFinishedSpans(), ...mem.db.getFinishedSpans()];
  await Promise.all([fe.shutdown(), be.shutdown(), db.shutdown()]);
  const byTrace = (id) => all.filter((sp) => sp.spanContext().traceId === id);
  traceA = { traceId: root.spanContext().traceId, spans: byTrace(root.spanContext().traceId) };
  traceB = { traceId: r2.spanContext().traceId, spans: byTrace(r2.spanContext().traceId) };
  assert.equal(traceA.spans.length, 6);
  assert.equal(traceB.spans.length, 3);
}

const hex = (n, len) => n.toString(16).padStart(len, '0');

/** A 20,001-span trace (root, 100 children, 199 grandchildren each) as OTLP/JSON batches. */
async function sendBigTrace(port) {
  const tid = `${hex(BigInt(Date.now()), 16)}${hex(0x20000n, 16)}`;
  const base = BigInt(Date.now() - 120_000) * 1_000_000n;
  const spans = [];
  let next = 1n;
  const sid = () => hex(0xb000000000000000n + next++, 16);
  const rootId = sid();
  spans.push({ traceId: tid, spanId: rootId, name: 'big root', kind: 2,
    startTimeUnixNano: String(base), endTimeUnixNano: String(base + 60_000_000_000n) });
  const MID = 100;
  const LEAF = 199;
  let lastId = rootId;
  for (let m = 0; m < MID; m++) {
    const midId = sid();
    const mStart = base + BigInt(m) * 500_000_000n + 1_000n;
    spans.push({ traceId: tid, spanId: midId, parentSpanId: rootId, name: `batch ${m}`, kind: 1,
      startTimeUnixNano: String(mStart), endTimeUnixNano: String(mStart + 450_000_000n),
      attributes: [{ key: 'batch.index', value: { intValue: String(m) } }] });
    for (let l = 0; l < LEAF; l++) {
      const lid = sid();
      const lStart = mStart + BigInt(l) * 2_000_000n + 1_000n;
      spans.push({ traceId: tid, spanId: lid, parentSpanId: midId, name: `item ${m}.${l}`, kind: 3,
        startTimeUnixNano: String(lStart), endTimeUnixNano: String(lStart + 1_500_000n),
        attributes: [{ key: 'item', value: { stringValue: `${m}.${l}` } }],
        status: m === 42 && l === 7 ? { code: 2, message: 'item failed' } : undefined });
      lastId = lid;
    }
  }
  const BATCH = 2500;
  for (let i = 0; i < spans.length; i += BATCH) {
    const body = JSON.stringify({ resourceSpans: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: i % (2 * BATCH) ? 'bigworker' : 'bigsvc' } }] },
      scopeSpans: [{ scope: { name: 'bulk' }, spans: spans.slice(i, i + BATCH) }] }] });
    const r = await request(port, '/v1/traces', { method: 'POST', body,
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
    assert.equal(r.status, 200, `OTLP/JSON batch ${i / BATCH}: ${r.text}`);
  }
  bigTrace.traceId = tid;
  bigTrace.lastSpanId = lastId;
  bigTrace.count = spans.length;
}

/** The rows expected in the waterfall: depth-first from the root, children by start time. */
function expectedRows(spans) {
  const ids = new Set(spans.map((sp) => sp.spanContext().spanId));
  const kids = new Map();
  const roots = [];
  const start = (sp) => sp.startTime[0] * 1e9 + sp.startTime[1];
  for (const sp of spans) {
    const p = sp.parentSpanContext?.spanId;
    if (p && ids.has(p)) {
      if (!kids.has(p)) kids.set(p, []);
      kids.get(p).push(sp);
    } else {
      roots.push(sp);
    }
  }
  const out = [];
  const walk = (sp, depth) => {
    out.push({ id: sp.spanContext().spanId, depth, name: sp.name });
    for (const c of (kids.get(sp.spanContext().spanId) ?? []).sort((a, b) => start(a) - start(b))) walk(c, depth + 1);
  };
  roots.sort((a, b) => start(a) - start(b)).forEach((r) => walk(r, 0));
  return out;
}

const spanByName = (name) => traceA.spans.find((sp) => sp.name === name);

async function newPage() {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await ctx.newPage();
  page.errors = [];
  page.on('pageerror', (e) => page.errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') page.errors.push(m.text()); });
  return page;
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

/**
 * The dedicated workers a page starts, as they start: [{path, closed}] (closed once the page
 * terminates the worker).
 */
function trackWorkers(page) {
  const list = [];
  page.on('worker', (w) => {
    const rec = { path: new URL(w.url()).pathname, closed: false };
    w.on('close', () => { rec.closed = true; });
    list.push(rec);
  });
  return list;
}

/** Where the trace view's model was built: the page's data attribute and the app's mark. */
const modelBuiltIn = (page) => page.evaluate(() => ({
  attr: document.querySelector('.trace-page')?.dataset.model ?? null,
  mark: performance.getEntriesByName('th:trace-model')[0]?.detail ?? null,
}));

/** Send one small trace (3 spans, 2 services) over OTLP/JSON; returns its trace ID. */
async function sendTinyTrace(port, traceNum) {
  const tid = hex(traceNum, 32);
  const now = Date.now();
  const body = JSON.stringify({ resourceSpans: [{
    resource: { attributes: [{ key: 'service.name', value: { stringValue: 'prefixed' } }] },
    scopeSpans: [{ scope: { name: 's' }, spans: [
      { traceId: tid, spanId: hex(1n, 16), name: 'outer', kind: 2,
        startTimeUnixNano: String((now - 5000) * 1e6), endTimeUnixNano: String((now - 4000) * 1e6) },
      { traceId: tid, spanId: hex(2n, 16), parentSpanId: hex(1n, 16), name: 'inner', kind: 3,
        startTimeUnixNano: String((now - 4900) * 1e6), endTimeUnixNano: String((now - 4100) * 1e6) }] }] }, {
    resource: { attributes: [{ key: 'service.name', value: { stringValue: 'downstream' } }] },
    scopeSpans: [{ scope: { name: 's' }, spans: [
      { traceId: tid, spanId: hex(3n, 16), parentSpanId: hex(2n, 16), name: 'handle', kind: 2,
        startTimeUnixNano: String((now - 4800) * 1e6), endTimeUnixNano: String((now - 4200) * 1e6) }] }] }] });
  const r = await request(port, '/v1/traces', { method: 'POST', body,
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } });
  assert.equal(r.status, 200, r.text);
  return tid;
}

/** Rows currently in the DOM: [{id, depth, name}], in DOM order. */
const domRows = (page) => page.$$eval('#wf-rows .wf-row', (rows) => rows.map((r) => ({
  id: r.dataset.spanId, depth: Number(r.dataset.depth), name: r.querySelector('.op').textContent,
  critical: r.classList.contains('critical'), cls: r.className })));

before(async () => {
  if (skip) return;
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  playwright = await import('playwright-core');
  browser = await playwright.chromium.launch({ executablePath: CHROMIUM,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  stack = await startStack('');
  await sendSmallTraces();
  await until(async () => {
    const r = await request(stack.qport, `/api/traces/${traceA.traceId}`);
    return r.status === 200 && JSON.parse(r.text).data[0].spans.length === 6;
  }, 10_000, 'trace A in the store');
});

after(async () => {
  await browser?.close();
  await stack?.close();
});

test('the query port serves the UI sources as they are in ui-api/web', { skip }, async (t) => {
  if (!stack.servedByBinary) {
    t.skip('this binary does not serve ui-api/web yet (the dev server stands in)');
    return;
  }
  // The embedded copy must be the sources' (a stale build would test old files).
  const dir = path.join(WEB_DIR, 'static');
  for (const f of fs.readdirSync(dir)) {
    const r = await request(stack.qport, `/static/${f}`);
    assert.equal(r.status, 200, f);
    assert.equal(r.text, fs.readFileSync(path.join(dir, f), 'utf8'), `static/${f} differs from the source: rebuild the binary`);
  }
  for (const p of ['/', '/search?service=x', `/trace/${'ab'.repeat(16)}`, '/dependencies']) {
    const r = await request(stack.qport, p);
    assert.equal(r.status, 200, p);
    assert.match(r.headers['content-type'], /^text\/html/);
    assert.match(r.text, /<base href="\/"/);
    assert.match(r.text, /var injected = '';/);
  }
});

test('search by service, operation and tag from the form; results and scatter plot', { skip }, async (t) => {
  t.diagnostic(stack.servedByBinary ? 'UI served by the binary' : 'UI served by the dev server (binary does not serve ui-api/web yet)');
  const page = await newPage();
  await page.goto(`${stack.url}/`);
  await page.waitForSelector('#f-service option[value="frontend"]', { state: 'attached' });
  const services = await page.$$eval('#f-service option', (o) => o.map((x) => x.value).filter(Boolean));
  assert.deepEqual(services, ['backend', 'db', 'frontend']);

  // By service.
  await page.selectOption('#f-service', 'frontend');
  await page.click('#f-submit');
  await page.waitForSelector('#result-list .result');
  assert.match(page.url(), /\/search\?service=frontend&/);
  let ids = await page.$$eval('#result-list .result', (r) => r.map((x) => x.dataset.traceId));
  assert.deepEqual(ids.sort(), [traceA.traceId, traceB.traceId].sort());
  const a = page.locator(`#result-list .result[data-trace-id="${traceA.traceId}"]`);
  assert.equal(await a.locator('.result-name').textContent(), 'frontend: GET /checkout');
  assert.equal(await a.locator('.result-spans').textContent(), '6 spans');
  assert.equal(await a.locator('.badge.err').textContent(), '1 error');
  const svcs = await a.locator('.svc-chip').allTextContents();
  assert.deepEqual(svcs.sort(), ['backend (3)', 'db (1)', 'frontend (2)']);
  assert.equal(await a.locator('.result-duration').textContent(), '620ms');
  assert.equal(await page.locator('#scatter circle.pt').count(), 2);
  assert.equal(await page.locator('#scatter circle.pt.err').count(), 1);
  await shot(page, 'search-results');

  // By operation (the operation picker fills from the service).
  await page.selectOption('#f-service', 'backend');
  await page.waitForSelector('#f-operation option[value="POST /orders"]', { state: 'attached' });
  const ops = await page.$$eval('#f-operation option', (o) => o.map((x) => x.value).filter(Boolean));
  assert.deepEqual(ops, ['GET /items', 'POST /orders', 'cache lookup', 'validate']);
  await page.selectOption('#f-operation', 'POST /orders');
  await page.click('#f-submit');
  await page.waitForURL(/operation=POST/);
  await page.waitForSelector('#result-list .result');
  ids = await page.$$eval('#result-list .result', (r) => r.map((x) => x.dataset.traceId));
  assert.deepEqual(ids, [traceA.traceId]);

  // By tag (logfmt typed into the box, JSON in the URL as Jaeger UI writes it).
  await page.selectOption('#f-service', 'frontend');
  await page.fill('#f-tags', 'customer.tier=gold');
  await page.click('#f-submit');
  await page.waitForURL(/tags=/);
  assert.deepEqual(JSON.parse(new URL(page.url()).searchParams.get('tags')), { 'customer.tier': 'gold' });
  await page.waitForSelector('#result-list .result');
  ids = await page.$$eval('#result-list .result', (r) => r.map((x) => x.dataset.traceId));
  assert.deepEqual(ids, [traceA.traceId]);
  // A tag nothing has.
  await page.fill('#f-tags', 'customer.tier=platinum');
  await page.click('#f-submit');
  await page.waitForSelector('#no-results');

  // A scatter point opens its trace.
  await page.goto(`${stack.url}/search?service=frontend&lookback=1h`);
  await page.click(`#scatter circle[data-trace-id="${traceB.traceId}"]`);
  await page.waitForURL(new RegExp(`/trace/${traceB.traceId}$`));
  await page.waitForSelector('#wf-rows .wf-row');
  assert.equal(await page.locator('#wf-rows .wf-row').count(), 3);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('deep links: search with JSON or logfmt tags, and the trace view, loaded directly', { skip }, async () => {
  const page = await newPage();
  await page.goto(`${stack.url}/search?service=frontend&tags=${encodeURIComponent('{"customer.tier":"gold"}')}&lookback=2h&limit=20`);
  await page.waitForSelector('#result-list .result');
  assert.deepEqual(await page.$$eval('#result-list .result', (r) => r.map((x) => x.dataset.traceId)), [traceA.traceId]);
  assert.equal(await page.inputValue('#f-tags'), 'customer.tier=gold');
  assert.equal(await page.inputValue('#f-limit'), '20');
  await page.goto(`${stack.url}/search?service=frontend&tags=${encodeURIComponent('customer.tier=gold')}`);
  await page.waitForSelector('#result-list .result');
  assert.deepEqual(await page.$$eval('#result-list .result', (r) => r.map((x) => x.dataset.traceId)), [traceA.traceId]);
  // Jaeger's start/end (µs) with a custom range that excludes the traces finds nothing.
  const endUs = (Date.now() - 3_600_000) * 1000;
  await page.goto(`${stack.url}/search?service=frontend&lookback=custom&start=${endUs - 3_600_000_000}&end=${endUs}`);
  await page.waitForSelector('#no-results');
  // The clicked result link goes to the trace; back returns to the search.
  await page.goto(`${stack.url}/search?service=backend&operation=${encodeURIComponent('GET /items')}`);
  await page.click('#result-list .result a');
  await page.waitForURL(new RegExp(`/trace/${traceB.traceId}$`));
  await page.goBack();
  await page.waitForSelector('#result-list .result');
  assert.match(page.url(), /operation=GET(%20|\+)%2Fitems/);
  // The trace page directly.
  await page.goto(`${stack.url}/trace/${traceA.traceId}`);
  await page.waitForSelector('#wf-rows .wf-row');
  assert.equal(await page.textContent('#trace-name'), 'frontend: GET /checkout');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('trace view: header, waterfall order and nesting, details, critical path, find', { skip }, async () => {
  const page = await newPage();
  await page.goto(`${stack.url}/trace/${traceA.traceId}`);
  await page.waitForSelector('#wf-rows .wf-row');
  assert.equal(await page.textContent('#meta-spans'), '6');
  assert.equal(await page.textContent('#meta-services'), '3');
  assert.equal(await page.textContent('#meta-depth'), '4');
  assert.equal(await page.textContent('#meta-duration'), '620ms');

  // Every span, in depth-first order with children by start time, at the right depth.
  const rows = await domRows(page);
  const want = expectedRows(traceA.spans);
  assert.deepEqual(rows.map(({ id, depth, name }) => ({ id, depth, name })), want);
  // The error span is marked.
  const dbRow = page.locator(`.wf-row[data-span-id="${spanByName('SELECT orders').spanContext().spanId}"]`);
  assert.match(await dbRow.getAttribute('class'), /\berror\b/);
  assert.equal(await dbRow.locator('.err-mark').count(), 1);
  assert.equal(await dbRow.locator('.dur').textContent(), '500ms');

  // The critical path: root, call, POST /orders, SELECT (ends last), validate (ran before it);
  // the cache lookup ran beside the query and is not on it.
  const critical = rows.filter((r) => r.critical).map((r) => r.name).sort();
  assert.deepEqual(critical, ['GET /checkout', 'POST /orders', 'SELECT orders', 'call backend', 'validate']);
  await shot(page, 'trace-view');

  // Details of POST /orders: attributes, process tags, kind, IDs.
  const srv = spanByName('POST /orders');
  await page.click(`.wf-row[data-span-id="${srv.spanContext().spanId}"] .op`);
  await page.waitForSelector('#span-details:not([hidden])');
  const tags = await page.$$eval('#details-tags tr', (trs) => Object.fromEntries(trs.map((tr) => [tr.cells[0].textContent, tr.cells[1].textContent])));
  assert.equal(tags['order.items'], '3');
  assert.equal(tags['order.total'], '99.5');
  assert.equal(tags['order.express'], 'true');
  const proc = await page.textContent('#details-process');
  assert.match(proc, /host\.name\s*backend-host-1/);
  assert.equal(await page.textContent('#details-kind'), 'server');
  assert.equal(await page.textContent('#details-span-id'), srv.spanContext().spanId);
  assert.match(await page.textContent('#details-refs'), new RegExp(spanByName('call backend').spanContext().spanId));
  await shot(page, 'span-details');

  // Events with relative times, the link, and the error status.
  await page.click(`.wf-row[data-span-id="${spanByName('validate').spanContext().spanId}"] .op`);
  await page.waitForSelector('#details-logs li');
  const logs = await page.textContent('#details-logs');
  assert.match(logs, /\+2ms/);
  assert.match(logs, /rule checked/);
  assert.match(logs, /stock/);
  const refs = await page.textContent('#details-refs');
  assert.match(refs, new RegExp(spanByName('GET /checkout').spanContext().spanId));
  await page.click(`.wf-row[data-span-id="${spanByName('SELECT orders').spanContext().spanId}"] .op`);
  await page.waitForFunction(() => /ERROR: deadlock detected/.test(document.querySelector('#details-status')?.textContent ?? ''));

  // Collapse a subtree and expand all.
  await page.click(`.wf-row[data-span-id="${srv.spanContext().spanId}"] .tog`);
  assert.equal(await page.locator('#wf-rows .wf-row').count(), 3);
  assert.equal(await page.locator(`.wf-row[data-span-id="${srv.spanContext().spanId}"] .hidden-count`).textContent(), '+3');
  await page.click('#collapse-all');
  assert.equal(await page.locator('#wf-rows .wf-row').count(), 1);
  await page.click('#expand-all');
  assert.equal(await page.locator('#wf-rows .wf-row').count(), 6);

  // Find within the trace: a status message and an attribute value; next/prev cycle.
  await page.fill('#find', 'deadlock');
  await page.waitForFunction(() => document.querySelector('#find-count').textContent === '1 of 1');
  const cur = await page.$$eval('#wf-rows .wf-row.current', (r) => r.map((x) => x.dataset.spanId));
  assert.deepEqual(cur, [spanByName('SELECT orders').spanContext().spanId]);
  await page.fill('#find', 'backend');
  await page.waitForFunction(() => /of 4$/.test(document.querySelector('#find-count').textContent));
  assert.equal(await page.locator('#wf-rows .wf-row.match').count(), 4);
  await page.click('#find-next');
  assert.equal(await page.textContent('#find-count'), '2 of 4');
  await page.click('#find-prev');
  await page.click('#find-prev');
  assert.equal(await page.textContent('#find-count'), '4 of 4');
  await page.check('#find-filter');
  // Matches plus their ancestors: the root stays for context.
  assert.equal(await page.locator('#wf-rows .wf-row').count(), 5);
  await page.fill('#find', 'customer.tier=gold');
  await page.waitForFunction(() => document.querySelector('#find-count').textContent === '1 of 1');
  await shot(page, 'trace-find');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('service map shows the services and the edges with call counts', { skip }, async () => {
  const page = await newPage();
  await page.goto(`${stack.url}/search`);
  await page.click('nav a[data-route="dependencies"]');
  await page.waitForURL(/\/dependencies$/);
  await page.waitForSelector('#deps-svg .edge');
  const edges = await page.$$eval('#deps-svg .edge', (es) => es.map((e) => `${e.dataset.parent}>${e.dataset.child}:${e.querySelector('text').textContent}`).sort());
  assert.deepEqual(edges, ['backend>db:1', 'frontend>backend:2']);
  const nodes = await page.$$eval('#deps-svg .node', (ns) => ns.map((n) => n.dataset.service).sort());
  assert.deepEqual(nodes, ['backend', 'db', 'frontend']);
  // Layered left to right: frontend, then backend, then db.
  const xs = await page.$$eval('#deps-svg .node', (ns) => Object.fromEntries(ns.map((n) => [n.dataset.service, n.getBoundingClientRect().x])));
  assert.ok(xs.frontend < xs.backend && xs.backend < xs.db, JSON.stringify(xs));
  await shot(page, 'service-map');
  // A node opens the search for its service.
  await page.click('#deps-svg .node[data-service="db"]');
  await page.waitForURL(/\/search\?service=db$/);
  await page.waitForSelector('#result-list .result');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('trace lookup by ID from the top bar: found, malformed, not found', { skip }, async () => {
  const page = await newPage();
  await page.goto(`${stack.url}/dependencies`);
  await page.fill('#lookup-id', traceA.traceId.toUpperCase());
  await page.press('#lookup-id', 'Enter');
  await page.waitForURL(new RegExp(`/trace/${traceA.traceId}$`));
  await page.waitForSelector('#wf-rows .wf-row');
  await page.fill('#lookup-id', 'not-a-trace!');
  await page.click('#lookup button');
  assert.match(await page.textContent('#lookup-msg'), /Not a trace ID/);
  assert.match(page.url(), new RegExp(`/trace/${traceA.traceId}$`));
  await page.fill('#lookup-id', 'deadbeef0000000000000000000000ff');
  await page.press('#lookup-id', 'Enter');
  await page.waitForSelector('#trace-error');
  assert.match(await page.textContent('#trace-error'), /trace not found/);
  // Loaded directly too, and a malformed ID in the path.
  await page.goto(`${stack.url}/trace/zzzz`);
  await page.waitForSelector('#trace-error');
  assert.match(await page.textContent('#trace-error'), /not a trace ID/);
  await page.context().close();
});

test('while the worker loads a trace: a loading state, a usable top bar; leaving terminates it', { skip }, async () => {
  const page = await newPage();
  const workers = trackWorkers(page);
  // Hold the trace's answer until the test has looked at the loading page.
  let release;
  const held = new Promise((r) => { release = r; });
  let asked = 0;
  await page.route(`**/api/traces/${traceA.traceId}`, async (route) => {
    asked++;
    await held;
    await route.continue().catch(() => {}); // the worker may be gone
  });
  await page.goto(`${stack.url}/trace/${traceA.traceId}`);
  await page.waitForSelector('#trace-loading[aria-busy="true"] .spinner');
  await until(() => asked > 0, 10_000, 'the worker to ask for the trace');
  assert.deepEqual(workers.map((w) => [w.path, w.closed]), [['/static/trace_worker.js', false]]);
  await shot(page, 'trace-loading');
  // The top bar answers meanwhile.
  await page.fill('#lookup-id', 'not-hex');
  await page.press('#lookup-id', 'Enter');
  assert.match(await page.textContent('#lookup-msg'), /Not a trace ID/);
  // Leaving cancels: the worker is terminated and its trace never reaches the page.
  await page.click('nav a[data-route="search"]');
  await page.waitForURL(/\/search$/);
  await page.waitForSelector('#f-service');
  await until(() => workers[0].closed, 5000, 'the worker to be terminated');
  release();
  await page.waitForSelector('#f-service option[value="frontend"]', { state: 'attached' });
  assert.equal(await page.locator('.trace-page, #trace-loading, #trace-error').count(), 0);
  assert.equal(await page.evaluate(() => performance.getEntriesByName('th:trace-model').length), 0);
  // Back to the trace: a new worker loads it.
  await page.unroute(`**/api/traces/${traceA.traceId}`);
  await page.goBack();
  await page.waitForSelector('#wf-rows .wf-row');
  assert.equal(await page.locator('#wf-rows .wf-row').count(), 6);
  assert.equal((await modelBuiltIn(page)).attr, 'worker');
  assert.equal(workers.length, 2);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('errors through the worker: 404 trace not found, 401, a server that cannot be reached', { skip }, async () => {
  const page = await newPage();
  const workers = trackWorkers(page);
  await page.goto(`${stack.url}/trace/deadbeef0000000000000000000000fe`);
  await page.waitForSelector('#trace-error');
  assert.equal(await page.textContent('main h2'), 'Trace not found');
  assert.match(await page.textContent('#trace-error'), /trace not found: no trace with ID deadbeef0000000000000000000000fe/);
  assert.equal(workers.length, 1);
  // A query API behind auth the browser has no credentials for: the server's message.
  await page.route('**/api/traces/00000000000000000000000000000401', (route) => route.fulfill({ status: 401,
    contentType: 'application/json', body: JSON.stringify({ data: null, errors: [{ code: 401, msg: 'Unauthorized: log in again' }] }) }));
  await page.goto(`${stack.url}/trace/00000000000000000000000000000401`);
  await page.waitForSelector('#trace-error');
  assert.equal(await page.textContent('main h2'), 'Could not load the trace');
  assert.equal(await page.textContent('#trace-error'), 'Unauthorized: log in again');
  await page.route('**/api/traces/00000000000000000000000000000502', (route) => route.abort('connectionrefused'));
  await page.goto(`${stack.url}/trace/00000000000000000000000000000502`);
  await page.waitForSelector('#trace-error');
  assert.match(await page.textContent('#trace-error'), /^cannot reach the server/);
  assert.ok(workers.length >= 3 && workers.every((w) => w.path === '/static/trace_worker.js'), JSON.stringify(workers));
  // The browser logs the failed requests themselves; nothing else may fail.
  assert.deepEqual(page.errors.filter((e) => !/Failed to load resource/.test(e)), []);
  await page.context().close();
});

test('without workers, or when the worker cannot start, the model is built on the page', { skip }, async () => {
  const cases = [
    ['no Worker in this browser', () => { delete window.Worker; }],
    ['the worker script cannot be loaded', () => {
      const Real = window.Worker;
      window.Worker = function Worker(url, opts) { return new Real(new URL('static/no-such-worker.js', document.baseURI), opts); };
    }],
  ];
  for (const [what, init] of cases) {
    const page = await newPage();
    await page.addInitScript(init);
    await page.goto(`${stack.url}/trace/${traceA.traceId}`);
    await page.waitForSelector('#wf-rows .wf-row');
    const how = await modelBuiltIn(page);
    assert.equal(how.attr, 'main', what);
    assert.equal(how.mark.builtIn, 'main', what);
    assert.ok(how.mark.fallback, what);
    // Every view works on the model built here: rows, critical path, details, links, find.
    const rows = await domRows(page);
    assert.deepEqual(rows.map(({ id, depth, name }) => ({ id, depth, name })), expectedRows(traceA.spans), what);
    assert.deepEqual(rows.filter((r) => r.critical).map((r) => r.name).sort(),
      ['GET /checkout', 'POST /orders', 'SELECT orders', 'call backend', 'validate'], what);
    await page.click(`.wf-row[data-span-id="${spanByName('validate').spanContext().spanId}"] .op`);
    await page.waitForSelector('#details-logs li');
    assert.match(await page.textContent('#details-logs'), /rule checked/);
    // The link to the root (a span of this trace) selects it.
    const rootId = spanByName('GET /checkout').spanContext().spanId;
    await page.click(`#details-refs a:has-text("${rootId}")`);
    await page.waitForFunction((id) => document.querySelector('#details-span-id')?.textContent === id, rootId);
    assert.match(await page.getAttribute(`.wf-row[data-span-id="${rootId}"]`, 'class'), /\bselected\b/);
    await page.fill('#find', 'deadlock');
    await page.waitForFunction(() => document.querySelector('#find-count').textContent === '1 of 1');
    assert.deepEqual(page.errors.filter((e) => !/Failed to load resource/.test(e)), [], what);
    await page.context().close();
  }
});

test('behind basic auth, the worker fetches the trace with the browser\'s credentials', { skip }, async () => {
  const [qport] = await freePorts(1);
  // admin / Admin-pw-4471 (htpasswd -m), as in auth.test.mjs.
  const th = await Tracehouse.start({ yaml: storeConfig(qport, '', { htpasswd: 'admin:$apr1$UCmj.NW4$Mynr931Hij2Qh.f4jdY2D/' }) });
  const authz = `Basic ${Buffer.from('admin:Admin-pw-4471').toString('base64')}`;
  try {
    await until(async () => {
      try { return (await request(qport, '/api/services', { headers: { authorization: authz } })).status === 200; } catch { return false; }
    }, 10_000, 'the query port');
    assert.equal((await request(qport, '/api/services')).status, 401);
    const tid = await sendTinyTrace(th.port, 0xa17cn);
    await until(async () => (await request(qport, `/api/traces/${tid}`, { headers: { authorization: authz } })).status === 200,
      10_000, 'the trace in the store');
    const root = await request(qport, '/', { headers: { authorization: authz } });
    if (!/static\/app\.js/.test(root.text)) return; // (the dev server does not do auth)
    const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 },
      httpCredentials: { username: 'admin', password: 'Admin-pw-4471' } });
    const page = await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const workers = trackWorkers(page);
    await page.goto(`http://127.0.0.1:${qport}/trace/${tid}`);
    await page.waitForSelector('#wf-rows .wf-row');
    assert.deepEqual(await page.$$eval('#wf-rows .wf-row .op', (r) => r.map((x) => x.textContent)), ['outer', 'inner', 'handle']);
    assert.equal((await modelBuiltIn(page)).attr, 'worker');
    assert.deepEqual(workers.map((w) => w.path), ['/static/trace_worker.js']);
    assert.deepEqual(errors, []);
    await ctx.close();
  } finally {
    await th.stop();
  }
});

test('a 20,000-span trace renders fast, scrolls to its last span, and never blocks for 1 s', { skip }, async (t) => {
  await sendBigTrace(stack.th.port);
  await until(async () => {
    const r = await request(stack.qport, `/api/traces/${bigTrace.traceId}`);
    return r.status === 200 && JSON.parse(r.text).data[0].spans.length === bigTrace.count;
  }, 30_000, 'the big trace in the store');
  const page = await newPage();
  const workers = trackWorkers(page);
  await page.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) window.__longTasks.push({ start: e.startTime, duration: e.duration });
    }).observe({ type: 'longtask', buffered: true });
  });
  const t0 = Date.now();
  await page.goto(`${stack.url}/trace/${bigTrace.traceId}`);
  await page.waitForSelector('#wf-rows .wf-row', { timeout: 15_000 });
  const renderMs = Date.now() - t0;
  const timings = await page.evaluate(() => Object.fromEntries(performance.getEntriesByType('measure')
    .filter((m) => m.name.startsWith('th:')).map((m) => [m.name, Math.round(m.duration)])));
  t.diagnostic(`first rows after ${renderMs} ms; ${JSON.stringify(timings)}`);

  // The server's part (reading and adjusting 20,000 spans; several seconds in a Debug build on
  // a busy machine) is bounded loosely; the UI's own part, from the answer to the first rows,
  // must take a few seconds at most.
  assert.ok(renderMs < 20_000, `first rows took ${renderMs} ms`);
  const uiMs = await page.evaluate(() => {
    const m = performance.getEntriesByName('th:trace-build')[0];
    const first = performance.getEntriesByName('th:first-rows')[0];
    return first.startTime - m.startTime;
  });
  assert.ok(uiMs < 4000, `building the model and the first rows took ${uiMs} ms`);

  // No main-thread task from navigation to the first rows came near the old one (fetch,
  // JSON.parse and buildTrace in one task). (Long-task entries reach the observer a little
  // after the task.)
  await page.evaluate(() => new Promise((r) => setTimeout(r, 100)));
  const loadTasks = await page.evaluate(() => {
    const firstRows = performance.getEntriesByName('th:first-rows')[0].startTime;
    return window.__longTasks.filter((x) => x.start <= firstRows).map((x) => Math.round(x.duration));
  });
  const worstLoad = Math.max(0, ...loadTasks);
  console.log(`# longest main-thread task from navigation to the first rows: ${worstLoad} ms ` +
    `(tasks over 50 ms: ${JSON.stringify(loadTasks)}; bound ${LOAD_TASK_BOUND_MS} ms)`);
  assert.ok(worstLoad < LOAD_TASK_BOUND_MS, `a main-thread task of ${worstLoad} ms before the first rows: ${JSON.stringify(loadTasks)}`);
  // Because the model was built in the worker.
  const how = await modelBuiltIn(page);
  assert.equal(how.attr, 'worker', JSON.stringify(how));
  assert.equal(how.mark?.builtIn, 'worker', JSON.stringify(how));
  assert.deepEqual(workers.map((w) => w.path), ['/static/trace_worker.js']);
  assert.equal(await page.textContent('#meta-spans'), String(bigTrace.count));
  // Virtualised: a window of rows, not one element per span.
  const inDom = await page.locator('#wf-rows .wf-row').count();
  assert.ok(inDom > 10 && inDom < 200, `${inDom} rows in the DOM`);
  const rendered = await page.evaluate(() => performance.now());
  await shot(page, 'big-trace-top');

  // Scroll through in steps; every page.evaluate must come back promptly.
  let worst = 0;
  const total = await page.$eval('#wf-scroll', (el) => el.scrollHeight);
  assert.equal(total, bigTrace.count * 26);
  for (let i = 1; i <= 40; i++) {
    const s0 = Date.now();
    await page.evaluate((y) => { document.getElementById('wf-scroll').scrollTop = y; }, Math.round((total * i) / 40));
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => r())));
    worst = Math.max(worst, Date.now() - s0);
  }
  t.diagnostic(`slowest scroll step ${worst} ms`);
  assert.ok(worst < 1000, `a scroll step took ${worst} ms`);
  await page.waitForSelector(`.wf-row[data-span-id="${bigTrace.lastSpanId}"]`);
  const last = await page.$$eval('#wf-rows .wf-row', (r) => r[r.length - 1].dataset.spanId);
  assert.equal(last, bigTrace.lastSpanId);
  assert.ok(await page.locator('#wf-rows .wf-row').count() < 200);
  await shot(page, 'big-trace-bottom');

  // Find in 20,000 spans, jump to the match, then collapse and expand all.
  await page.fill('#find', 'item failed');
  await page.waitForFunction(() => document.querySelector('#find-count').textContent === '1 of 1', null, { timeout: 5000 });
  await page.waitForSelector('.wf-row.current');
  assert.equal(await page.$eval('.wf-row.current .op', (e) => e.textContent), 'item 42.7');
  await page.click('#collapse-all');
  assert.equal(await page.locator('#wf-rows .wf-row').count(), 1);
  await page.click('#expand-all');
  await page.$eval('#wf-scroll', (el) => { el.scrollTop = 0; });
  await page.waitForSelector('#wf-rows .wf-row[data-depth="0"]');

  const longTasks = await page.evaluate((since) => window.__longTasks.filter((x) => x.start >= since), rendered);
  t.diagnostic(`long tasks after the first render: ${JSON.stringify(longTasks)}`);
  assert.ok(longTasks.every((x) => x.duration < 1000), JSON.stringify(longTasks));
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('base_path /jaeger: search, trace view, service map and lookup under the prefix', { skip }, async () => {
  const st = await startStack('/jaeger');
  try {
    await sendTinyTrace(st.th.port, 0xfeedn);
    if (st.servedByBinary) {
      const idx = await request(st.qport, '/jaeger/trace/feed');
      assert.match(idx.text, /<base href="\/jaeger\/"/);
      assert.match(idx.text, /var injected = '\/jaeger';/);
    }
    const page = await newPage();
    const workers = trackWorkers(page);
    const requests = [];
    page.on('request', (req) => requests.push(new URL(req.url()).pathname));
    await page.goto(`${st.url}/search?service=prefixed`);
    await page.waitForSelector('#result-list .result');
    await page.click('#result-list .result a');
    await page.waitForURL(/\/jaeger\/trace\/0*feed$/);
    await page.waitForSelector('#wf-rows .wf-row');
    assert.equal(await page.locator('#wf-rows .wf-row').count(), 3);
    // The model came from the worker, loaded from under the prefix.
    assert.equal((await modelBuiltIn(page)).attr, 'worker');
    assert.deepEqual(workers.map((w) => w.path), ['/jaeger/static/trace_worker.js']);
    assert.deepEqual(await page.$$eval('#wf-rows .wf-row .op', (r) => r.map((x) => x.textContent)), ['outer', 'inner', 'handle']);
    await page.click('#wf-rows .wf-row[data-depth="2"] .op');
    await page.waitForSelector('#span-details:not([hidden])');
    assert.equal(await page.textContent('#details-span-id'), hex(3n, 16));
    await page.click('nav a[data-route="dependencies"]');
    await page.waitForURL(/\/jaeger\/dependencies$/);
    await page.waitForSelector('#deps-svg .edge[data-parent="prefixed"][data-child="downstream"]');
    await page.fill('#lookup-id', 'feed');
    await page.press('#lookup-id', 'Enter');
    await page.waitForURL(/\/jaeger\/trace\/feed$/);
    await page.waitForSelector('#wf-rows .wf-row');
    // Deep link straight to a trace under the prefix loads its assets from the prefix.
    await page.goto(`${st.url}/trace/${hex(0xfeedn, 32)}`);
    await page.waitForSelector('#wf-rows .wf-row');
    assert.equal((await modelBuiltIn(page)).attr, 'worker');
    assert.ok(workers.length >= 3 && workers.every((w) => w.path === '/jaeger/static/trace_worker.js'), JSON.stringify(workers));
    assert.ok(requests.length > 0 && requests.every((p) => p.startsWith('/jaeger/')), requests.filter((p) => !p.startsWith('/jaeger/')).join(' '));
    assert.deepEqual(page.errors, []);
    await page.context().close();
  } finally {
    await st.close();
  }
});
