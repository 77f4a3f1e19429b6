// The persistent sending queue end to end, through the real binary: Tracehouse A (OTLP
// receiver -> otlp_http exporter with sending_queue.storage: file_storage/q and short retry
// intervals) forwards to Tracehouse B (OTLP receiver -> file exporter). The OpenTelemetry JS
// SDK sends spans to A while B is down; every span A acknowledged must reach B once B is up:
// first with A running throughout, then with A killed with SIGKILL after acknowledging and
// started again on the same queue directory. Duplicates are allowed (at-least-once) and
// reported.

import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor }
  from '@opentelemetry/sdk-trace-base';

import { flattenSpans, freePort, Tracehouse } from './lib/harness.mjs';

const running = [];
const dirs = [];

after(async () => {
  for (const th of running) {
    th.kill();
  }
  for (const d of dirs) {
    await fsp.rm(d, { recursive: true, force: true });
  }
});

/** B: receives on a port chosen beforehand (A's endpoint), and on {port} for the harness. */
async function startB(bPort) {
  const yaml = `
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:${bPort}
  otlp/probe:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
exporters:
  file:
    path: {out}
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp, otlp/probe]
      exporters: [file]
`;
  const th = await Tracehouse.start({ yaml });
  running.push(th);
  return th;
}

/** A: forwards to B through a persistent queue in @p queueDir. */
async function startA(bPort, queueDir) {
  const yaml = `
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
exporters:
  otlp_http:
    endpoint: http://127.0.0.1:${bPort}
    compression: none
    timeout: 2s
    retry_on_failure:
      initial_interval: 50ms
      max_interval: 300ms
      max_elapsed_time: 0
    sending_queue:
      num_consumers: 4
      queue_size: 10000
      storage: file_storage/q
extensions:
  file_storage/q:
    directory: ${JSON.stringify(queueDir)}
    create_directory: true
service:
  extensions: [file_storage/q]
  telemetry:
    logs:
      level: info
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [otlp_http]
`;
  const th = await Tracehouse.start({ yaml });
  running.push(th);
  return th;
}

/** Make @p n finished spans named `${tag}-i` with the SDK. */
function makeSpans(tag, n) {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'export-queue-it' }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer('export-queue-it');
  for (let i = 0; i < n; i++) {
    tracer.startSpan(`${tag}-${i}`).end();
  }
  return memory.getFinishedSpans();
}

/**
 * Export @p spans to A in requests of @p per spans.
 * @param {object} [o] {tolerant: stop at the first failure instead of failing the test,
 *        acked: the array the acknowledged ids go to (so a caller can watch it grow)}
 * @returns the span ids A acknowledged.
 */
async function sendToA(a, spans, per, { tolerant = false, acked = [] } = {}) {
  const exporter = new OTLPTraceExporter({ url: `${a.baseUrl}/v1/traces`, timeoutMillis: 10_000 });
  for (let i = 0; i < spans.length; i += per) {
    const chunk = spans.slice(i, i + per);
    const result = await new Promise((resolve) => exporter.export(chunk, resolve));
    if (tolerant && result.code !== ExportResultCode.SUCCESS) {
      break;
    }
    assert.equal(result.code, ExportResultCode.SUCCESS,
      `A refused a request: ${result.error?.message}\nA's stderr:\n${a.stderr}`);
    acked.push(...chunk.map((s) => s.spanContext().spanId));
  }
  await exporter.shutdown();
  return acked;
}

/** Span id → copies received by B. */
async function receivedByB(b) {
  const counts = new Map();
  for (const { span } of flattenSpans(await b.readOutput())) {
    counts.set(span.spanId, (counts.get(span.spanId) ?? 0) + 1);
  }
  return counts;
}

