// The store and the query API end to end: the official JS SDK exports a trace over three
// services to tracehouse, which stores it in LMDB; the Jaeger API must serve it back as the
// exact tree, find it by every search parameter, list services, operations and
// dependencies, keep a trace sent in pieces out of order whole, answer bad parameters as
// Jaeger does, and keep every acknowledged span through kill -9.

import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { context, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor }
  from '@opentelemetry/sdk-trace-base';

import { freePort, Tracehouse } from './lib/harness.mjs';

function storeConfig(qport, extra = '') {
  return `
extensions:
  jaeger_storage:
    backends:
      main:
        lmdb:
          path: {out}-data
          ttl:
            spans: 72h
  jaeger_query:
    storage:
      traces: main
    http:
      endpoint: 127.0.0.1:${qport}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
exporters:
  jaeger_storage_exporter:
    trace_storage: main
${extra}
service:
  extensions: [jaeger_storage, jaeger_query]
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
`;
}

/** GET a path of the query API; resolves {status, headers, text, json}. */
function get(port, p) {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: p }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    }).on('error', reject);
  });
}

/** POST an OTLP/JSON body; resolves the status code. */
function postJson(port, body) {
  return new Promise((resolve) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request({
      host: '127.0.0.1', port, path: '/v1/traces', method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': data.length },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('error', () => resolve(0));
    req.end(data);
  });
}

const hex = (n, len) => n.toString(16).padStart(len, '0');
const nowNs = () => BigInt(Date.now()) * 1_000_000n;

let th;
let qport;
let sent; // the spans the SDK exported, by service
let traceId;

function provider(service, captured) {
  const p = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service, 'host.name': `${service}-1` }),
    spanProcessors: [
      new SimpleSpanProcessor(new ProtoExporter({ url: `${th.baseUrl}/v1/traces` })),
      new SimpleSpanProcessor(captured),
    ],
  });
  return p;
}

before(async () => {
  qport = await freePort();
  th = await Tracehouse.start({ yaml: storeConfig(qport) });
  const mem = { frontend: new InMemorySpanExporter(), backend: new InMemorySpanExporter(),
    db: new InMemorySpanExporter() };
  const fe = provider('frontend', mem.frontend);
  const be = provider('backend', mem.backend);
  const db = provider('db', mem.db);

  const t0 = Date.now() - 5000;
  const root = fe.getTracer('web', '2.0.0').startSpan('GET /checkout',
    { kind: SpanKind.SERVER, startTime: t0, attributes: { 'http.request.method': 'GET', 'http.response.status_code': 200 } });
  traceId = root.spanContext().traceId;
  const rootCtx = trace.setSpan(context.active(), root);
  const call = fe.getTracer('web', '2.0.0').startSpan('call backend',
    { kind: SpanKind.CLIENT, startTime: t0 + 10 }, rootCtx);
  const callCtx = trace.setSpan(context.active(), call);
  const srv = be.getTracer('api').startSpan('POST /orders',
    { kind: SpanKind.SERVER, startTime: t0 + 20, attributes: { 'order.items': 3, 'order.total': 99.5, 'order.express': true } }, callCtx);
  const srvCtx = trace.setSpan(context.active(), srv);
  const validate = be.getTracer('api').startSpan('validate',
    { kind: SpanKind.INTERNAL, startTime: t0 + 25,
      links: [{ context: root.spanContext(), attributes: { why: 'audit' } }] }, srvCtx);
  validate.addEvent('rule checked', { rule: 'stock', ok: true }, t0 + 26);
  validate.end(t0 + 30);
  const query = db.getTracer('pg', '1.0').startSpan('SELECT orders',
    { kind: SpanKind.CLIENT, startTime: t0 + 40, attributes: { 'db.system': 'postgresql', 'db.query.text': 'SELECT 1' } }, srvCtx);
  query.setStatus({ code: SpanStatusCode.ERROR, message: 'deadlock detected' });
  query.end(t0 + 540);
  srv.setStatus({ code: SpanStatusCode.OK });
  srv.end(t0 + 600);
  call.end(t0 + 610);
  root.end(t0 + 620);
  await Promise.all([fe.forceFlush(), be.forceFlush(), db.forceFlush()]);
  sent = { frontend: mem.frontend.getFinishedSpans(), backend: mem.backend.getFinishedSpans(),
    db: mem.db.getFinishedSpans() };
  await Promise.all([fe.shutdown(), be.shutdown(), db.shutdown()]);
});

