// The internal metrics endpoint of the real binary: the official JS SDK sends spans over
// OTLP/HTTP and OTLP/gRPC into the LMDB store (through batch), the query API answers a
// request, then GET /metrics must show, with the Collector's names and labels: accepted spans
// per transport equal to what each exporter sent, the store exporter's sent spans, the batch
// processor's series, the process series, target_info, Tracehouse's store and query series;
// and `promtool check metrics` (Debian's prometheus package) must find nothing wrong but the
// deliberately missing `_total` suffix on counters (the Collector's default naming).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, test } from 'node:test';

import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';

import { freePorts, Tracehouse } from './lib/harness.mjs';
import { sdkExport } from './lib/sdk.mjs';

let th;
let grpcPort;
let metricsPort;
let queryPort;

before(async () => {
  [grpcPort, metricsPort, queryPort] = await freePorts(3);
  const yaml = [
    'extensions:',
    '  jaeger_storage:',
    '    backends:',
    '      main:',
    '        lmdb: {path: "{out}.store"}',
    '  jaeger_query:',
    '    storage: {traces: main}',
    `    http: {endpoint: "127.0.0.1:${queryPort}"}`,
    'receivers:',
    '  otlp:',
    '    protocols:',
    `      grpc: {endpoint: "127.0.0.1:${grpcPort}"}`,
    '      http: {endpoint: "127.0.0.1:{port}"}',
    'processors:',
    '  batch: {timeout: 50ms}',
    'exporters:',
    '  jaeger_storage_exporter: {trace_storage: main}',
    'service:',
    '  extensions: [jaeger_storage, jaeger_query]',
    '  telemetry:',
    '    logs: {level: info}',
    '    resource: {deployment.environment: it}',
    '    metrics:',
    '      level: normal',
    '      readers:',
    `        - pull: {exporter: {prometheus: {host: 127.0.0.1, port: ${metricsPort}}}}`,
    '  pipelines:',
    '    traces:',
    '      receivers: [otlp]',
    '      processors: [batch]',
    '      exporters: [jaeger_storage_exporter]',
    '',
  ].join('\n');
  th = await Tracehouse.start({ yaml });
});

after(async () => {
  if (th) {
    await th.stopClean();
    await th.cleanup();
  }
});

async function scrape() {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  return res.text();
}

/** The value of one series written exactly as @p series (name and labels), or undefined. */
function valueOf(text, series) {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) {
      return Number(line.slice(series.length + 1));
    }
  }
  return undefined;
}