/** Wait until B holds every id of @p ids. @returns {missing, duplicates}. */
async function waitForAll(b, ids, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await receivedByB(b);
    const missing = ids.filter((id) => !counts.has(id));
    if (missing.length === 0 || Date.now() > deadline) {
      let duplicates = 0;
      for (const id of ids) {
        duplicates += Math.max(0, (counts.get(id) ?? 0) - 1);
      }
      return { missing, duplicates };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function tempDir() {
  const d = await fsp.mkdtemp(path.join(os.tmpdir(), 'th-queue-it-'));
  dirs.push(d);
  return d;
}

test('spans sent while the next hop is down arrive once it is up', async (t) => {
  const queueDir = path.join(await tempDir(), 'queue');
  const bPort = await freePort();
  const a = await startA(bPort, queueDir);
  const spans = makeSpans('outage', 600);
  const acked = await sendToA(a, spans, 50);
  assert.equal(acked.length, 600);
  // A keeps retrying against a closed port for a while
  await new Promise((r) => setTimeout(r, 700));
  const b = await startB(bPort);
  const { missing, duplicates } = await waitForAll(b, acked, 20_000);
  assert.deepEqual(missing, [], `B is missing ${missing.length} spans\nA's stderr:\n${a.stderr}`);
  t.diagnostic(`outage: ${acked.length} spans acknowledged, all delivered, ${duplicates} duplicates`);
  assert.equal(duplicates, 0, 'no crash, so no duplicates');
  await a.stopClean();
  await b.stopClean();
  await a.cleanup();
  await b.cleanup();
});

test('spans acknowledged before a SIGKILL arrive after a restart', async (t) => {
  const queueDir = path.join(await tempDir(), 'queue');
  const bPort = await freePort();
  let a = await startA(bPort, queueDir);
  const spans = makeSpans('crash', 800);
  const acked = await sendToA(a, spans, 40);
  // acknowledged means on disk: kill A without any chance to flush
  a.kill();
  await a.exitPromise;
  assert.equal(a.exited.signal, 'SIGKILL');
  const b = await startB(bPort);
  a = await startA(bPort, queueDir);
  const { missing, duplicates } = await waitForAll(b, acked, 20_000);
  assert.deepEqual(missing, [],
    `B is missing ${missing.length} of ${acked.length} acknowledged spans\nA's stderr:\n${a.stderr}`);
  const marked = /(\d+) requests \((\d+) spans\) were being sent when the last run stopped/
    .exec(a.stderr);
  t.diagnostic(`kill -9 while B was down: ${acked.length} acknowledged, all delivered, ` +
    `${duplicates} duplicates; A counted ` +
    `${marked ? `${marked[2]} spans in ${marked[1]} requests` : 'no requests'} as in flight ` +
    '(attempted against the closed port) at the kill');
  assert.match(a.stderr, /left from the last run/);
  await a.stopClean();
  await b.stopClean();
  await a.cleanup();
  await b.cleanup();
});

test('a SIGKILL while requests are in flight loses nothing acknowledged', async (t) => {
  const queueDir = path.join(await tempDir(), 'queue');
  const bPort = await freePort();
  const b = await startB(bPort);
  let a = await startA(bPort, queueDir);
  const spans = makeSpans('inflight', 6000);
  // kill A in the middle of the stream, while it forwards what it acknowledged; only what
  // was acknowledged before the kill counts
  const acked = [];
  const sending = sendToA(a, spans, 50, { tolerant: true, acked });
  while (acked.length < 600) {
    await new Promise((r) => setTimeout(r, 2));
  }
  a.kill();
  await a.exitPromise;
  await sending;
  const before = await receivedByB(b);
  a = await startA(bPort, queueDir);
  const { missing, duplicates } = await waitForAll(b, acked, 30_000);
  assert.deepEqual(missing, [],
    `B is missing ${missing.length} of ${acked.length} acknowledged spans\nA's stderr:\n${a.stderr}`);
  const marked = /(\d+) requests \((\d+) spans\) were being sent when the last run stopped/
    .exec(a.stderr);
  t.diagnostic(`kill -9 mid-flight: ${acked.length} acknowledged, ${before.size} at B before the ` +
    `restart, all delivered, ${duplicates} duplicates; A counted ` +
    `${marked ? `${marked[2]} spans in ${marked[1]} requests` : 'no requests'} as possibly ` +
    'sent twice');
  if (marked) {
    assert.ok(duplicates <= Number(marked[2]), 'duplicates come only from requests in flight');
  } else {
    assert.equal(duplicates, 0);
  }
  await a.stopClean();
  await b.stopClean();
  await a.cleanup();
  await b.cleanup();
});