after(async () => {
  if (th) {
    await th.stopClean();
  }
});

const toUs = (hr) => hr[0] * 1_000_000 + Math.trunc(hr[1] / 1000);
const tag = (span, key) => span.tags.find((t) => t.key === key);

test('trace by id comes back as the exact tree', async () => {
  const r = await get(qport, `/api/traces/${traceId}`);
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.errors, null);
  assert.equal(r.json.data.length, 1);
  const t = r.json.data[0];
  assert.equal(t.traceID, traceId);
  const all = [...sent.frontend, ...sent.backend, ...sent.db];
  assert.equal(t.spans.length, all.length);
  const services = Object.values(t.processes).map((p) => p.serviceName).sort();
  assert.deepEqual(services, ['backend', 'db', 'frontend']);
  for (const s of all) {
    const sc = s.spanContext();
    const got = t.spans.find((x) => x.spanID === sc.spanId);
    assert.ok(got, `span ${s.name} missing`);
    assert.equal(got.traceID, traceId);
    assert.equal(got.operationName, s.name);
    assert.equal(got.startTime, toUs(s.startTime));
    assert.equal(got.duration, toUs(s.endTime) - toUs(s.startTime));
    const parentId = s.parentSpanContext?.spanId;
    if (parentId) {
      assert.deepEqual(got.references[0], { refType: 'CHILD_OF', traceID: traceId, spanID: parentId });
    }
    const service = s.resource.attributes['service.name'];
    assert.equal(t.processes[got.processID].serviceName, service);
    assert.deepEqual(t.processes[got.processID].tags,
      [{ key: 'host.name', type: 'string', value: `${service}-1` }].concat(
        Object.entries(s.resource.attributes)
          .filter(([k]) => k !== 'service.name' && k !== 'host.name')
          .map(([k, v]) => ({ key: k, type: 'string', value: v })))
        .sort((a, b) => a.key.localeCompare(b.key)));
    const kind = ['internal', 'server', 'client', 'producer', 'consumer'][s.kind];
    assert.deepEqual(tag(got, 'span.kind'), { key: 'span.kind', type: 'string', value: kind });
    assert.deepEqual(tag(got, 'otel.scope.name'),
      { key: 'otel.scope.name', type: 'string', value: s.instrumentationScope.name });
  }
  const q = t.spans.find((x) => x.operationName === 'SELECT orders');
  assert.deepEqual(tag(q, 'error'), { key: 'error', type: 'bool', value: true });
  assert.deepEqual(tag(q, 'otel.status_code'), { key: 'otel.status_code', type: 'string', value: 'ERROR' });
  assert.deepEqual(tag(q, 'otel.status_description'),
    { key: 'otel.status_description', type: 'string', value: 'deadlock detected' });
  const o = t.spans.find((x) => x.operationName === 'POST /orders');
  assert.deepEqual(tag(o, 'order.items'), { key: 'order.items', type: 'int64', value: 3 });
  assert.deepEqual(tag(o, 'order.total'), { key: 'order.total', type: 'float64', value: 99.5 });
  assert.deepEqual(tag(o, 'order.express'), { key: 'order.express', type: 'bool', value: true });
  assert.deepEqual(tag(o, 'otel.status_code'), { key: 'otel.status_code', type: 'string', value: 'OK' });
  assert.equal(tag(o, 'error'), undefined);
  const v = t.spans.find((x) => x.operationName === 'validate');
  const rootSpan = t.spans.find((x) => x.operationName === 'GET /checkout');
  assert.deepEqual(v.references[1], { refType: 'FOLLOWS_FROM', traceID: traceId, spanID: rootSpan.spanID });
  assert.equal(v.logs.length, 1);
  assert.deepEqual(v.logs[0].fields[0], { key: 'event', type: 'string', value: 'rule checked' });
  assert.equal(v.logs[0].timestamp, toUs(sent.backend.find((s) => s.name === 'validate').events[0].time));
  assert.deepEqual(rootSpan.references, []);
});

