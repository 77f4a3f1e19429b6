// The otlp_http exporter through real binaries. An edge Tracehouse A runs the edge config
// from docs/exporting.md (ports, the queue directory and the central URL substituted) and
// forwards to a central Tracehouse B (otlp -> file): spans the official JS SDK sends to A
// arrive at B with every field intact, in protobuf and JSON, gzip and uncompressed. The same
// edge also exports to a node server here that decodes bodies independently (protobufjs with
// the project's .proto files, JSON.parse), which also checks the request headers. Then the
// answers: 503 + Retry-After: 2 is retried after about 2 s, a 400 is never retried. The
// documented configs are validated by the binary, and the central one must be the default.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import zlib from 'node:zlib';

import { context, SpanKind, SpanStatusCode, trace, TraceFlags } from '@opentelemetry/api';
import { ExportResultCode, TraceState } from '@opentelemetry/core';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import protobuf from 'protobufjs';

import { BIN, flattenSpans, freePorts, SOURCE_DIR, Tracehouse } from './lib/harness.mjs';

const running = [];
const tempDirs = [];

after(async () => {
  for (const th of running) {
    th.kill();
  }
  for (const d of tempDirs) {
    await fsp.rm(d, { recursive: true, force: true });
  }
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, fn, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) {
      return v;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}`);
    }
    await sleep(50);
  }
}

// --- The documented configs ---------------------------------------------------------------

const DOC = path.join(SOURCE_DIR, 'docs', 'exporting.md');

/** The ```yaml blocks of docs/exporting.md, each with its first comment line as name. */
async function docBlocks() {
  const text = await fsp.readFile(DOC, 'utf8');
  return [...text.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
}

async function edgeYamlFromDoc() {
  const blocks = await docBlocks();
  const edge = blocks.filter((b) => b.startsWith('# edge.yaml'));
  assert.equal(edge.length, 1, 'docs/exporting.md has exactly one "# edge.yaml" block');
  return edge[0];
}

/** Replace text that must be in the doc's YAML (so an edit there cannot silently escape). */
function sub(yaml, from, to) {
  assert.ok(yaml.includes(from), `docs/exporting.md edge.yaml no longer contains ${JSON.stringify(from)}`);
  return yaml.replaceAll(from, to);
}

/**
 * Start the documented edge with its ports and queue directory made local, exporting to
 * @p centralUrl, optionally with another encoding or compression.
 */
async function startEdge({ centralUrl, encoding = 'proto', compression = 'gzip' }) {
  let yaml = await edgeYamlFromDoc();
  const [grpcPort, metricsPort] = await freePorts(2);
  const queueDir = await fsp.mkdtemp(path.join(os.tmpdir(), 'th-edge-queue-'));
  tempDirs.push(queueDir);
  yaml = sub(yaml, '0.0.0.0:4318', '127.0.0.1:{port}');
  yaml = sub(yaml, '0.0.0.0:4317', `127.0.0.1:${grpcPort}`);
  yaml = sub(yaml, 'http://central.example.com:4318', centralUrl);
  yaml = sub(yaml, '/var/lib/tracehouse/queue', queueDir);
  yaml = sub(yaml, 'host: 0.0.0.0', 'host: 127.0.0.1');
  yaml = sub(yaml, 'port: 8888', `port: ${metricsPort}`);
  yaml = sub(yaml, '    compression: gzip\n',
    `    compression: ${compression}\n    encoding: ${encoding}\n`);
  const th = await Tracehouse.start({ yaml });
  running.push(th);
  return th;
}

test('the documented configs are valid, and the central one is the default config', async () => {
  const blocks = await docBlocks();
  const whole = blocks.filter((b) => /^service:/m.test(b));
  assert.ok(whole.length >= 4, 'the doc has the Jaeger, central and edge configs');
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'th-doc-'));
  tempDirs.push(dir);
  for (const [i, b] of whole.entries()) {
    const file = path.join(dir, `doc${i}.yaml`);
    await fsp.writeFile(file, b);
    const r = spawnSync(BIN, ['validate', '--config', file], { encoding: 'utf8' });
    assert.equal(r.status, 0, `docs/exporting.md block ${i} (${b.split('\n')[0]}) is invalid:\n` +
      `${r.stderr}${r.stdout}`);
  }
  const strip = (t) => t.split('\n').filter((l) => l.trim() !== '' && !/^\s*#/.test(l))
    .map((l) => l.replace(/\s+#.*$/, '')).join('\n');
  const central = whole.find((b) => b.startsWith('# central.yaml'));
  assert.ok(central, 'a "# central.yaml" block');
  const def = spawnSync(BIN, ['print-default-config'], { encoding: 'utf8' });
  assert.equal(def.status, 0);
  assert.equal(strip(central), strip(def.stdout), 'central.yaml is the embedded default config');
});

// --- The app and the comparison (the SDK's spans against OTLP/JSON) ------------------------

const hr = (sec, nanos) => [sec, nanos];
const hrToNanos = (t) => BigInt(Math.trunc(t[0])) * 1_000_000_000n + BigInt(Math.trunc(t[1]));
const randomHex = (bytes) => [...crypto.getRandomValues(new Uint8Array(bytes))]
  .map((b) => b.toString(16).padStart(2, '0')).join('');

/** Wraps an exporter and records every span given to it and every result. */
class CapturingExporter {
  constructor(inner) {
    this.inner = inner;
    this.spans = [];
    this.results = [];
  }

  export(spans, done) {
    this.spans.push(...spans);
    this.inner.export(spans, (result) => {
      this.results.push(result);
      done(result);
    });
  }

  shutdown() {
    return this.inner.shutdown();
  }

  forceFlush() {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

/** Spans runApp makes. */
const SPANS_PER_APP = 4;

/** A remote parent with trace state, SERVER root with every attribute type, events and a
 * status, a CLIENT child with a linked PRODUCER span, an INTERNAL grandchild. */
function runApp(provider, tag) {
  const tracer = provider.getTracer(`th-export-${tag}`, '4.5.6',
    { schemaUrl: 'https://opentelemetry.io/schemas/1.26.0' });
  const parentCtx = trace.setSpanContext(context.active(), {
    traceId: randomHex(16),
    spanId: randomHex(8),
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
    traceState: new TraceState('vendor=opaque,th=1'),
  });
  const other = tracer.startSpan('enqueue', { kind: SpanKind.PRODUCER, startTime: hr(1700000000, 1) });
  other.end(hr(1700000000, 999));
  const root = tracer.startSpan('GET /checkout', {
    kind: SpanKind.SERVER,
    startTime: hr(1700000001, 123456789),
    attributes: {
      'http.request.method': 'GET',
      'http.response.status_code': 500,
      'ratio': 0.1,
      'tiny': 5e-324,
      'negative': -17,
      'big.int': Number.MAX_SAFE_INTEGER,
      'flag.true': true,
      'flag.false': false,
      'empty.string': '',
      'unicode': 'héllo wörld ✓ 🚀',
      'quote"back\\slash': 'tab\tnew\nline',
      'strings': ['a', 'b', ''],
      'ints': [1, -2, 3000000000],
      'doubles': [1.5, -0.25, 1e-7],
      'bools': [true, false, true],
    },
  }, parentCtx);
  root.addEvent('request.received', { 'bytes': 1024, 'client': 'curl', 'ok': true, 'w': 0.5 },
    hr(1700000001, 200000001));
  root.addEvent('no.attributes', hr(1700000001, 300000002));
  root.setStatus({ code: SpanStatusCode.ERROR, message: 'payment declined: card expired' });
  const child = tracer.startSpan('POST payments', {
    kind: SpanKind.CLIENT,
    startTime: hr(1700000001, 400000003),
    links: [{ context: other.spanContext(), attributes: { 'link.reason': 'batch', 'link.n': 7 } }],
    attributes: { 'peer.service': 'payments' },
  }, trace.setSpan(context.active(), root));
  child.setStatus({ code: SpanStatusCode.OK });
  const grandchild = tracer.startSpan('serialize', { kind: SpanKind.INTERNAL },
    trace.setSpan(context.active(), child));
  grandchild.setAttribute('size', 42);
  grandchild.end();
  child.end(hr(1700000001, 900000004));
  root.end(hr(1700000002, 5));
}

/** Send the app's spans to @p url with the SDK's protobuf exporter; @returns the SDK spans. */
async function sendWithSdk(url, tag) {
  const capture = new CapturingExporter(new ProtoExporter({ url }));
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: `th-export-${tag}`,
      'transport': tag,
      'custom.int': 42,
      'custom.double': 2.5,
      'custom.bool': true,
      'custom.array': ['x', 'y'],
    }),
    spanProcessors: [new SimpleSpanProcessor(capture)],
  });
  runApp(provider, tag);
  await provider.forceFlush();
  await provider.shutdown();
  assert.equal(capture.spans.length, SPANS_PER_APP);
  for (const r of capture.results) {
    assert.equal(r.code, ExportResultCode.SUCCESS, `SDK export (${tag}) failed: ${r.error?.message}`);
  }
  return capture.spans;
}

function expectAnyValue(v, where) {
  if (typeof v === 'string') {
    return { stringValue: v };
  }
  if (typeof v === 'boolean') {
    return { boolValue: v };
  }
  if (typeof v === 'number') {
    return Number.isInteger(v) ? { intValue: BigInt(v) } : { doubleValue: v };
  }
  if (Array.isArray(v)) {
    return { arrayValue: { values: v.map((x, i) => expectAnyValue(x, `${where}[${i}]`)) } };
  }
  throw new Error(`${where}: unexpected SDK attribute type ${typeof v}`);
}

function normAnyValue(v, where) {
  const keys = Object.keys(v);
  assert.equal(keys.length, 1, `${where}: exactly one AnyValue field: ${JSON.stringify(v)}`);
  const [k] = keys;
  switch (k) {
    case 'stringValue':
    case 'boolValue':
      return { [k]: v[k] };
    case 'intValue':
      return { intValue: BigInt(v.intValue) };
    case 'doubleValue':
      return { doubleValue: Number(v.doubleValue) };
    case 'arrayValue':
      return { arrayValue: { values: (v.arrayValue.values ?? []).map((x, i) => normAnyValue(x, `${where}[${i}]`)) } };
    default:
      throw new Error(`${where}: unexpected AnyValue field ${k}`);
  }
}

function compareAttributes(sdkAttrs, otlpAttrs, where) {
  const got = new Map();
  for (const kv of otlpAttrs ?? []) {
    assert.ok(!got.has(kv.key), `${where}: duplicate key ${kv.key}`);
    got.set(kv.key, normAnyValue(kv.value, `${where}.${kv.key}`));
  }
  const want = Object.entries(sdkAttrs ?? {});
  assert.deepEqual([...got.keys()].sort(), want.map(([k]) => k).sort(), `${where}: attribute keys`);
  for (const [k, v] of want) {
    assert.deepEqual(got.get(k), expectAnyValue(v, `${where}.${k}`), `${where}.${k}`);
  }
}

const u32 = (v) => (v === undefined ? 0 : Number(v));
const bigOr0 = (v) => (v === undefined ? 0n : BigInt(v));

function compareSpan(sdk, got, where) {
  const { span, resource, scope, scopeSchemaUrl } = got;
  const ctx = sdk.spanContext();
  assert.equal(span.traceId, ctx.traceId, `${where}: traceId`);
  assert.equal(span.spanId, ctx.spanId, `${where}: spanId`);
  assert.equal(span.parentSpanId ?? '', sdk.parentSpanContext?.spanId ?? '', `${where}: parentSpanId`);
  assert.equal(span.traceState ?? '', ctx.traceState?.serialize() ?? '', `${where}: traceState`);
  assert.equal(span.name, sdk.name, `${where}: name`);
  assert.equal(Number(span.kind), sdk.kind + 1, `${where}: kind`);
  assert.equal(bigOr0(span.startTimeUnixNano), hrToNanos(sdk.startTime), `${where}: start`);
  assert.equal(bigOr0(span.endTimeUnixNano), hrToNanos(sdk.endTime), `${where}: end`);
  const flags = (ctx.traceFlags & 0xff) | 0x100 | (sdk.parentSpanContext?.isRemote ? 0x200 : 0);
  assert.equal(u32(span.flags), flags, `${where}: flags`);
  compareAttributes(sdk.attributes, span.attributes, `${where}.attributes`);
  assert.equal(u32(span.droppedAttributesCount), sdk.droppedAttributesCount, `${where}: dropped attributes`);
  assert.equal(u32(span.droppedEventsCount), sdk.droppedEventsCount, `${where}: dropped events`);
  assert.equal(u32(span.droppedLinksCount), sdk.droppedLinksCount, `${where}: dropped links`);
  const events = span.events ?? [];
  assert.equal(events.length, sdk.events.length, `${where}: events`);
  sdk.events.forEach((e, i) => {
    assert.equal(events[i].name, e.name, `${where}.events[${i}].name`);
    assert.equal(bigOr0(events[i].timeUnixNano), hrToNanos(e.time), `${where}.events[${i}].time`);
    compareAttributes(e.attributes, events[i].attributes, `${where}.events[${i}].attributes`);
  });
  const links = span.links ?? [];
  assert.equal(links.length, sdk.links.length, `${where}: links`);
  sdk.links.forEach((l, i) => {
    assert.equal(links[i].traceId, l.context.traceId, `${where}.links[${i}].traceId`);
    assert.equal(links[i].spanId, l.context.spanId, `${where}.links[${i}].spanId`);
    assert.equal(links[i].traceState ?? '', l.context.traceState?.serialize() ?? '');
    compareAttributes(l.attributes, links[i].attributes, `${where}.links[${i}].attributes`);
    const lflags = (l.context.traceFlags & 0xff) | 0x100 | (l.context.isRemote ? 0x200 : 0);
    assert.equal(u32(links[i].flags), lflags, `${where}.links[${i}].flags`);
  });
  const status = span.status ?? {};
  assert.equal(Number(status.code ?? 0), sdk.status.code, `${where}: status code`);
  assert.equal(status.message ?? '', sdk.status.message ?? '', `${where}: status message`);
  compareAttributes(sdk.resource.attributes, resource.attributes, `${where}.resource`);
  assert.equal(scope.name, sdk.instrumentationScope.name, `${where}: scope name`);
  assert.equal(scope.version ?? '', sdk.instrumentationScope.version ?? '', `${where}: scope version`);
  assert.equal(scopeSchemaUrl ?? '', sdk.instrumentationScope.schemaUrl ?? '', `${where}: scope schema URL`);
}

/** Compare what was sent under @p tag with the spans found in @p requests (OTLP/JSON). */
function compareAll(sent, requests, tag) {
  const got = flattenSpans(requests).filter((g) => (g.resource.attributes ?? [])
    .some((kv) => kv.key === 'transport' && kv.value.stringValue === tag));
  assert.equal(got.length, sent.length, `${tag}: ${sent.length} spans sent, ${got.length} arrived`);
  const byId = new Map(got.map((g) => [g.span.spanId, g]));
  assert.equal(byId.size, got.length, `${tag}: no span twice`);
  for (const s of sent) {
    const g = byId.get(s.spanContext().spanId);
    assert.ok(g, `${tag}: span ${s.name} is missing`);
    compareSpan(s, g, `${tag}:${s.name}`);
  }
}

const VARIANTS = [
  { encoding: 'proto', compression: 'gzip' },
  { encoding: 'json', compression: 'none' },
  { encoding: 'json', compression: 'gzip' },
  { encoding: 'proto', compression: 'none' },
];

test('SDK -> documented edge -> central Tracehouse: every field intact (proto/json x gzip/none)',
  async () => {
    const central = await Tracehouse.start({});
    running.push(central);
    const sent = new Map();
    for (const v of VARIANTS) {
      const tag = `${v.encoding}-${v.compression}`;
      const edge = await startEdge({ centralUrl: central.baseUrl, ...v });
      sent.set(tag, await sendWithSdk(`${edge.baseUrl}/v1/traces`, tag));
      // Delivered through the disk queue to the central instance (and written by its file
      // exporter) before the edge stops.
      await waitFor(`${tag} spans at the central instance`, async () => flattenSpans(await central.readOutput())
        .filter((g) => (g.resource.attributes ?? []).some((kv) => kv.value.stringValue === tag)).length >= SPANS_PER_APP);
      await edge.stopClean();
      assert.doesNotMatch(edge.stderr, /Exporting failed/);
      await edge.cleanup();
    }
    await central.stopClean();
    const requests = await central.readOutput();
    for (const [tag, spans] of sent) {
      compareAll(spans, requests, tag);
    }
    assert.equal(flattenSpans(requests).length, SPANS_PER_APP * VARIANTS.length, 'nothing else arrived');
    await central.cleanup();
  });

// --- An independent decoder: protobufjs over the project's .proto files ------------------

let protoRoot;

async function protos() {
  if (!protoRoot) {
    protoRoot = new protobuf.Root();
    protoRoot.resolvePath = (origin, target) => path.join(SOURCE_DIR, 'proto', target);
    await protoRoot.load([
      'opentelemetry/proto/collector/trace/v1/trace_service.proto',
      'google/rpc/status.proto',
    ], { keepCase: false });
  }
  return protoRoot;
}

/** protobufjs's object → the OTLP/JSON shape: ids as lowercase hex, int64 as strings. */
function toOtlpJson(v, key) {
  if (v instanceof Uint8Array) {
    return ['traceId', 'spanId', 'parentSpanId'].includes(key)
      ? Buffer.from(v).toString('hex')
      : Buffer.from(v).toString('base64');
  }
  if (Array.isArray(v)) {
    return v.map((x) => toOtlpJson(x, key));
  }
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toOtlpJson(x, k)]));
  }
  return v;
}

