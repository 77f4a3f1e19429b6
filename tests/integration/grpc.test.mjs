// OTLP/gRPC end to end. The official JS SDK's @opentelemetry/exporter-trace-otlp-grpc sends a
// trace with every attribute type, events, a link and statuses to a running tracehouse (with
// and without gzip), and every field written by the file exporter is compared with what the
// SDK handed its exporter, as sdk.test.mjs does for OTLP/HTTP. Then raw node:http2 clients
// try hostile and odd calls: an unknown method, a bad protobuf, an oversize message, a
// truncated message, a frame cut off by a close, many streams at once on one connection, and
// garbage instead of the HTTP/2 preface; the server must answer each correctly and keep
// serving.

import assert from 'node:assert/strict';
import http2 from 'node:http2';
import net from 'node:net';
import zlib from 'node:zlib';
import { after, before, test } from 'node:test';

import { context, SpanKind, SpanStatusCode, trace, TraceFlags } from '@opentelemetry/api';
import { ExportResultCode, TraceState } from '@opentelemetry/core';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

import { flattenSpans, freePorts, Tracehouse } from './lib/harness.mjs';

const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';

let th;
let grpcPort;

before(async () => {
  [grpcPort] = await freePorts(1);
  const yaml = [
    'receivers:',
    '  otlp:',
    '    protocols:',
    '      grpc:',
    `        endpoint: 127.0.0.1:${grpcPort}`,
    '        max_recv_msg_size_mib: 1',
    '      http:',
    '        endpoint: 127.0.0.1:{port}',
    'exporters:',
    '  file:',
    '    path: {out}',
    '    flush_interval: 100ms',
    'service:',
    '  telemetry:',
    '    logs:',
    '      level: info',
    '    metrics:',
    '      level: none',
    '  pipelines:',
    '    traces:',
    '      receivers: [otlp]',
    '      exporters: [file]',
    '',
  ].join('\n');
  th = await Tracehouse.start({ yaml });
  // gRPC binds before HTTP, so it is listening once the HTTP port answers.
});

after(async () => {
  if (th) {
    th.kill();
  }
});

// --- The SDK side ---------------------------------------------------------------------------

class CapturingExporter {
  constructor(inner) {
    this.inner = inner;
    this.spans = [];
    this.results = [];
  }

  export(spans, done) {
    this.spans.push(...spans);
    this.inner.export(spans, (r) => {
      this.results.push(r);
      done(r);
    });
  }

  shutdown() {
    return this.inner.shutdown();
  }

