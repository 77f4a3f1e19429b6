// The health_check extension on the real binary: 200 with the Collector's JSON once every
// pipeline runs (any method, only on `path`); 503 naming the exporter while its sending queue
// is full (an OTLP/HTTP backend that does not answer), with the queue metrics agreeing, and
// 200 again by itself once the backend answers and the queue drains; a clean exit on SIGTERM.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, test } from 'node:test';

import { freePorts, Tracehouse } from './lib/harness.mjs';

let th;
let backend;
let hcPort;
let metricsPort;
let hold = true;
const held = [];
let delivered = 0;

function answer(res) {
  res.writeHead(200, { 'content-type': 'application/x-protobuf' });
  res.end();
}

before(async () => {
  let backendPort;
  [backendPort, hcPort, metricsPort] = await freePorts(3);
  // An OTLP/HTTP backend that holds every request until released.
  backend = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      delivered++;
      if (hold) {
        held.push(res);
      } else {
        answer(res);
      }
    });
  });
  await new Promise((r) => backend.listen(backendPort, '127.0.0.1', r));
  const yaml = [
    'extensions:',
    `  health_check: {endpoint: "127.0.0.1:${hcPort}", path: /status}`,
    'receivers:',
    '  otlp:',
    '    protocols:',
    '      http: {endpoint: "127.0.0.1:{port}"}',
    'exporters:',
    '  otlp_http:',
    `    endpoint: http://127.0.0.1:${backendPort}`,
    '    timeout: 60s',
    '    sending_queue: {queue_size: 2, num_consumers: 1}',
    'service:',
    '  extensions: [health_check]',
    '  telemetry:',
    '    metrics:',
    `      readers: [{pull: {exporter: {prometheus: {host: 127.0.0.1, port: ${metricsPort}}}}}]`,
    '  pipelines:',
    '    traces: {receivers: [otlp], exporters: [otlp_http]}',
    '',
  ].join('\n');
  th = await Tracehouse.start({ yaml });
});

after(async () => {
  hold = false;
  held.splice(0).forEach(answer);
  if (th) {
    const r = await th.stop();
    assert.equal(r.code, 0, th.stderr);
    await th.cleanup();
  }
  backend?.closeAllConnections?.();
  await new Promise((r) => backend.close(r));
});

async function probe(method = 'GET', path = '/status') {
  const res = await fetch(`http://127.0.0.1:${hcPort}${path}`, { method });
  const text = await res.text();
  return { status: res.status, type: res.headers.get('content-type'), text };
}

async function probeUntil(status, ms = 15_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const p = await probe();
    if (p.status === status || Date.now() > deadline) {
      return p;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function metric(series) {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

function spans(i) {
  return JSON.stringify({
    resourceSpans: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: 'hc' } }] },
      scopeSpans: [{
        spans: [{
          traceId: `0102030405060708090a0b0c0d0e0f${(16 + i).toString(16)}`,
          spanId: '0102030405060708',
          name: `op-${i}`,
          startTimeUnixNano: '1700000000000000000',
          endTimeUnixNano: '1700000001000000000',
        }],
      }],
    }],
  });
}

async function post(i) {
  const res = await fetch(`http://127.0.0.1:${th.port}/v1/traces`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: spans(i),
  });
  await res.text();
  return res.status;
}

test('200 with the Collector body once the pipelines run, on path only, any method', async () => {
  const p = await probe();
  assert.equal(p.status, 200);
  assert.equal(p.type, 'application/json');
  const body = JSON.parse(p.text);
  assert.equal(body.status, 'Server available');
  assert.match(body.upSince, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
  assert.ok(Math.abs(Date.parse(body.upSince) - Date.now()) < 60_000);
  assert.match(body.uptime, /^(\d+h)?(\d+m)?\d+(\.\d+)?(ns|µs|ms|s)$/);
  assert.equal((await probe('POST')).status, 200);
  assert.equal((await probe('HEAD')).status, 200);
  assert.equal((await probe('GET', '/')).status, 404);
});

test('503 naming the exporter while its sending queue is full, 200 again once it drains', async () => {
  // One request in flight (held by the backend), two waiting: the queue (2) is full.
  for (let i = 0; i < 3; i++) {
    assert.equal(await post(i), 200);
  }
  let p = await probeUntil(503);
  assert.equal(p.status, 503, p.text);
  const body = JSON.parse(p.text);
  assert.match(body.status, /^Server not available: exporter "otlp_http": the sending queue is full \(2 of 2\)$/);
  assert.equal(body.reason, 'exporter "otlp_http": the sending queue is full (2 of 2)');
  assert.equal(await metric('otelcol_exporter_queue_size{data_type="traces",exporter="otlp_http"}'), 2);
  assert.equal(await metric('otelcol_exporter_queue_capacity{data_type="traces",exporter="otlp_http"}'), 2);
  // A fourth request finds the queue full: refused, counted as an enqueue failure.
  assert.equal(await post(3), 503);
  assert.equal(await metric('otelcol_exporter_enqueue_failed_spans{exporter="otlp_http"}'), 1);
  assert.equal(await metric('otelcol_receiver_refused_spans{receiver="otlp",transport="http"}'), 1);

  // The backend recovers: everything drains and the probe is healthy again by itself.
  hold = false;
  held.splice(0).forEach(answer);
  p = await probeUntil(200);
  assert.equal(p.status, 200, p.text);
  assert.equal(JSON.parse(p.text).status, 'Server available');
  const deadline = Date.now() + 10_000;
  while (await metric('otelcol_exporter_sent_spans{exporter="otlp_http"}') !== 3 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(await metric('otelcol_exporter_sent_spans{exporter="otlp_http"}'), 3);
  assert.equal(delivered, 3);
});