/**
 * A node OTLP/HTTP server: decodes every POST on its own (gunzip, protobufjs or JSON.parse)
 * and answers with @p respond(req, index) → {status, headers, body}.
 */
async function startDecoder(respond = () => ({ status: 200 })) {
  const root = await protos();
  const Req = root.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
  const received = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks);
      const entry = { at: Date.now(), method: req.method, url: req.url, headers: req.headers };
      try {
        const enc = req.headers['content-encoding'];
        const body = enc === 'gzip' ? zlib.gunzipSync(raw) : raw;
        if (req.headers['content-type'] === 'application/json') {
          entry.request = JSON.parse(body.toString('utf8'));
        } else {
          const msg = Req.decode(body);
          entry.request = toOtlpJson(Req.toObject(msg, { longs: String, enums: Number }));
        }
      } catch (err) {
        entry.error = String(err);
      }
      const index = received.length;
      received.push(entry);
      const r = respond(entry, index);
      res.writeHead(r.status, r.headers ?? {});
      res.end(r.body ?? '');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return { server, received, url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(r)) };
}

test('the documented edge to an independent decoder: protobufjs / JSON.parse, headers', async () => {
  const dec = await startDecoder();
  try {
    for (const v of VARIANTS) {
      const tag = `${v.encoding}-${v.compression}-indep`;
      const edge = await startEdge({ centralUrl: dec.url, ...v });
      const before = dec.received.length;
      const sent = await sendWithSdk(`${edge.baseUrl}/v1/traces`, tag);
      await waitFor(`${tag} at the decoder`, () => flattenSpans(dec.received.slice(before)
        .map((e) => e.request ?? {})).length >= SPANS_PER_APP);
      await edge.stopClean();
      await edge.cleanup();
      const mine = dec.received.slice(before);
      for (const e of mine) {
        assert.equal(e.error, undefined, `${tag}: the body did not decode: ${e.error}`);
        assert.equal(e.method, 'POST');
        assert.equal(e.url, '/v1/traces');
        assert.equal(e.headers['content-type'],
          v.encoding === 'json' ? 'application/json' : 'application/x-protobuf');
        assert.equal(e.headers['content-encoding'], v.compression === 'gzip' ? 'gzip' : undefined);
        assert.match(e.headers['user-agent'], /^tracehouse\/\d+\.\d+\.\d+ \(linux\/[a-z0-9_]+\)$/);
      }
      compareAll(sent, mine.map((e) => e.request), tag);
    }
  } finally {
    await dec.close();
  }
});