  forceFlush() {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

const hr = (s, n) => [s, n];
const hrNanos = (t) => BigInt(Math.trunc(t[0])) * 1_000_000_000n + BigInt(Math.trunc(t[1]));

function runApp(provider, tag) {
  const tracer = provider.getTracer(`grpc-it-${tag}`, '4.5.6', { schemaUrl: 'https://opentelemetry.io/schemas/1.26.0' });
  const parentCtx = trace.setSpanContext(context.active(), {
    traceId: tag === 'gzip' ? '11112222333344445555666677778888' : 'aaaabbbbccccddddeeeeffff00001111',
    spanId: '0102030405060708',
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
    traceState: new TraceState('k=v,th=grpc'),
  });
  const producer = tracer.startSpan('publish', { kind: SpanKind.PRODUCER, startTime: hr(1700000100, 7) });
  producer.end(hr(1700000100, 70007));
  const root = tracer.startSpan('rpc Export', {
    kind: SpanKind.SERVER,
    startTime: hr(1700000101, 123456789),
    attributes: {
      'rpc.system': 'grpc',
      'code': 14,
      'ratio': 0.75,
      'neg': -3,
      'big': Number.MAX_SAFE_INTEGER,
      'yes': true,
      'no': false,
      'empty': '',
      'unicode': 'grüße ✓ 🚀',
      'strs': ['x', '', 'z'],
      'ints': [1, -2, 3000000000],
      'dbls': [0.5, -1e-9],
      'bools': [false, true],
    },
  }, parentCtx);
  root.addEvent('received', { 'bytes': 2048, 'who': 'me' }, hr(1700000101, 200000001));
  root.addEvent('bare', hr(1700000101, 300000002));
  root.setStatus({ code: SpanStatusCode.ERROR, message: 'unavailable: try later' });
  const child = tracer.startSpan('call store', {
    kind: SpanKind.CLIENT,
    startTime: hr(1700000101, 400000003),
    links: [{ context: producer.spanContext(), attributes: { 'link.kind': 'follows', 'n': 2 } }],
  }, trace.setSpan(context.active(), root));
  child.setStatus({ code: SpanStatusCode.OK });
  child.end(hr(1700000101, 500000004));
  root.end(hr(1700000102, 9));
  return [producer, root, child].map((s) => s.spanContext().spanId);
}

async function sendWith(compression, tag) {
  const inner = new GrpcExporter({ url: `http://127.0.0.1:${grpcPort}`, compression });
  const capture = new CapturingExporter(inner);
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: `grpc-it-${tag}`,
      'transport': tag,
      'custom.double': 2.5,
      'custom.array': ['a', 'b'],
    }),
    spanProcessors: [new BatchSpanProcessor(capture)],
  });
  const ids = runApp(provider, tag);
  await provider.forceFlush();
  await provider.shutdown();
  assert.ok(capture.results.length >= 1, 'the exporter was called');
  for (const r of capture.results) {
    assert.equal(r.code, ExportResultCode.SUCCESS, `export over gRPC (${tag}) failed: ${r.error?.message}\nstderr:\n${th.stderr}`);
  }
  assert.deepEqual(capture.spans.map((s) => s.spanContext().spanId).sort(), [...ids].sort());
  return capture.spans;
}

// --- Comparison with the file exporter's OTLP/JSON ------------------------------------------

function want(v) {
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
    return { arrayValue: { values: v.map(want) } };
  }
  throw new Error(`unexpected attribute type ${typeof v}`);
}

function norm(v) {
  const [k, ...rest] = Object.keys(v);
  assert.equal(rest.length, 0, `one AnyValue field: ${JSON.stringify(v)}`);
  switch (k) {
    case 'intValue':
      return { intValue: BigInt(v.intValue) };
    case 'doubleValue':
      return { doubleValue: Number(v.doubleValue) };
    case 'arrayValue':
      return { arrayValue: { values: (v.arrayValue.values ?? []).map(norm) } };
    default:
      return { [k]: v[k] };
  }
}

function sameAttributes(sdk, otlp, where) {
  const got = Object.fromEntries((otlp ?? []).map((kv) => [kv.key, norm(kv.value)]));
  const exp = Object.fromEntries(Object.entries(sdk ?? {}).map(([k, v]) => [k, want(v)]));
  assert.deepEqual(got, exp, `${where}: attributes`);
}

const n0 = (v) => (v === undefined ? 0 : Number(v));
const b0 = (v) => (v === undefined ? 0n : BigInt(v));

function sameSpan(sdk, got, where) {
  const { span, resource, scope } = got;
  const ctx = sdk.spanContext();
  assert.equal(span.traceId, ctx.traceId, `${where}: traceId`);
  assert.equal(span.parentSpanId ?? '', sdk.parentSpanContext?.spanId ?? '', `${where}: parent`);
  assert.equal(span.traceState ?? '', ctx.traceState?.serialize() ?? '', `${where}: traceState`);
  assert.equal(span.name, sdk.name, `${where}: name`);
  assert.equal(span.kind, sdk.kind + 1, `${where}: kind`);
  assert.equal(b0(span.startTimeUnixNano), hrNanos(sdk.startTime), `${where}: start`);
  assert.equal(b0(span.endTimeUnixNano), hrNanos(sdk.endTime), `${where}: end`);
  const flags = (ctx.traceFlags & 0xff) | 0x100 | (sdk.parentSpanContext?.isRemote ? 0x200 : 0);
  assert.equal(n0(span.flags), flags, `${where}: flags`);
  sameAttributes(sdk.attributes, span.attributes, where);
  const events = span.events ?? [];
  assert.equal(events.length, sdk.events.length, `${where}: events`);
  sdk.events.forEach((e, i) => {
    assert.equal(events[i].name, e.name);
    assert.equal(b0(events[i].timeUnixNano), hrNanos(e.time));
    sameAttributes(e.attributes, events[i].attributes, `${where}.events[${i}]`);
  });
  const links = span.links ?? [];
  assert.equal(links.length, sdk.links.length, `${where}: links`);
  sdk.links.forEach((l, i) => {
    assert.equal(links[i].traceId, l.context.traceId);
    assert.equal(links[i].spanId, l.context.spanId);
    sameAttributes(l.attributes, links[i].attributes, `${where}.links[${i}]`);
  });
  assert.equal(span.status?.code ?? 0, sdk.status.code, `${where}: status code`);
  assert.equal(span.status?.message ?? '', sdk.status.message ?? '', `${where}: status message`);
  sameAttributes(sdk.resource.attributes, resource.attributes, `${where}.resource`);
  assert.equal(scope.name, sdk.instrumentationScope.name);
  assert.equal(scope.version ?? '', sdk.instrumentationScope.version ?? '');
}

