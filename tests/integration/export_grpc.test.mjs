// The otlp_grpc exporter (alias otlp) through real binaries:
//
//  1. Tracehouse A (OTLP/HTTP receiver -> otlp exporter) forwards to Tracehouse B (OTLP/gRPC
//     receiver -> file exporter). Spans made by the official JS SDK and sent to A come out of
//     B's file with every field intact, with gzip and with no compression.
//  2. An independent server: @grpc/grpc-js serving TraceService/Export, decoding with
//     protobufjs against the project's own proto files. It answers UNAVAILABLE once, then OK:
//     the exporter retries and the second call carries the same spans, with the configured
//     metadata. A permanent INVALID_ARGUMENT is not retried and is logged. Over TLS (grpc-js
//     with a certificate from a throwaway CA), the exporter verifies it with tls::ca_file.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';

import * as grpc from '@grpc/grpc-js';
import { SpanKind, SpanStatusCode, TraceFlags, context, trace } from '@opentelemetry/api';
import { ExportResultCode, TraceState } from '@opentelemetry/core';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import protobuf from 'protobufjs';

import { SOURCE_DIR, Tracehouse, flattenSpans, freePorts } from './lib/harness.mjs';

const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

// --- The app: spans with every field the SDK can set -------------------------------------

const hr = (sec, nanos) => [sec, nanos];
const hrToNanos = (t) => (BigInt(Math.trunc(t[0])) * 1_000_000_000n + BigInt(Math.trunc(t[1]))).toString();

/** Run a small app and send its spans to @p url with the protobuf OTLP/HTTP exporter. */
async function sendSpans(url, tag) {
  const sent = [];
  const results = [];
  const inner = new ProtoExporter({ url });
  const exporter = {
    export(spans, done) {
      sent.push(...spans);
      inner.export(spans, (r) => { results.push(r); done(r); });
    },
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush?.() ?? Promise.resolve(),
  };
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'grpc-it', tag, 'custom.int': 7,
      'custom.array': ['x', 'y'] }),
    spanProcessors: [new BatchSpanProcessor(exporter)], // one export: one request
  });
  const tracer = provider.getTracer('export-grpc-it', '4.5.6',
    { schemaUrl: 'https://opentelemetry.io/schemas/1.26.0' });
  const remote = {
    traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7',
    traceFlags: TraceFlags.SAMPLED, isRemote: true, traceState: new TraceState('vendor=x,th=1'),
  };
  const other = tracer.startSpan('enqueue', { kind: SpanKind.PRODUCER, startTime: hr(1700000000, 1) });
  other.end(hr(1700000000, 999));
  const root = tracer.startSpan('GET /cart', {
    kind: SpanKind.SERVER,
    startTime: hr(1700000001, 123456789),
    attributes: {
      'http.request.method': 'GET', 'code': 500, 'ratio': 0.25, 'neg': -17,
      'big': Number.MAX_SAFE_INTEGER, 'yes': true, 'no': false, 'empty': '',
      'unicode': 'héllo ✓ 🚀', 'strings': ['a', ''], 'ints': [1, -2, 3000000000],
      'doubles': [1.5, 1e-7], 'bools': [true, false],
    },
  }, trace.setSpanContext(context.active(), remote));
  root.addEvent('received', { bytes: 1024, who: 'curl' }, hr(1700000001, 200000001));
  root.addEvent('bare', hr(1700000001, 300000002));
  root.setStatus({ code: SpanStatusCode.ERROR, message: 'card expired' });
  const child = tracer.startSpan('POST pay', {
    kind: SpanKind.CLIENT,
    startTime: hr(1700000001, 400000003),
    links: [{ context: other.spanContext(), attributes: { 'link.n': 7 } }],
  }, trace.setSpan(context.active(), root));
  child.setStatus({ code: SpanStatusCode.OK });
  child.end(hr(1700000001, 900000004));
  root.end(hr(1700000002, 5));
  await provider.forceFlush();
  await provider.shutdown();
  assert.ok(results.length >= 1);
  for (const r of results) {
    assert.equal(r.code, ExportResultCode.SUCCESS, `SDK export to ${url} failed: ${r.error?.message}`);
  }
  assert.equal(sent.length, 3);
  return sent;
}

// --- One normal form for spans from the SDK, from OTLP/JSON and from protobufjs ----------

/** AnyValue as {s}|{i}|{d}|{b}|{a}|{k}, integers as decimal strings. */
function normSdkValue(v) {
  if (typeof v === 'string') return { s: v };
  if (typeof v === 'boolean') return { b: v };
  if (typeof v === 'number') return Number.isInteger(v) ? { i: String(v) } : { d: v };
  if (Array.isArray(v)) return { a: v.map(normSdkValue) };
  throw new Error(`unexpected SDK value ${v}`);
}