// --- Answers: Retry-After and permanent errors --------------------------------------------

/** An edge with an in-memory queue and short backoff, exporting to @p url (with @p extra
 * exporter lines, indented by four spaces). */
async function startPlainEdge(url, extra = []) {
  const yaml = [
    'receivers:',
    '  otlp:',
    '    protocols:',
    '      http:',
    '        endpoint: 127.0.0.1:{port}',
    'exporters:',
    '  otlphttp:',
    `    endpoint: ${url}`,
    '    compression: none',
    '    retry_on_failure:',
    '      initial_interval: 100ms',
    '      max_interval: 200ms',
    '      max_elapsed_time: 20s',
    ...extra,
    'service:',
    '  telemetry:',
    '    metrics:',
    '      level: none',
    '  pipelines:',
    '    traces:',
    '      receivers: [otlp]',
    '      exporters: [otlphttp]',
    '',
  ].join('\n');
  const th = await Tracehouse.start({ yaml });
  running.push(th);
  return th;
}

const oneSpan = (name) => JSON.stringify({
  resourceSpans: [{
    resource: { attributes: [{ key: 'service.name', value: { stringValue: 'answers' } }] },
    scopeSpans: [{
      spans: [{
        traceId: randomHex(16), spanId: randomHex(8), name, kind: 1,
        startTimeUnixNano: '1700000000000000000', endTimeUnixNano: '1700000001000000000',
      }],
    }],
  }],
});