// --- Raw HTTP/2 calls -----------------------------------------------------------------------

/** The 146-byte ExportTraceServiceRequest of otlp.md §1.7 (one span "op"), span id patched. */
const VECTOR = Buffer.from(
  '0a8f010a170a150a0c736572766963652e6e616d6512050a03737663' +
  '12740a0a0a036c696212033' + '12e3012660a105b8efff798038103d269' +
  'b633813fc60c1208eee19b7ec3c1b1742a026f70300239004859e3fa' +
  'eb6f154100' + '12f41efbeb6f154a200a19687474702e726573706f6e73' +
  '652e7374617475735f636f646512031' + '8f4037a0812' + '04626f6f6d1802' +
  '850101030000', 'hex');

function vectorWithSpanId(last) {
  const b = Buffer.from(VECTOR);
  const at = b.indexOf(Buffer.from('eee19b7ec3c1b174', 'hex'));
  assert.ok(at > 0);
  b[at + 7] = last;
  return b;
}

function frame(msg, compressed = false) {
  const h = Buffer.alloc(5);
  h[0] = compressed ? 1 : 0;
  h.writeUInt32BE(msg.length, 1);
  return Buffer.concat([h, msg]);
}

/** One call on @p session; resolves with {status, grpcStatus, grpcMessage, details, data}. */
function call(session, body, { path = EXPORT_PATH, headers = {}, endStream = true } = {}) {
  return new Promise((resolve, reject) => {
    const req = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      'te': 'trailers',
      ...headers,
    }, { endStream: false });
    const out = { status: 0, grpcStatus: undefined, grpcMessage: '', details: '', data: Buffer.alloc(0) };
    const take = (h) => {
      if (h['grpc-status'] !== undefined) {
        out.grpcStatus = Number(h['grpc-status']);
        out.grpcMessage = decodeURIComponent(h['grpc-message'] ?? '');
        out.details = h['grpc-status-details-bin'] ?? '';
        out.acceptEncoding = h['grpc-accept-encoding'];
      }
    };
    req.on('response', (h) => {
      out.status = Number(h[':status']);
      take(h);
    });
    req.on('trailers', take);
    req.on('data', (d) => { out.data = Buffer.concat([out.data, d]); });
    req.on('close', () => resolve(out));
    req.on('error', (e) => {
      // An RST_STREAM(NO_ERROR) after the answer is how a server stops an upload it refused.
      if (out.grpcStatus !== undefined || out.status) {
        resolve(out);
      } else {
        reject(e);
      }
    });
    if (body !== null) {
      req.write(body);
    }
    if (endStream) {
      req.end();
    }
  });
}

function connect() {
  const s = http2.connect(`http://127.0.0.1:${grpcPort}`);
  s.on('error', () => {});
  return s;
}

