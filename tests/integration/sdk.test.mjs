// End to end with the official OpenTelemetry JS SDK: an app builds a nested trace with every
// attribute type, events, a link, statuses and kinds, and exports it through
// exporter-trace-otlp-proto (protobuf) and then exporter-trace-otlp-http (JSON) to a running
// tracehouse. What the SDK handed its exporters is captured on the side, and every field is
// compared with what tracehouse's file exporter wrote: nothing lost, nothing altered.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { context, SpanKind, SpanStatusCode, trace, TraceFlags } from '@opentelemetry/api';
import { ExportResultCode, TraceState } from '@opentelemetry/core';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter, SimpleSpanProcessor }
  from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

import { flattenSpans, Tracehouse } from './lib/harness.mjs';

let th;

before(async () => {
  th = await Tracehouse.start({ debug: 'basic' });
});

after(async () => {
  if (th) {
    th.kill();
  }
});

/** Wraps an exporter and records every span given to it, and every export result. */
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

const hr = (sec, nanos) => [sec, nanos];
const hrToNanos = (t) => BigInt(Math.trunc(t[0])) * 1_000_000_000n + BigInt(Math.trunc(t[1]));

/**
 * The app: a remote parent (with trace state) → SERVER root → CLIENT child → INTERNAL
 * grandchild, plus a PRODUCER span in another trace that the child links to. Times are
 * explicit hrtimes with odd nanoseconds, so exactness is tested, except the grandchild,
 * which keeps the SDK's own clock.
 */
function runApp(provider, tag) {
  const tracer = provider.getTracer(`tracehouse-it-${tag}`, '1.2.3',
    { schemaUrl: 'https://opentelemetry.io/schemas/1.26.0' });
  const remoteParent = {
    traceId: tag === 'proto' ? '4bf92f3577b34da6a3ce929d0e0e4736' : '0af7651916cd43dd8448eb211c80319c',
    spanId: '00f067aa0ba902b7',
    traceFlags: TraceFlags.SAMPLED,
    isRemote: true,
    traceState: new TraceState('vendor=opaque,th=1'),
  };
  const parentCtx = trace.setSpanContext(context.active(), remoteParent);

  const other = tracer.startSpan('enqueue', { kind: SpanKind.PRODUCER, startTime: hr(1700000000, 1) });
  other.end(hr(1700000000, 999));

  const root = tracer.startSpan('GET /checkout', {
    kind: SpanKind.SERVER,
    startTime: hr(1700000001, 123456789),
    attributes: {
      'http.request.method': 'GET',
      'http.response.status_code': 500,
      'ratio': 0.1,
      'pi': 3.141592653589793,
      'tiny': 5e-324,
      'negative': -17,
      'big.int': Number.MAX_SAFE_INTEGER,
      'neg.big.int': Number.MIN_SAFE_INTEGER,
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

  const rootCtx = trace.setSpan(context.active(), root);
  const child = tracer.startSpan('POST payments', {
    kind: SpanKind.CLIENT,
    startTime: hr(1700000001, 400000003),
    links: [{ context: other.spanContext(), attributes: { 'link.reason': 'batch', 'link.n': 7 } }],
    attributes: { 'peer.service': 'payments' },
  }, rootCtx);
  child.setStatus({ code: SpanStatusCode.OK });

  const childCtx = trace.setSpan(context.active(), child);
  const grandchild = tracer.startSpan('serialize', { kind: SpanKind.INTERNAL }, childCtx);
  grandchild.setAttribute('size', 42);
  grandchild.end();

  child.end(hr(1700000001, 900000004));
  root.end(hr(1700000002, 5));
  return [other, root, child, grandchild].map((s) => s.spanContext().spanId);
}

async function sendWith(ExporterClass, tag) {
  const inner = new ExporterClass({ url: `${th.baseUrl}/v1/traces` });
  const capture = new CapturingExporter(inner);
  const memory = new InMemorySpanExporter();
  const resource = resourceFromAttributes({
    [ATTR_SERVICE_NAME]: `th-it-${tag}`,
    'deployment.environment.name': 'test',
    'transport': tag,
    'custom.int': 42,
    'custom.double': 2.5,
    'custom.bool': true,
    'custom.array': ['x', 'y'],
  });
  const provider = new BasicTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(capture), new SimpleSpanProcessor(memory)],
  });
  const ids = runApp(provider, tag);
  await provider.forceFlush();
  // (InMemorySpanExporter forgets its spans on shutdown: read them first.)
  const remembered = memory.getFinishedSpans().map((s) => s.spanContext().spanId);
  await provider.shutdown();
  assert.ok(capture.results.length >= 1, 'the exporter was called');
  for (const r of capture.results) {
    assert.equal(r.code, ExportResultCode.SUCCESS,
      `export via ${tag} failed: ${r.error?.message}\nstderr:\n${th.stderr}`);
  }
  assert.deepEqual(capture.spans.map((s) => s.spanContext().spanId).sort(), [...ids].sort());
  // The in-memory copy saw the same spans as the wrapped exporter.
  assert.deepEqual(remembered.sort(), [...ids].sort());
  return capture.spans;
}

// --- Comparison of one SDK value with its OTLP/JSON form ---------------------------------

/** The OTLP/JSON AnyValue the SDK's value must have become, with types. */
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