async function postJson(th, body) {
  const r = await fetch(`${th.baseUrl}/v1/traces`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body,
  });
  assert.equal(r.status, 200, await r.text());
}

test('503 with Retry-After: 2 is retried after about two seconds, then delivered', async () => {
  const dec = await startDecoder((e, i) => (i === 0
    ? { status: 503, headers: { 'Retry-After': '2', 'Content-Type': 'application/json' },
      body: JSON.stringify({ code: 14, message: 'busy, come back later' }) }
    : { status: 200, headers: { 'Content-Type': 'application/x-protobuf' } }));
  try {
    const edge = await startPlainEdge(dec.url);
    await postJson(edge, oneSpan('retry-after'));
    await waitFor('the retry', () => dec.received.length >= 2, 15_000);
    const gap = dec.received[1].at - dec.received[0].at;
    // The backoff alone would retry after 100-200 ms.
    assert.ok(gap >= 1900, `retried after ${gap} ms, before Retry-After`);
    assert.ok(gap < 4500, `retried after ${gap} ms, long after Retry-After`);
    for (const e of dec.received) {
      assert.equal(e.error, undefined);
      assert.equal(flattenSpans([e.request])[0].span.name, 'retry-after');
    }
    await sleep(500);
    assert.equal(dec.received.length, 2, 'delivered once the server said 200');
    await edge.stopClean();
    assert.match(edge.stderr, /HTTP 503 Service Unavailable from http:\/\/127\.0\.0\.1:\d+\/v1\/traces: busy, come back later/);
    await edge.cleanup();
  } finally {
    await dec.close();
  }
});