/** Decode an unpadded base64 google.rpc.Status far enough to find RetryInfo's seconds. */
function retrySeconds(details) {
  const b = Buffer.from(details, 'base64');
  const i = b.indexOf(Buffer.from('type.googleapis.com/google.rpc.RetryInfo'));
  if (i < 0) {
    return undefined;
  }
  // value (0x12 len) -> RetryInfo{ retry_delay (0x0a len) Duration{ seconds (0x08 varint) } }
  const rest = b.subarray(i + 40);
  assert.equal(rest[0], 0x12);
  assert.equal(rest[2], 0x0a);
  assert.equal(rest[4], 0x08);
  return rest[5];
}

// --- Tests ------------------------------------------------------------------------------------

test('the JS SDK gRPC exporter (plain and gzip): spans come out of the file exporter unchanged', async () => {
  const plain = await sendWith('none', 'plain');
  const gz = await sendWith('gzip', 'gzip');
  // Give the file exporter's flush_interval a moment, then read.
  await new Promise((r) => setTimeout(r, 400));
  const got = flattenSpans(await th.readOutput());
  for (const [tag, sent] of [['plain', plain], ['gzip', gz]]) {
    const out = got.filter((g) => (g.resource.attributes ?? [])
      .some((kv) => kv.key === 'transport' && kv.value.stringValue === tag));
    assert.equal(out.length, sent.length, `${tag}: ${sent.length} sent, ${out.length} written`);
    const byId = new Map(out.map((g) => [g.span.spanId, g]));
    for (const s of sent) {
      const g = byId.get(s.spanContext().spanId);
      assert.ok(g, `${tag}: ${s.name} missing`);
      sameSpan(s, g, `${tag}:${s.name}`);
    }
  }
});

test('raw calls: status codes for hostile and odd requests, and the server keeps serving', async () => {
  const s = connect();
  try {
    // A good call: OK, the 5-byte empty response, trailers.
    let r = await call(s, frame(vectorWithSpanId(0x01)));
    assert.equal(r.status, 200);
    assert.equal(r.grpcStatus, 0, r.grpcMessage);
    assert.deepEqual([...r.data], [0, 0, 0, 0, 0]);

    // Unknown method.
    r = await call(s, frame(VECTOR), { path: '/opentelemetry.proto.collector.logs.v1.LogsService/Export' });
    assert.equal(r.grpcStatus, 12);

    // Not gRPC.
    r = await call(s, frame(VECTOR), { headers: { 'content-type': 'application/x-protobuf' } });
    assert.equal(r.status, 415);

    // Bad protobuf: INVALID_ARGUMENT with a message.
    r = await call(s, frame(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 1, 2])));
    assert.equal(r.grpcStatus, 3);
    assert.ok(r.grpcMessage.length > 0);

    // A span id of the wrong length: the decoder's message names the field.
    const bad = Buffer.from(VECTOR);
    bad[bad.indexOf(Buffer.from('1208eee1', 'hex')) + 1] = 0x07;
    r = await call(s, frame(bad));
    assert.equal(r.grpcStatus, 3);

    // Oversize (limit 1 MiB here): RESOURCE_EXHAUSTED without RetryInfo, before and after
    // decompression.
    r = await call(s, frame(Buffer.alloc((1 << 20) + 10, 1)));
    assert.equal(r.grpcStatus, 8);
    assert.equal(r.details, '');
    r = await call(s, frame(zlib.gzipSync(Buffer.alloc(3 << 20)), true), { headers: { 'grpc-encoding': 'gzip' } });
    assert.equal(r.grpcStatus, 8);

    // gzip done right.
    r = await call(s, frame(zlib.gzipSync(vectorWithSpanId(0x02)), true), { headers: { 'grpc-encoding': 'gzip' } });
    assert.equal(r.grpcStatus, 0, r.grpcMessage);

    // An unknown encoding: UNIMPLEMENTED naming what is accepted.
    r = await call(s, frame(VECTOR, true), { headers: { 'grpc-encoding': 'snappy' } });
    assert.equal(r.grpcStatus, 12);
    assert.match(r.acceptEncoding ?? '', /gzip/);

    // A message cut short, then END_STREAM: INTERNAL.
    r = await call(s, frame(VECTOR).subarray(0, 40));
    assert.equal(r.grpcStatus, 13);

    // The same connection still takes good calls.
    r = await call(s, frame(vectorWithSpanId(0x03)));
    assert.equal(r.grpcStatus, 0, r.grpcMessage);
  } finally {
    s.close();
  }
});

