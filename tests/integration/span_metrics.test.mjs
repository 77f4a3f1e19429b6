// Span metrics end to end: the real binary with the Collector-style config (traces into the
// store and the spanmetrics connector, a metrics pipeline into the prometheus exporter), the
// official JS SDK sending spans whose durations and statuses the test controls, then a scrape
// of the prometheus endpoint parsed back and checked series by series: calls_total, the error
// series, every bucket, _sum and _count, and (OpenMetrics) exemplars pointing at the spans.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

import { freePorts, Tracehouse } from './lib/harness.mjs';

const BOUNDS_MS = [2, 4, 6, 8, 10, 50, 100, 200, 400, 800, 1000, 1400, 2000, 5000, 10000, 15000];
// Durations of service A's spans, cycling: bounds themselves (upper-inclusive buckets), values
// between bounds, one above every bound.
const DURATIONS_MS = [1, 2, 3, 4, 7, 10, 45, 100, 800, 20000];

let th;
let promPort;
let queryPort;
const sent = { a: [], b: [] }; // {durationMs, error, traceId, spanId}

function yaml(pport, qport) {
  return `
extensions:
  jaeger_storage:
    backends:
      main:
        lmdb:
          path: {out}-data
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
processors:
  batch:
connectors:
  spanmetrics:
    histogram: {explicit: {buckets: [2ms, 4ms, 6ms, 8ms, 10ms, 50ms, 100ms, 200ms, 400ms, 800ms, 1s, 1400ms, 2s, 5s, 10s, 15s]}}
    dimensions: [{name: http.method, default: GET}, {name: http.status_code}]
    exemplars: {enabled: true}
    metrics_flush_interval: 1s
exporters:
  jaeger_storage_exporter:
    trace_storage: main
  prometheus: {endpoint: "127.0.0.1:${pport}", namespace: "", resource_to_telemetry_conversion: {enabled: false}, add_metric_suffixes: true, enable_open_metrics: true}
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [jaeger_storage_exporter, spanmetrics]}
    metrics: {receivers: [spanmetrics], processors: [batch], exporters: [prometheus]}
`;
}

/** Send spans through the SDK: 100 server spans of A/opX (10 errors), 5 client spans of B/opY. */
async function sendSpans(port) {
  const providers = [];
  const make = (service) => {
    const exporter = new OTLPTraceExporter({ url: `http://127.0.0.1:${port}/v1/traces` });
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': service }),
      spanProcessors: [new BatchSpanProcessor(exporter, { maxExportBatchSize: 50 })],
    });
    providers.push(provider);
    return provider.getTracer('span-metrics-test');
  };
  const ta = make('svc-a');
  const tb = make('svc-b');
  const base = Math.floor(Date.now() / 1000) - 60;
  for (let i = 0; i < 100; i++) {
    const durationMs = DURATIONS_MS[i % DURATIONS_MS.length];
    const error = i % 10 === 3; // 10 errors, all of 4 ms
    const start = [base + i, 0];
    const endNanos = durationMs * 1_000_000;
    const end = [base + i + Math.floor(endNanos / 1e9), endNanos % 1e9];
    const span = ta.startSpan('opX', { kind: SpanKind.SERVER, startTime: start });
    span.setAttribute('http.status_code', error ? 500 : 200);
    if (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
    }
    span.end(end);
    const ctx = span.spanContext();
    sent.a.push({ durationMs, error, traceId: ctx.traceId, spanId: ctx.spanId });
  }
  for (let i = 0; i < 5; i++) {
    const span = tb.startSpan('opY', { kind: SpanKind.CLIENT, startTime: [base, 0] });
    span.setAttribute('http.method', 'POST');
    span.end([base, 250_000_000]); // 250 ms
    sent.b.push({ durationMs: 250 });
  }
  for (const p of providers) {
    await p.forceFlush();
    await p.shutdown();
  }
}

/** Parse the text format: [{name, labels, value, exemplar?}] (comments skipped). */
function parseExposition(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) {
      continue;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*?)\})? (\S+)(?: \S+)?(?: # \{(.*)\} (\S+) (\S+))?$/
      .exec(line);
    assert.ok(m, `unparsable line: ${line}`);
    const labels = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2];
    }
    const sample = { name: m[1], labels, value: Number(m[3]) };
    if (m[4] !== undefined) {
      const ex = {};
      for (const l of m[4].matchAll(/([a-zA-Z_]+)="([^"]*)"/g)) {
        ex[l[1]] = l[2];
      }
      sample.exemplar = { labels: ex, value: Number(m[5]) };
    }
    out.push(sample);
  }
  return out;
}

async function scrape(accept) {
  const res = await fetch(`http://127.0.0.1:${promPort}/metrics`,
    { headers: accept ? { accept } : {} });
  assert.equal(res.status, 200);
  return { type: res.headers.get('content-type'), text: await res.text() };
}

const find = (samples, name, want) => samples.filter((s) => s.name === name &&
  Object.entries(want).every(([k, v]) => s.labels[k] === v));

before(async () => {
  [promPort, queryPort] = await freePorts(2);
  th = await Tracehouse.start({ yaml: yaml(promPort, queryPort) });
  await sendSpans(th.port);
});

after(async () => {
  if (th) {
    // the drain at SIGTERM (the connector's last flush included) ends cleanly
    const exit = await th.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, th.stderr);
  }
});