test('a 400 is not retried, and the log says what the server said', async () => {
  const root = await protos();
  const Status = root.lookupType('google.rpc.Status');
  const body = Buffer.from(Status.encode(Status.create({ code: 3, message: 'span name is not allowed here' })).finish());
  const dec = await startDecoder(() => ({
    status: 400, headers: { 'Content-Type': 'application/x-protobuf' }, body,
  }));
  try {
    const edge = await startPlainEdge(dec.url);
    await postJson(edge, oneSpan('refused'));
    await waitFor('the request', () => dec.received.length >= 1);
    // Ten backoff intervals' worth of time: a retry would have come.
    await sleep(2000);
    assert.equal(dec.received.length, 1, 'a 400 must not be retried');
    await edge.stopClean();
    assert.match(edge.stderr, /HTTP 400 Bad Request from http:\/\/127\.0\.0\.1:\d+\/v1\/traces: span name is not allowed here/);
    await edge.cleanup();
  } finally {
    await dec.close();
  }
});

// --- TLS and HTTP/2 ---------------------------------------------------------------------

/** A self-signed certificate for backend.internal (not the address the test connects to). */
async function makeCert(dir) {
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256',
    '-nodes', '-subj', '/CN=backend.internal', '-addext', 'subjectAltName=DNS:backend.internal',
    '-days', '1', '-keyout', key, '-out', cert], { encoding: 'utf8' });
  assert.equal(r.status, 0, `openssl: ${r.stderr}`);
  return { key, cert };
}