test('a truncated frame then a close, and garbage prefaces, do not hurt the server', async () => {
  // Half a message, then the connection goes away.
  const s1 = connect();
  const p = call(s1, frame(VECTOR).subarray(0, 60), { endStream: false }).catch(() => null);
  await new Promise((r) => setTimeout(r, 100));
  s1.destroy();
  await p;

  // A raw socket: an HTTP/2 frame header cut off in the middle, then close.
  await new Promise((resolve) => {
    const sock = net.connect(grpcPort, '127.0.0.1', () => {
      sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 0, 4, 0, 0])]));
      setTimeout(() => { sock.destroy(); resolve(); }, 100);
    });
    sock.on('error', resolve);
  });

  // Garbage instead of the preface: the server closes the connection.
  for (const garbage of ['GET / HTTP/1.1\r\nHost: x\r\n\r\n', '\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03']) {
    const closed = await new Promise((resolve) => {
      const sock = net.connect(grpcPort, '127.0.0.1', () => sock.write(garbage, 'latin1'));
      const t = setTimeout(() => { sock.destroy(); resolve(false); }, 5000);
      sock.on('data', () => {});
      sock.on('close', () => { clearTimeout(t); resolve(true); });
      sock.on('error', () => {});
    });
    assert.ok(closed, `the server closed the connection after ${JSON.stringify(garbage)}`);
  }

  const s2 = connect();
  try {
    const r = await call(s2, frame(vectorWithSpanId(0x04)));
    assert.equal(r.grpcStatus, 0, r.grpcMessage);
  } finally {
    s2.close();
  }
});

test('many streams in parallel on one connection all arrive', async () => {
  const s = connect();
  const N = 60;
  try {
    const results = await Promise.all(Array.from({ length: N }, (_, i) =>
      call(s, frame(vectorWithSpanId(0x40 + i)))));
    results.forEach((r, i) => assert.equal(r.grpcStatus, 0, `stream ${i}: ${r.grpcMessage}`));
  } finally {
    s.close();
  }
  await new Promise((r) => setTimeout(r, 400));
  const ids = new Set(flattenSpans(await th.readOutput()).map((g) => g.span.spanId));
  for (let i = 0; i < N; i++) {
    const id = `eee19b7ec3c1b1${(0x40 + i).toString(16).padStart(2, '0')}`;
    assert.ok(ids.has(id), `span ${id} was written`);
  }
  for (const last of ['01', '02', '03', '04']) {
    assert.ok(ids.has(`eee19b7ec3c1b1${last}`), `span ...${last} from the raw calls was written`);
  }
});

test('shutdown: SIGTERM ends cleanly with gRPC connections open', async () => {
  const s = connect();
  const r = await call(s, frame(vectorWithSpanId(0x05)));
  assert.equal(r.grpcStatus, 0);
  const goaway = new Promise((resolve) => s.once('goaway', (code) => resolve(code)));
  await th.stopClean();
  assert.equal(await Promise.race([goaway, new Promise((res) => setTimeout(res, 2000, 'none'))]), 0);
  s.destroy();
  assert.doesNotMatch(th.stderr, /not served yet/);
  await th.cleanup();
});

test('a memory_limiter refusal is UNAVAILABLE with RetryInfo (the Retry-After of HTTP)', async () => {
  const [port] = await freePorts(1);
  const yaml = [
    'receivers:',
    '  otlp:',
    '    protocols:',
    '      grpc:',
    `        endpoint: 127.0.0.1:${port}`,
    '      http:',
    '        endpoint: 127.0.0.1:{port}',
    'processors:',
    '  memory_limiter:',
    '    check_interval: 100ms',
    '    limit_mib: 1',
    'exporters:',
    '  file:',
    '    path: {out}',
    'service:',
    '  telemetry:',
    '    metrics:',
    '      level: none',
    '  pipelines:',
    '    traces:',
    '      receivers: [otlp]',
    '      processors: [memory_limiter]',
    '      exporters: [file]',
    '',
  ].join('\n');
  const limited = await Tracehouse.start({ yaml });
  const s = http2.connect(`http://127.0.0.1:${port}`);
  s.on('error', () => {});
  try {
    await new Promise((r) => setTimeout(r, 300));
    const r = await call(s, frame(VECTOR));
    assert.equal(r.grpcStatus, 14, r.grpcMessage);
    assert.equal(r.grpcMessage, 'data refused due to high memory usage');
    assert.equal(retrySeconds(r.details), 1);
  } finally {
    s.close();
    await limited.stopClean();
    await limited.cleanup();
  }
});