test('calls, errors and duration histograms per series, exactly', async () => {
  // wait for a flush that has everything (flush every 1s)
  let samples;
  const deadline = Date.now() + 15000;
  for (;;) {
    samples = parseExposition((await scrape()).text);
    const total = find(samples, 'traces_span_metrics_calls_total', {})
      .reduce((a, s) => a + s.value, 0);
    if (total === 105 || Date.now() > deadline) {
      assert.equal(total, 105, 'all 105 spans counted');
      break;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  const common = { service_name: 'svc-a', span_name: 'opX', span_kind: 'SPAN_KIND_SERVER',
    http_method: 'GET' };
  const okLabels = { ...common, status_code: 'STATUS_CODE_UNSET', http_status_code: '200' };
  const errLabels = { ...common, status_code: 'STATUS_CODE_ERROR', http_status_code: '500' };

  const calls = find(samples, 'traces_span_metrics_calls_total', { service_name: 'svc-a' });
  assert.equal(calls.length, 2, 'two series for svc-a: ok and error');
  assert.equal(find(calls, 'traces_span_metrics_calls_total', okLabels)[0].value, 90);
  assert.equal(find(calls, 'traces_span_metrics_calls_total', errLabels)[0].value, 10);
  // exactly the default dimensions plus the configured ones
  assert.deepEqual(Object.keys(find(calls, 'traces_span_metrics_calls_total', okLabels)[0].labels)
    .sort(), ['http_method', 'http_status_code', 'service_name', 'span_kind', 'span_name',
    'status_code']);

  for (const [labels, spans] of [[okLabels, sent.a.filter((s) => !s.error)],
    [errLabels, sent.a.filter((s) => s.error)]]) {
    const buckets = find(samples, 'traces_span_metrics_duration_milliseconds_bucket', labels);
    assert.equal(buckets.length, BOUNDS_MS.length + 1);
    for (const b of buckets) {
      const le = b.labels.le === '+Inf' ? Infinity : Number(b.labels.le);
      const want = spans.filter((s) => s.durationMs <= le).length;
      assert.equal(b.value, want, `bucket le=${b.labels.le} of ${labels.status_code}`);
    }
    const sum = find(samples, 'traces_span_metrics_duration_milliseconds_sum', labels)[0];
    assert.equal(sum.value, spans.reduce((a, s) => a + s.durationMs, 0));
    const count = find(samples, 'traces_span_metrics_duration_milliseconds_count', labels)[0];
    assert.equal(count.value, spans.length);
  }

  // service B: client spans, a span attribute wins over the default, no status code attribute
  const b = find(samples, 'traces_span_metrics_calls_total', { service_name: 'svc-b' });
  assert.equal(b.length, 1);
  assert.deepEqual(b[0].labels, { service_name: 'svc-b', span_name: 'opY',
    span_kind: 'SPAN_KIND_CLIENT', status_code: 'STATUS_CODE_UNSET', http_method: 'POST' });
  assert.equal(b[0].value, 5);
  assert.equal(find(samples, 'traces_span_metrics_duration_milliseconds_sum',
    { service_name: 'svc-b' })[0].value, 1250);
});

test('OpenMetrics on request carries exemplars of the spans', async () => {
  const plain = await scrape();
  assert.match(plain.type, /^text\/plain; version=0\.0\.4/);
  assert.doesNotMatch(plain.text, / # \{/, 'no exemplars in the text format');
  const om = await scrape('application/openmetrics-text; version=1.0.0');
  assert.match(om.type, /^application\/openmetrics-text/);
  assert.match(om.text, /# EOF\n$/);
  assert.match(om.text, /^# TYPE traces_span_metrics_calls counter$/m);
  const samples = parseExposition(om.text);
  const ids = new Map(sent.a.map((s) => [s.spanId, s]));
  const withEx = samples.filter((s) => s.exemplar);
  assert.ok(withEx.length > 0, 'some exemplars');
  for (const s of withEx) {
    assert.match(s.exemplar.labels.trace_id, /^[0-9a-f]{32}$/);
    const span = ids.get(s.exemplar.labels.span_id);
    if (s.labels.service_name === 'svc-a') {
      assert.ok(span, `exemplar span ${s.exemplar.labels.span_id} is one we sent`);
      assert.equal(s.exemplar.labels.trace_id, span.traceId);
      assert.equal(s.exemplar.value, span.durationMs);
      if (s.name.endsWith('_bucket')) {
        // an exemplar sits in its own bucket
        const i = BOUNDS_MS.findIndex((b) => span.durationMs <= b);
        const le = i < 0 ? '+Inf' : `${BOUNDS_MS[i]}.0`;
        assert.equal(s.labels.le, le);
      }
    }
  }
});

test('the store got the spans too (the traces pipeline feeds both)', async () => {
  const deadline = Date.now() + 10000;
  for (;;) {
    const res = await fetch(`http://127.0.0.1:${queryPort}/api/services`);
    const body = await res.json();
    const services = (body.data ?? []).slice().sort();
    if ((services.includes('svc-a') && services.includes('svc-b')) || Date.now() > deadline) {
      assert.deepEqual(services.filter((s) => s.startsWith('svc-')), ['svc-a', 'svc-b']);
      break;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
});