async function scrapeUntil(pred, ms = 10_000) {
  const deadline = Date.now() + ms;
  let text;
  for (;;) {
    text = await scrape();
    if (pred(text) || Date.now() > deadline) {
      return text;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('spans over HTTP and gRPC are counted per transport, exported, stored', async () => {
  await sdkExport(new ProtoExporter({ url: `http://127.0.0.1:${th.port}/v1/traces` }), 'via-http', 7);
  await sdkExport(new GrpcExporter({ url: `http://127.0.0.1:${grpcPort}` }), 'via-grpc', 5);
  const q = await fetch(`http://127.0.0.1:${queryPort}/api/services`);
  assert.equal(q.status, 200);
  await q.text();
  const sent = 'otelcol_exporter_sent_spans{exporter="jaeger_storage_exporter"}';
  const m = await scrapeUntil((t) => valueOf(t, sent) === 12);

  assert.equal(valueOf(m, 'otelcol_receiver_accepted_spans{receiver="otlp",transport="http"}'), 7);
  assert.equal(valueOf(m, 'otelcol_receiver_accepted_spans{receiver="otlp",transport="grpc"}'), 5);
  assert.equal(valueOf(m, 'otelcol_receiver_refused_spans{receiver="otlp",transport="http"}'), 0);
  assert.equal(valueOf(m, 'otelcol_receiver_refused_spans{receiver="otlp",transport="grpc"}'), 0);
  assert.equal(valueOf(m, 'otelcol_receiver_failed_spans{receiver="otlp",transport="grpc"}'), 0);
  assert.equal(valueOf(m, sent), 12);
  assert.equal(valueOf(m, 'otelcol_exporter_send_failed_spans{exporter="jaeger_storage_exporter"}'), 0);
  assert.equal(valueOf(m, 'otelcol_exporter_enqueue_failed_spans{exporter="jaeger_storage_exporter"}'), 0);
  assert.equal(valueOf(m, 'otelcol_exporter_queue_capacity{data_type="traces",exporter="jaeger_storage_exporter"}'), 1000);
  assert.ok(valueOf(m, 'otelcol_exporter_queue_size{data_type="traces",exporter="jaeger_storage_exporter"}') >= 0);

  assert.equal(valueOf(m, 'otelcol_processor_incoming_items{processor="batch",otel_signal="traces"}'), 12);
  assert.equal(valueOf(m, 'otelcol_processor_outgoing_items{processor="batch",otel_signal="traces"}'), 12);
  assert.equal(valueOf(m, 'otelcol_processor_batch_batch_send_size_sum{processor="batch"}'), 12);
  assert.ok(valueOf(m, 'otelcol_processor_batch_batch_send_size_bucket{processor="batch",le="10"}') >= 1);
  assert.ok(valueOf(m, 'otelcol_processor_batch_batch_send_size_bucket{processor="batch",le="+Inf"}') >= 2);

  assert.ok(valueOf(m, 'otelcol_process_uptime') > 0);
  assert.ok(valueOf(m, 'otelcol_process_cpu_seconds') > 0);
  assert.ok(valueOf(m, 'otelcol_process_memory_rss') > 1_000_000);
  // mallinfo2 sees only glibc's malloc: a sanitizer build (TH_SANITIZED) reads 0.
  const heapMin = process.env.TH_SANITIZED ? 0 : 1;
  assert.ok(valueOf(m, 'otelcol_process_runtime_heap_alloc_bytes') >= heapMin);
  assert.ok(valueOf(m, 'otelcol_process_runtime_total_sys_memory_bytes') >= heapMin);
  assert.match(m, /\ntarget_info\{service_instance_id="[0-9a-f-]{36}",service_name="tracehouse",service_version="[^"]+",deployment_environment="it"\} 1\n/);
  assert.match(m, /\ntracehouse_build_info\{version="[^"]+"\} 1\n/);

  assert.equal(valueOf(m, 'tracehouse_store_spans_written{store="main"}'), 12);
  assert.ok(valueOf(m, 'tracehouse_store_bytes_on_disk{store="main"}') > 0);
  assert.ok(valueOf(m, 'tracehouse_store_bytes_used{store="main"}') > 0);
  assert.ok(valueOf(m, 'tracehouse_store_capacity_bytes{store="main"}') > 0);
  assert.ok(valueOf(m, 'tracehouse_store_filesystem_free_bytes{store="main"}') > 0);
  assert.ok(valueOf(m, 'tracehouse_store_commit_duration_seconds_count{store="main"}') >= 1);
  assert.equal(valueOf(m, 'tracehouse_store_retention_deleted_spans{store="main"}'), 0);
  assert.equal(valueOf(m, 'tracehouse_store_write_errors{store="main"}'), 0);
  assert.ok(valueOf(m, 'tracehouse_store_oldest_span_age_seconds{store="main"}') >= 0);
  assert.equal(valueOf(m, 'tracehouse_query_requests{route="/api/services",status="200"}'), 1);
  assert.equal(valueOf(m, 'tracehouse_query_duration_seconds_count{route="/api/services"}'), 1);
  assert.doesNotMatch(m, /_total[{ ]/, 'counters carry no _total suffix');

  // promtool: only the _total complaints, one per counter family.
  const which = spawnSync('sh', ['-c', 'command -v promtool'], { encoding: 'utf8' });
  if (which.status !== 0) {
    console.log('# promtool not installed (apt-get install prometheus): exposition lint skipped');
    return;
  }
  const lint = spawnSync('promtool', ['check', 'metrics'], { input: m, encoding: 'utf8' });
  const problems = `${lint.stdout}\n${lint.stderr}`.split('\n').map((l) => l.trim()).filter((l) => l);
  const counters = [...m.matchAll(/^# TYPE (\S+) counter$/gm)].map((x) => x[1]);
  assert.ok(counters.length > 10);
  for (const p of problems) {
    assert.match(p, /^(\S+) counter metrics should have "_total" suffix$/, `promtool: ${p}`);
  }
  assert.deepEqual(problems.map((p) => p.split(' ')[0]).sort(), [...counters].sort());
});

test('only GET and HEAD /metrics are served', async () => {
  assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/`)).status, 404);
  assert.equal((await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'POST', body: 'x' })).status, 405);
  const head = await fetch(`http://127.0.0.1:${metricsPort}/metrics`, { method: 'HEAD' });
  assert.equal(head.status, 200);
});