/** An AnyValue from OTLP/JSON or from protobufjs toObject({longs: String}). */
function normWireValue(v) {
  if (v === undefined || v === null) return {};
  if ('stringValue' in v) return { s: v.stringValue };
  if ('boolValue' in v) return { b: v.boolValue };
  if ('intValue' in v) return { i: String(v.intValue) };
  if ('doubleValue' in v) return { d: Number(v.doubleValue) };
  if ('arrayValue' in v) return { a: (v.arrayValue.values ?? []).map(normWireValue) };
  if ('kvlistValue' in v) return { k: normWireAttrs(v.kvlistValue.values) };
  return {};
}

const sortAttrs = (list) => list.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
const normSdkAttrs = (a) => sortAttrs(Object.entries(a ?? {}).map(([k, v]) => [k, normSdkValue(v)]));
const normWireAttrs = (a) => sortAttrs((a ?? []).map((kv) => [kv.key, normWireValue(kv.value)]));
const hex = (b) => (b === undefined || b === null ? '' : typeof b === 'string' ? b : Buffer.from(b).toString('hex'));
const num = (v) => (v === undefined || v === null ? 0 : Number(v));
const nanos = (v) => (v === undefined || v === null ? '0' : String(v));

function normSdkSpan(s) {
  const ctx = s.spanContext();
  return {
    traceId: ctx.traceId, spanId: ctx.spanId, parentSpanId: s.parentSpanContext?.spanId ?? '',
    traceState: ctx.traceState?.serialize() ?? '', name: s.name, kind: s.kind + 1,
    start: hrToNanos(s.startTime), end: hrToNanos(s.endTime),
    flags: (ctx.traceFlags & 0xff) | 0x100 | (s.parentSpanContext?.isRemote ? 0x200 : 0),
    attributes: normSdkAttrs(s.attributes),
    events: s.events.map((e) => ({ name: e.name, time: hrToNanos(e.time), attributes: normSdkAttrs(e.attributes) })),
    links: s.links.map((l) => ({
      traceId: l.context.traceId, spanId: l.context.spanId, traceState: l.context.traceState?.serialize() ?? '',
      attributes: normSdkAttrs(l.attributes),
      flags: (l.context.traceFlags & 0xff) | 0x100 | (l.context.isRemote ? 0x200 : 0),
    })),
    status: { code: s.status.code, message: s.status.message ?? '' },
    dropped: [s.droppedAttributesCount, s.droppedEventsCount, s.droppedLinksCount],
    resource: normSdkAttrs(s.resource.attributes),
    scope: { name: s.instrumentationScope.name, version: s.instrumentationScope.version ?? '',
      schemaUrl: s.instrumentationScope.schemaUrl ?? '' },
  };
}

/** Spans of an ExportTraceServiceRequest (OTLP/JSON, or protobufjs toObject) in normal form. */
function normWireRequest(req) {
  const out = [];
  for (const rs of req.resourceSpans ?? []) {
    for (const ss of rs.scopeSpans ?? []) {
      for (const sp of ss.spans ?? []) {
        out.push({
          traceId: hex(sp.traceId), spanId: hex(sp.spanId), parentSpanId: hex(sp.parentSpanId),
          traceState: sp.traceState ?? '', name: sp.name, kind: num(sp.kind),
          start: nanos(sp.startTimeUnixNano), end: nanos(sp.endTimeUnixNano), flags: num(sp.flags),
          attributes: normWireAttrs(sp.attributes),
          events: (sp.events ?? []).map((e) => ({ name: e.name, time: nanos(e.timeUnixNano),
            attributes: normWireAttrs(e.attributes) })),
          links: (sp.links ?? []).map((l) => ({ traceId: hex(l.traceId), spanId: hex(l.spanId),
            traceState: l.traceState ?? '', attributes: normWireAttrs(l.attributes), flags: num(l.flags) })),
          status: { code: num(sp.status?.code), message: sp.status?.message ?? '' },
          dropped: [num(sp.droppedAttributesCount), num(sp.droppedEventsCount), num(sp.droppedLinksCount)],
          resource: normWireAttrs(rs.resource?.attributes),
          scope: { name: ss.scope?.name ?? '', version: ss.scope?.version ?? '', schemaUrl: ss.schemaUrl ?? '' },
        });
      }
    }
  }
  return out;
}

function assertSameSpans(sent, got, where) {
  const want = sent.map(normSdkSpan).sort((a, b) => (a.spanId < b.spanId ? -1 : 1));
  const have = [...got].sort((a, b) => (a.spanId < b.spanId ? -1 : 1));
  assert.deepEqual(have, want, where);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(pred, ms, what) {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(50);
  }
}