test('TLS: CA file, server_name_override, insecure_skip_verify; HTTP/2 by ALPN, or HTTP/1.1', async () => {
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'th-tls-'));
  tempDirs.push(dir);
  const { key, cert } = await makeCert(dir);
  const seen = [];
  let sessions = 0;
  const server = http2.createSecureServer({
    key: await fsp.readFile(key), cert: await fsp.readFile(cert), allowHTTP1: true,
  }, (req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      seen.push({ version: req.httpVersion, headers: req.headers, len: Buffer.concat(chunks).length });
      res.writeHead(200, { 'Content-Type': 'application/x-protobuf' });
      res.end();
    });
  });
  server.on('secureConnection', () => { sessions++; });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const url = `https://127.0.0.1:${server.address().port}`;
  const cases = [
    { name: 'h2 with CA and name override', version: '2.0',
      tls: ['    tls:', `      ca_file: ${cert}`, '      server_name_override: backend.internal'] },
    { name: 'h1 when force_attempt_http2 is off', version: '1.1',
      tls: ['    force_attempt_http2: false', '    tls:', `      ca_file: ${cert}`,
        '      server_name_override: backend.internal'] },
    { name: 'insecure_skip_verify', version: '2.0',
      tls: ['    tls:', '      insecure_skip_verify: true'] },
  ];
  try {
    for (const c of cases) {
      seen.length = 0;
      sessions = 0;
      const edge = await startPlainEdge(url, c.tls);
      for (let i = 0; i < 5; i++) {
        await postJson(edge, oneSpan(`tls-${i}`));
      }
      await waitFor(`${c.name}: 5 requests`, () => seen.length >= 5);
      await edge.stopClean();
      for (const s of seen) {
        assert.equal(s.version, c.version, `${c.name}: HTTP version`);
        assert.ok(s.len > 0);
        // The real host stays in Host / :authority whatever name TLS checked.
        assert.equal(s.headers[':authority'] ?? s.headers.host, url.slice('https://'.length));
      }
      if (c.version === '2.0') {
        assert.equal(sessions, 1, `${c.name}: one multiplexed connection`);
      }
      assert.doesNotMatch(edge.stderr, /Exporting failed/);
      await edge.cleanup();
    }
    // The certificate is for backend.internal, not 127.0.0.1: without the override the
    // handshake fails, nothing is delivered, and the failure is retried.
    seen.length = 0;
    const edge = await startPlainEdge(url, ['    tls:', `      ca_file: ${cert}`]);
    await postJson(edge, oneSpan('tls-bad-name'));
    await sleep(1500);
    assert.equal(seen.length, 0);
    await edge.stopClean();
    assert.match(edge.stderr, /Will retry[^\n]*POST https:\/\/127\.0\.0\.1:\d+\/v1\/traces failed: [^\n]*(SSL|certificate)/i);
    await edge.cleanup();
  } finally {
    await new Promise((r) => server.close(r));
  }
});