// The keepalive enforcement policy, as gRPC servers apply it: a client PING sooner than
// min_time after the previous one (2 h with no call open, unless permit_without_stream) is a
// strike unless the server sent headers or data since; past two strikes the connection ends
// with GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings").
test('keepalive enforcement_policy: too many pings end the connection with ENHANCE_YOUR_CALM; ' +
  'pings between calls or within the policy do not', async () => {
  const [strictPort, relaxedPort] = await freePorts(2);
  const yaml = [
    'receivers:',
    '  otlp:',
    '    protocols:',
    `      grpc: {endpoint: "127.0.0.1:${strictPort}"}`,
    '      http: {endpoint: "127.0.0.1:{port}"}',
    '  otlp/relaxed:',
    '    protocols:',
    `      grpc: {endpoint: "127.0.0.1:${relaxedPort}",`,
    '             keepalive: {enforcement_policy: {min_time: 300ms, permit_without_stream: true}}}',
    'exporters:',
    '  file: {path: {out}}',
    'service:',
    '  telemetry: {metrics: {level: none}}',
    '  pipelines:',
    '    traces: {receivers: [otlp, otlp/relaxed], exporters: [file]}',
    '',
  ].join('\n');
  const srv = await Tracehouse.start({ yaml });
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const open = async (port) => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    s.on('error', () => {});
    s.goaway = new Promise((resolve) => s.once('goaway', (code, last, data) =>
      resolve({ code, data: data?.toString() ?? '' })));
    await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
    return s;
  };
  const ping = (s) => new Promise((resolve) => {
    try {
      s.ping((err) => resolve(err ? 'error' : 'ack'));
    } catch {
      resolve('closed');
    }
  });
  const goneWithin = (s, ms) => Promise.race([s.goaway, sleep(ms).then(() => null)]);
  const sessions = [];
  try {
    // Default policy (min_time 5m, no pings without calls): the fourth quick ping is too many.
    const a = await open(strictPort);
    sessions.push(a);
    for (let i = 0; i < 4; i++) {
      await ping(a);
    }
    const g = await goneWithin(a, 3000);
    assert.deepEqual(g, { code: http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, data: 'too_many_pings' });
    await sleep(100);
    assert.ok(a.closed || a.destroyed, 'the connection was closed after the GOAWAY');

    // A ping after each answer is never a strike: the server sent headers and data since.
    const b = await open(strictPort);
    sessions.push(b);
    for (let i = 0; i < 5; i++) {
      assert.equal(await ping(b), 'ack');
      const r = await call(b, frame(Buffer.alloc(0)));
      assert.equal(r.grpcStatus, 0, r.grpcMessage);
    }
    assert.equal(await goneWithin(b, 300), null, 'pings between calls were refused');

    // min_time 300ms and permit_without_stream: pings 400 ms apart with no call are fine...
    const c = await open(relaxedPort);
    sessions.push(c);
    for (let i = 0; i < 5; i++) {
      assert.equal(await ping(c), 'ack');
      await sleep(400);
    }
    assert.equal(await goneWithin(c, 100), null, 'pings within the policy were refused');
    // ...but a burst is not.
    for (let i = 0; i < 4; i++) {
      await ping(c);
    }
    assert.equal((await goneWithin(c, 3000))?.code, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);

    // The server goes on serving new connections.
    const d = await open(strictPort);
    sessions.push(d);
    assert.equal((await call(d, frame(Buffer.alloc(0)))).grpcStatus, 0);
  } finally {
    for (const s of sessions) s.destroy();
    await srv.stopClean();
    await srv.cleanup();
  }
});