const telemetry = ['  telemetry:', '    logs: {level: info}', '    metrics: {level: none}'];

// --- 1. Tracehouse A -> Tracehouse B -------------------------------------------------------

test('A (otlp exporter) forwards SDK spans to B (gRPC receiver) intact, gzip and none', async () => {
  const [grpcPort] = await freePorts(1);
  const b = await Tracehouse.start({
    yaml: [
      'receivers:', '  otlp:', '    protocols:',
      '      http: {endpoint: "127.0.0.1:{port}"}',
      `      grpc: {endpoint: "127.0.0.1:${grpcPort}"}`,
      'exporters:', '  file: {path: "{out}", flush_interval: 100ms}',
      'service:', ...telemetry,
      '  pipelines:', '    traces: {receivers: [otlp], exporters: [file]}', '',
    ].join('\n'),
  });
  const sent = {};
  try {
    for (const compression of ['gzip', 'none']) {
      const a = await Tracehouse.start({
        yaml: [
          'receivers:', '  otlp:', '    protocols:', '      http: {endpoint: "127.0.0.1:{port}"}',
          'exporters:', '  otlp:', `    endpoint: 127.0.0.1:${grpcPort}`,
          '    tls: {insecure: true}', `    compression: ${compression}`,
          'service:', ...telemetry,
          '  pipelines:', '    traces: {receivers: [otlp], exporters: [otlp]}', '',
        ].join('\n'),
      });
      try {
        sent[compression] = await sendSpans(`${a.baseUrl}/v1/traces`, compression);
        // SIGTERM drains A's queue: the spans are at B when A exits cleanly.
        await a.stopClean();
      } catch (err) {
        a.kill();
        throw new Error(`${err.message}\nA stderr:\n${a.stderr}\nB stderr:\n${b.stderr}`);
      }
      await a.cleanup();
    }
    await until(async () => flattenSpans(await b.readOutput()).length >= 6, 10_000, 'six spans at B');
    await b.stopClean();
    const requests = await b.readOutput();
    const all = requests.flatMap(normWireRequest);
    assert.equal(all.length, 6, 'each span arrives once');
    for (const compression of ['gzip', 'none']) {
      const got = all.filter((s) => s.resource.some(([k, v]) => k === 'tag' && v.s === compression));
      assertSameSpans(sent[compression], got, `spans through A -> B with ${compression}`);
    }
    await b.cleanup();
  } finally {
    b.kill();
  }
});

// --- 2. An independent gRPC server -------------------------------------------------------

/** protobufjs types from the project's proto files. */
function loadTypes() {
  const protoDir = path.join(SOURCE_DIR, 'proto');
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => path.join(protoDir, target);
  root.loadSync('opentelemetry/proto/collector/trace/v1/trace_service.proto', { keepCase: false });
  root.resolveAll();
  return {
    Req: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest'),
    Resp: root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse'),
  };
}

/** A throwaway CA and a server certificate for localhost, made with the openssl CLI. */
function makeCerts() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'th-grpc-tls-'));
  const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '2',
    '-subj', '/CN=it CA', '-addext', 'basicConstraints=critical,CA:TRUE');
  run('req', ...ec, '-keyout', 'srv.key', '-out', 'srv.csr', '-subj', '/CN=localhost');
  fs.writeFileSync(path.join(dir, 'srv.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  run('x509', '-req', '-in', 'srv.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
    '-out', 'srv.crt', '-days', '2', '-extfile', 'srv.ext');
  return { dir, ca: path.join(dir, 'ca.crt'), cert: fs.readFileSync(path.join(dir, 'srv.crt')),
    key: fs.readFileSync(path.join(dir, 'srv.key')) };
}

/** A grpc-js server for TraceService/Export that answers with @p answers in turn (then OK). */
async function startGrpcServer(answers, creds = grpc.ServerCredentials.createInsecure()) {
  const { Req, Resp } = loadTypes();
  const calls = [];
  const server = new grpc.Server();
  server.addService({
    Export: {
      path: EXPORT_PATH, requestStream: false, responseStream: false,
      requestSerialize: (m) => Buffer.from(Req.encode(m).finish()),
      requestDeserialize: (b) => Req.decode(b),
      responseSerialize: (m) => Buffer.from(Resp.encode(m).finish()),
      responseDeserialize: (b) => Resp.decode(b),
    },
  }, {
    Export(call, callback) {
      const req = Req.toObject(call.request, { longs: String, enums: Number, defaults: false });
      calls.push({ req, metadata: call.metadata.getMap() });
      const a = answers[calls.length - 1];
      if (a) {
        callback({ code: a.code, details: a.details });
      } else {
        callback(null, Resp.create({}));
      }
    },
  });
  const port = await new Promise((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', creds,
      (err, p) => (err ? reject(err) : resolve(p)));
  });
  return { server, port, calls };
}