/** Normalise an OTLP/JSON AnyValue for comparison: ints as BigInt, doubles as numbers. */
function normAnyValue(v, where) {
  assert.equal(typeof v, 'object', `${where}: value is not an object`);
  const keys = Object.keys(v);
  assert.equal(keys.length, 1, `${where}: exactly one of the AnyValue fields: ${JSON.stringify(v)}`);
  const [k] = keys;
  switch (k) {
    case 'stringValue':
    case 'boolValue':
      return { [k]: v[k] };
    case 'intValue':
      // OTLP/JSON writes 64-bit integers as strings (numbers are accepted on input).
      return { intValue: BigInt(v.intValue) };
    case 'doubleValue':
      return { doubleValue: typeof v.doubleValue === 'string' ? Number(v.doubleValue) : v.doubleValue };
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
  assert.equal(span.kind, sdk.kind + 1, `${where}: kind (OTLP = API + 1)`);
  assert.equal(bigOr0(span.startTimeUnixNano), hrToNanos(sdk.startTime), `${where}: start time`);
  assert.equal(bigOr0(span.endTimeUnixNano), hrToNanos(sdk.endTime), `${where}: end time`);
  // Flags: W3C trace flags in the low byte, plus "has is-remote" and "is remote" of the parent.
  const flags = (ctx.traceFlags & 0xff) | 0x100 | (sdk.parentSpanContext?.isRemote ? 0x200 : 0);
  assert.equal(u32(span.flags), flags, `${where}: flags`);
  compareAttributes(sdk.attributes, span.attributes, `${where}.attributes`);
  assert.equal(u32(span.droppedAttributesCount), sdk.droppedAttributesCount, `${where}: dropped attributes`);
  assert.equal(u32(span.droppedEventsCount), sdk.droppedEventsCount, `${where}: dropped events`);
  assert.equal(u32(span.droppedLinksCount), sdk.droppedLinksCount, `${where}: dropped links`);

  const events = span.events ?? [];
  assert.equal(events.length, sdk.events.length, `${where}: event count`);
  sdk.events.forEach((e, i) => {
    assert.equal(events[i].name, e.name, `${where}.events[${i}].name`);
    assert.equal(bigOr0(events[i].timeUnixNano), hrToNanos(e.time), `${where}.events[${i}].time`);
    compareAttributes(e.attributes, events[i].attributes, `${where}.events[${i}].attributes`);
    assert.equal(u32(events[i].droppedAttributesCount), e.droppedAttributesCount ?? 0);
  });

  const links = span.links ?? [];
  assert.equal(links.length, sdk.links.length, `${where}: link count`);
  sdk.links.forEach((l, i) => {
    assert.equal(links[i].traceId, l.context.traceId, `${where}.links[${i}].traceId`);
    assert.equal(links[i].spanId, l.context.spanId, `${where}.links[${i}].spanId`);
    assert.equal(links[i].traceState ?? '', l.context.traceState?.serialize() ?? '');
    compareAttributes(l.attributes, links[i].attributes, `${where}.links[${i}].attributes`);
    const lflags = (l.context.traceFlags & 0xff) | 0x100 | (l.context.isRemote ? 0x200 : 0);
    assert.equal(u32(links[i].flags), lflags, `${where}.links[${i}].flags`);
  });

  // Status: code 0 (unset) is the default and is omitted in JSON.
  const status = span.status ?? {};
  assert.equal(status.code ?? 0, sdk.status.code, `${where}: status code`);
  assert.equal(status.message ?? '', sdk.status.message ?? '', `${where}: status message`);

  compareAttributes(sdk.resource.attributes, resource.attributes, `${where}.resource`);
  assert.equal(scope.name, sdk.instrumentationScope.name, `${where}: scope name`);
  assert.equal(scope.version ?? '', sdk.instrumentationScope.version ?? '', `${where}: scope version`);
  assert.equal(scopeSchemaUrl ?? '', sdk.instrumentationScope.schemaUrl ?? '', `${where}: scope schema URL`);
}

test('spans sent by the official SDK (protobuf, then JSON) come out of the file exporter unchanged',
  async () => {
    const sentProto = await sendWith(ProtoExporter, 'proto');
    const sentJson = await sendWith(JsonExporter, 'json');
    await th.stopClean();

    const requests = await th.readOutput();
    assert.ok(requests.length >= 2, `at least one line per export, got ${requests.length}`);
    const got = flattenSpans(requests);
    const byTransport = (tag) => got.filter((g) => (g.resource.attributes ?? [])
      .some((kv) => kv.key === 'transport' && kv.value.stringValue === tag));

    for (const [tag, sent] of [['proto', sentProto], ['json', sentJson]]) {
      const out = byTransport(tag);
      assert.equal(out.length, sent.length, `${tag}: ${sent.length} spans sent, ${out.length} written`);
      const byId = new Map(out.map((g) => [g.span.spanId, g]));
      assert.equal(byId.size, out.length, `${tag}: no span written twice`);
      for (const s of sent) {
        const g = byId.get(s.spanContext().spanId);
        assert.ok(g, `${tag}: span ${s.name} (${s.spanContext().spanId}) is missing from the output`);
        compareSpan(s, g, `${tag}:${s.name}`);
      }
    }
    // Nothing else was written: every span in the file is one of those sent.
    assert.equal(got.length, sentProto.length + sentJson.length);
    // The debug exporter (basic) logged a "Traces" line per batch on stderr.
    assert.match(th.stderr, /Traces/);
    await th.cleanup();
  });