test('16-hex and zero-stripped ids, 404 and 400 as Jaeger answers them', async () => {
  const stripped = traceId.replace(/^0+/, '');
  const r1 = await get(qport, `/api/traces/${stripped.toUpperCase()}`);
  assert.equal(r1.status, 200);
  assert.equal(r1.json.data[0].traceID, traceId);
  const missing = await get(qport, '/api/traces/00000000000000000000000000abcdef');
  assert.equal(missing.status, 404);
  assert.deepEqual(JSON.parse(missing.text).errors, [{ code: 404, msg: 'trace not found' }]);
  assert.equal(missing.json.data, null);
  const bad = await get(qport, '/api/traces/zz');
  assert.equal(bad.status, 400);
  const noService = await get(qport, '/api/traces');
  assert.equal(noService.status, 400);
  assert.equal(noService.json.errors[0].msg, "parameter 'service' is required");
  const badDur = await get(qport, '/api/traces?service=backend&minDuration=x');
  assert.equal(badDur.status, 400);
  assert.equal(badDur.json.errors[0].msg,
    'unable to parse param \'minDuration\': time: invalid duration "x"');
  const order = await get(qport, '/api/traces?service=backend&minDuration=2s&maxDuration=1s');
  assert.equal(order.status, 400);
  assert.equal(order.json.errors[0].msg, "'maxDuration' should be greater than 'minDuration'");
});

async function searchIds(q) {
  const r = await get(qport, `/api/traces?${q}`);
  assert.equal(r.status, 200, r.text);
  return r.json.data.map((t) => t.traceID);
}

test('search by service, operation, tags, durations, time window and limit', async () => {
  assert.deepEqual(await searchIds('service=backend'), [traceId]);
  assert.deepEqual(await searchIds('service=backend&operation=validate'), [traceId]);
  assert.deepEqual(await searchIds('service=backend&operation=nope'), []);
  assert.deepEqual(await searchIds('service=nobody'), []);
  const tags = encodeURIComponent(JSON.stringify({ 'db.system': 'postgresql' }));
  assert.deepEqual(await searchIds(`service=db&tags=${tags}`), [traceId]);
  assert.deepEqual(await searchIds('service=db&tag=db.system:postgresql'), [traceId]);
  assert.deepEqual(await searchIds('service=db&tag=db.system:mysql'), []);
  assert.deepEqual(await searchIds(`service=db&tags=${encodeURIComponent('{"error":"true"}')}`), [traceId]);
  assert.deepEqual(await searchIds(`service=frontend&tags=${encodeURIComponent('{"error":"true"}')}`), []);
  // resource attributes match too
  assert.deepEqual(await searchIds('service=db&tag=host.name:db-1'), [traceId]);
  // the db span lasts 500 ms; the backend spans at most 580 ms
  assert.deepEqual(await searchIds('service=db&minDuration=400ms'), [traceId]);
  assert.deepEqual(await searchIds('service=db&minDuration=1s'), []);
  assert.deepEqual(await searchIds('service=backend&maxDuration=1ms'), []);
  const nowUs = Date.now() * 1000;
  assert.deepEqual(await searchIds(`service=backend&start=${nowUs - 60e6}&end=${nowUs}`), [traceId]);
  assert.deepEqual(await searchIds(`service=backend&start=${nowUs - 7200e6}&end=${nowUs - 3600e6}`), []);
  assert.equal((await searchIds('service=frontend&limit=1')).length, 1);
});