async function exporterTo(port, extra = [], tls = '    tls: {insecure: true}', host = 'http://127.0.0.1') {
  return Tracehouse.start({
    yaml: [
      'receivers:', '  otlp:', '    protocols:', '      http: {endpoint: "127.0.0.1:{port}"}',
      'exporters:', '  otlp_grpc:', `    endpoint: ${host}:${port}`,
      tls, '    headers: {X-Tenant: acme, authorization: "Bearer t0k"}',
      '    retry_on_failure: {initial_interval: 100ms, max_interval: 200ms}', ...extra,
      'service:', ...telemetry,
      '  pipelines:', '    traces: {receivers: [otlp], exporters: [otlp_grpc]}', '',
    ].join('\n'),
  });
}

test('grpc-js server: UNAVAILABLE once, then OK: retried with the same spans and metadata', async () => {
  const { server, port, calls } = await startGrpcServer([
    { code: grpc.status.UNAVAILABLE, details: 'warming up' },
  ]);
  let a;
  try {
    a = await exporterTo(port);
    const sent = await sendSpans(`${a.baseUrl}/v1/traces`, 'grpc-js');
    await until(() => calls.length >= 2, 15_000, 'the retry to reach the gRPC server');
    await sleep(300);
    assert.equal(calls.length, 2, 'one failed call, one retry, no more');
    for (const c of calls) {
      assertSameSpans(sent, normWireRequest(c.req), 'spans decoded by protobufjs');
      assert.equal(c.metadata['x-tenant'], 'acme');
      assert.equal(c.metadata.authorization, 'Bearer t0k');
      assert.match(String(c.metadata['user-agent']), /Tracehouse\//);
    }
    await a.stopClean();
    await a.cleanup();
  } catch (err) {
    a?.kill();
    throw new Error(`${err.message}\nstderr:\n${a?.stderr}`);
  } finally {
    server.forceShutdown();
  }
});

test('grpc-js server: INVALID_ARGUMENT is permanent: one call, no retry, logged', async () => {
  const { server, port, calls } = await startGrpcServer([
    { code: grpc.status.INVALID_ARGUMENT, details: 'span name missing' },
    { code: grpc.status.INVALID_ARGUMENT, details: 'span name missing' },
  ]);
  let a;
  try {
    a = await exporterTo(port, ['    compression: none']);
    await sendSpans(`${a.baseUrl}/v1/traces`, 'permanent');
    await until(() => calls.length >= 1, 10_000, 'the call');
    await sleep(800); /* several backoff intervals: a retry would have come */
    assert.equal(calls.length, 1);
    await a.stopClean();
    assert.match(a.stderr, /INVALID_ARGUMENT/);
    assert.match(a.stderr, /span name missing/);
    await a.cleanup();
  } catch (err) {
    a?.kill();
    throw new Error(`${err.message}\nstderr:\n${a?.stderr}`);
  } finally {
    server.forceShutdown();
  }
});

test('grpc-js server over TLS: the certificate is verified against tls::ca_file', async () => {
  const certs = makeCerts();
  const creds = grpc.ServerCredentials.createSsl(null,
    [{ private_key: certs.key, cert_chain: certs.cert }], false);
  const { server, port, calls } = await startGrpcServer([], creds);
  let a;
  try {
    a = await exporterTo(port, [], `    tls: {ca_file: ${JSON.stringify(certs.ca)}}`,
      'localhost');
    const sent = await sendSpans(`${a.baseUrl}/v1/traces`, 'tls');
    await until(() => calls.length >= 1, 10_000, 'the call over TLS');
    assertSameSpans(sent, normWireRequest(calls[0].req), 'spans over TLS');
    await a.stopClean();
    await a.cleanup();
    // Without the CA the system store does not know the server: nothing gets through, and
    // the log says why.
    a = await exporterTo(port, [],
      '    tls: {insecure: false}', 'localhost');
    await sendSpans(`${a.baseUrl}/v1/traces`, 'tls-untrusted');
    await until(() => /certificate verify failed/.test(a.stderr), 10_000, 'the verify failure in the log');
    assert.equal(calls.length, 1);
    await a.stopClean();
    await a.cleanup();
  } catch (err) {
    a?.kill();
    throw new Error(`${err.message}\nstderr:\n${a?.stderr}`);
  } finally {
    server.forceShutdown();
    fs.rmSync(certs.dir, { recursive: true, force: true });
  }
});