test('services, operations and dependencies', async () => {
  const s = await get(qport, '/api/services');
  assert.equal(s.status, 200);
  assert.deepEqual(s.json.data, ['backend', 'db', 'frontend']);
  assert.equal(s.json.total, 3);
  const ops = await get(qport, '/api/services/backend/operations');
  assert.deepEqual(ops.json.data, ['POST /orders', 'validate']);
  const k = await get(qport, '/api/operations?service=backend&spanKind=server');
  assert.deepEqual(k.json.data, [{ name: 'POST /orders', spanKind: 'server' }]);
  const all = await get(qport, '/api/operations?service=frontend');
  assert.deepEqual(all.json.data.map((o) => o.name).sort(), ['GET /checkout', 'call backend']);
  const d = await get(qport, `/api/dependencies?endTs=${Date.now()}&lookback=3600000`);
  assert.equal(d.status, 200);
  const links = d.json.data.map((l) => `${l.parent}>${l.child}:${l.callCount}`).sort();
  assert.deepEqual(links, ['backend>db:1', 'frontend>backend:1']);
});

test('a trace sent in pieces, out of order, comes back whole', async () => {
  const tid = hex(0xabc123n, 32);
  const base = nowNs() - 10_000_000_000n;
  const pieces = [];
  for (let i = 0; i < 6; i++) {
    pieces.push({ resourceSpans: [{ resource: { attributes: [{ key: 'service.name', value: { stringValue: `piece-svc-${i % 2}` } }] },
      scopeSpans: [{ scope: { name: 'pieces' }, spans: [{
        traceId: tid, spanId: hex(i + 1, 16), parentSpanId: i ? hex(i, 16) : '',
        name: `step-${i}`, kind: 1,
        startTimeUnixNano: String(base + BigInt(i) * 1000n), endTimeUnixNano: String(base + BigInt(i) * 1000n + 500n),
      }] }] }] });
  }
  for (const p of pieces.reverse()) {
    assert.equal(await postJson(th.port, p), 200);
    await new Promise((r) => setTimeout(r, 30));
  }
  const r = await get(qport, `/api/traces/${tid}`);
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.data[0].spans.map((s) => s.operationName).sort(),
    ['step-0', 'step-1', 'step-2', 'step-3', 'step-4', 'step-5']);
  assert.equal(Object.keys(r.json.data[0].processes).length, 2);
});

test('kill -9 during ingest loses no acknowledged span', async () => {
  const q2 = await freePort();
  const victim = await Tracehouse.start({ yaml: storeConfig(q2) });
  const acked = [];
  let stop = false;
  let n = 0;
  const worker = async () => {
    while (!stop) {
      const i = n++;
      const tid = hex(0x5000000n + BigInt(i), 32);
      const spans = [];
      const t = nowNs();
      for (let s = 0; s < 10; s++) {
        spans.push({ traceId: tid, spanId: hex(s + 1, 16), name: `op-${s}`, kind: 2,
          startTimeUnixNano: String(t), endTimeUnixNano: String(t + 1000n) });
      }
      const status = await postJson(victim.port, { resourceSpans: [{ resource: { attributes: [
        { key: 'service.name', value: { stringValue: 'crashy' } }] }, scopeSpans: [{ spans }] }] });
      if (status === 200) {
        acked.push(tid);
      }
    }
  };
  const workers = [worker(), worker(), worker(), worker()];
  await new Promise((r) => setTimeout(r, 1500));
  victim.proc.kill('SIGKILL');
  stop = true;
  await Promise.all(workers);
  await victim.exitPromise;
  assert.ok(acked.length > 10, `only ${acked.length} requests were acknowledged`);

  const q3 = await freePort();
  const again = await Tracehouse.start({ yaml: storeConfig(q3).replace('{out}-data', `${victim.outPath}-data`) });
  try {
    for (const tid of acked) {
      const r = await get(q3, `/api/traces/${tid}`);
      assert.equal(r.status, 200, `acknowledged trace ${tid} lost after kill -9`);
      assert.equal(r.json.data[0].spans.length, 10, `trace ${tid} incomplete`);
    }
  } finally {
    await again.stopClean();
  }
});
