// The tail_sampling processor in the real binary: OTLP/HTTP -> tail_sampling (status_code
// ERROR + latency + probabilistic 1%) -> file exporter.
//
// An app on the official JS SDK sends 2,000 traces of four nested spans (root -> client ->
// grandchild, root -> second child): 5% with an error status on one child, 5% with a child
// lasting longer than the latency threshold (explicit start and end times, so the test does not
// wait for it). After decision_wait, exactly the error traces, the slow traces and the
// probabilistic ones must come out, each whole (every span, its resource and scope), and
// nothing else. The probabilistic set is computed here, independently of the C code: the
// Collector's rule, FNV-1a-64 over the salt and the 16 trace id bytes, sampled when the hash
// is at most floor(MaxUint64 x percentage / 100).
//
// Then late spans: for a few traces sampled only by their error or latency (not the
// probabilistic rule), a plain short span, which must come out (it follows the decision; on
// its own it would not be sampled); for a few traces not sampled, a span with an ERROR status,
// which must not (on its own it would be).
//
// Shutdown: with decision_wait 30s, SIGTERM while traces are pending decides them and the
// sampled ones reach the file before the process exits.

import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';

import { context, SpanKind, SpanStatusCode, trace, TraceFlags } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

import { flattenSpans, Tracehouse } from './lib/harness.mjs';

const SALT = 'th-it-salt';
const PERCENT = 1;
const THRESHOLD_MS = 1000;

function config(decisionWait) {
  return `receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
processors:
  tail_sampling:
    decision_wait: ${decisionWait}
    policies:
      - {name: errors, type: status_code, status_code: {status_codes: [ERROR]}}
      - {name: slow, type: latency, latency: {threshold_ms: ${THRESHOLD_MS}}}
      - {name: some, type: probabilistic, probabilistic: {sampling_percentage: ${PERCENT}, hash_salt: "${SALT}"}}
exporters:
  file:
    path: "{out}"
    flush_interval: 50ms
service:
  telemetry:
    logs:
      level: info
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [tail_sampling]
      exporters: [file]
`;
}

// ---- The probabilistic rule, computed independently ----------------------------------------

const MASK64 = (1n << 64n) - 1n;

/** FNV-1a, 64 bits, over a byte array. */
function fnv1a64(bytes) {
  let h = 14695981039346656037n;
  for (const b of bytes) {
    h ^= BigInt(b);
    h = (h * 1099511628211n) & MASK64;
  }
  return h;
}

/** floor(MaxUint64 x p/100), with p/100 taken as the float64 Go multiplies by. */
function threshold(percentage) {
  const ratio = percentage / 100;
  const dv = new DataView(new ArrayBuffer(8));
  dv.setFloat64(0, ratio);
  const bits = dv.getBigUint64(0);
  const exp = Number((bits >> 52n) & 0x7ffn);
  const mant = (bits & ((1n << 52n) - 1n)) | (1n << 52n);
  // ratio = mant * 2^(exp - 1075), with exp - 1075 < 0 for ratios below 1
  return (MASK64 * mant) >> BigInt(1075 - exp);
}

const LIMIT = threshold(PERCENT);

function probabilisticSampled(traceIdHex) {
  const bytes = [...Buffer.from(SALT, 'utf8'), ...Buffer.from(traceIdHex, 'hex')];
  return fnv1a64(bytes) <= LIMIT;
}

// ---- The app ---------------------------------------------------------------------------------

const hr = (ms) => [Math.floor(ms / 1000), Math.round((ms % 1000) * 1e6)];

function makeProvider(th, service) {
  const exporter = new ProtoExporter({ url: `${th.baseUrl}/v1/traces` });
  const results = [];
  const wrapped = {
    export(spans, done) {
      exporter.export(spans, (r) => { results.push(r); done(r); });
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: service }),
    spanProcessors: [new BatchSpanProcessor(wrapped, {
      maxQueueSize: 100000, maxExportBatchSize: 500, scheduledDelayMillis: 100,
    })],
  });
  return { provider, results };
}

/**
 * One trace of four spans; @p kind is 'plain', 'error' or 'slow'.
 * @returns {{traceId: string, spanIds: string[]}}
 */
function oneTrace(tracer, i, kind) {
  const t0 = Date.now() - 10_000 + i;
  const root = tracer.startSpan(`GET /item/${i}`, { kind: SpanKind.SERVER, startTime: hr(t0) });
  const rootCtx = trace.setSpan(context.active(), root);
  const child = tracer.startSpan('call backend', { kind: SpanKind.CLIENT, startTime: hr(t0 + 1) },
    rootCtx);
  const childCtx = trace.setSpan(context.active(), child);
  const grand = tracer.startSpan('serialize', { startTime: hr(t0 + 2) }, childCtx);
  grand.end(hr(t0 + 3));
  if (kind === 'error') {
    child.setStatus({ code: SpanStatusCode.ERROR, message: 'backend failed' });
  }
  const childEnd = kind === 'slow' ? t0 + 1 + THRESHOLD_MS + 500 : t0 + 20;
  child.end(hr(childEnd));
  const second = tracer.startSpan('cache lookup', { startTime: hr(t0 + 21) }, rootCtx);
  second.end(hr(t0 + 25));
  root.end(hr(Math.max(childEnd, t0 + 30)));
  return {
    traceId: root.spanContext().traceId,
    spanIds: [root, child, grand, second].map((s) => s.spanContext().spanId),
  };
}

async function flush(provider, results) {
  await provider.forceFlush();
  for (const r of results) {
    assert.equal(r.code, ExportResultCode.SUCCESS, `export failed: ${r.error?.message}`);
  }
}

/** Wait until the output holds @p want spans (or @p ms pass); @returns the spans. */
async function waitForSpans(th, want, ms) {
  const deadline = Date.now() + ms;
  for (;;) {
    const spans = flattenSpans(await th.readOutput());
    if (spans.length >= want || Date.now() > deadline) {
      return spans;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

function byTrace(spans) {
  const m = new Map();
  for (const s of spans) {
    const id = s.span.traceId;
    if (!m.has(id)) {
      m.set(id, []);
    }
    m.get(id).push(s);
  }
  return m;
}

function serviceOf(s) {
  const kv = (s.resource.attributes ?? []).find((a) => a.key === 'service.name');
  return kv?.value?.stringValue;
}

// ---- Tests -------------------------------------------------------------------------------------

describe('tail_sampling', () => {
  const started = [];
  after(async () => {
    for (const th of started) {
      th.kill();
    }
  });

  test('exactly the error, slow and probabilistic traces come out, whole; late spans follow',
    { timeout: 120_000 }, async () => {
      const th = await Tracehouse.start({ yaml: config('2s') });
      started.push(th);
      const { provider, results } = makeProvider(th, 'ts-it');
      const tracer = provider.getTracer('ts-it-scope', '1.0.0');
      const traces = [];
      for (let i = 0; i < 2000; i++) {
        const kind = i % 20 === 3 ? 'error' : i % 20 === 11 ? 'slow' : 'plain';
        traces.push({ kind, ...oneTrace(tracer, i, kind) });
      }
      await flush(provider, results);
      const expected = new Map();
      for (const t of traces) {
        t.prob = probabilisticSampled(t.traceId);
        if (t.kind !== 'plain' || t.prob) {
          expected.set(t.traceId, t);
        }
      }
      const nErr = traces.filter((t) => t.kind === 'error').length;
      const nSlow = traces.filter((t) => t.kind === 'slow').length;
      const nProb = traces.filter((t) => t.prob).length;
      assert.equal(nErr, 100);
      assert.equal(nSlow, 100);
      assert.ok(nProb > 0 && nProb < 60, `probabilistic picks ${nProb} of 2000 at 1%`);

      const spans = await waitForSpans(th, expected.size * 4, 15_000);
      // and nothing more arrives a moment later
      await new Promise((r) => setTimeout(r, 500));
      const all = flattenSpans(await th.readOutput());
      assert.equal(all.length, spans.length, 'more spans arrived after the expected ones');
      const got = byTrace(all);
      const missing = [...expected.keys()].filter((id) => !got.has(id));
      const extra = [...got.keys()].filter((id) => !expected.has(id));
      assert.deepEqual(missing, [], `sampled traces missing: ${missing.length}`);
      assert.deepEqual(extra, [], `traces that should not have been sampled: ${extra.length}`);
      for (const [id, t] of expected) {
        const s = got.get(id);
        assert.deepEqual(s.map((x) => x.span.spanId).sort(), [...t.spanIds].sort(),
          `trace ${id} (${t.kind}) whole`);
        for (const x of s) {
          assert.equal(serviceOf(x), 'ts-it');
          assert.equal(x.scope.name, 'ts-it-scope');
        }
      }

      // Late spans, sent after the decisions.
      const sampledOnlyByRule = traces.filter((t) => t.kind !== 'plain' && !t.prob).slice(0, 5);
      const notSampled = traces.filter((t) => t.kind === 'plain' && !t.prob).slice(0, 5);
      const late = makeProvider(th, 'ts-it-late');
      const lateTracer = late.provider.getTracer('ts-it-late-scope');
      const lateIds = new Map();
      const now = Date.now();
      for (const t of [...sampledOnlyByRule, ...notSampled]) {
        const parent = trace.setSpanContext(context.active(), {
          traceId: t.traceId, spanId: t.spanIds[0], traceFlags: TraceFlags.SAMPLED, isRemote: true,
        });
        const s = lateTracer.startSpan('late', { startTime: hr(now) }, parent);
        if (t.kind === 'plain') {
          s.setStatus({ code: SpanStatusCode.ERROR });
        }
        s.end(hr(now + 5));
        lateIds.set(s.spanContext().spanId, t);
      }
      await flush(late.provider, late.results);
      await late.provider.shutdown();
      await waitForSpans(th, all.length + sampledOnlyByRule.length, 5_000);
      // longer than decision_wait: a late span wrongly taken as a new trace would show by now
      await new Promise((r) => setTimeout(r, 3000));
      const after = flattenSpans(await th.readOutput()).filter((x) => x.span.name === 'late');
      const lateSeen = new Set(after.map((x) => x.span.spanId));
      for (const [spanId, t] of lateIds) {
        if (t.kind === 'plain') {
          assert.ok(!lateSeen.has(spanId), `late span of not-sampled trace ${t.traceId} dropped`);
        } else {
          assert.ok(lateSeen.has(spanId), `late span of sampled trace ${t.traceId} forwarded`);
        }
      }
      assert.equal(after.length, sampledOnlyByRule.length);
      for (const x of after) {
        assert.equal(serviceOf(x), 'ts-it-late');
      }
      await provider.shutdown();
      await th.stopClean();
      assert.match(th.stderr, /summary: 2000 traces received, \d+ sampled, .* 10 late spans/);
      await th.cleanup();
    });

  test('SIGTERM with traces pending decides them and flushes the sampled ones',
    { timeout: 60_000 }, async () => {
      const th = await Tracehouse.start({ yaml: config('30s') });
      started.push(th);
      const { provider, results } = makeProvider(th, 'ts-it-shutdown');
      const tracer = provider.getTracer('ts-it-scope');
      const traces = [];
      for (let i = 0; i < 200; i++) {
        const kind = i % 4 === 0 ? 'error' : 'plain';
        traces.push({ kind, ...oneTrace(tracer, i, kind) });
      }
      await flush(provider, results);
      await provider.shutdown();
      await new Promise((r) => setTimeout(r, 300));
      assert.equal((await th.readOutput()).length, 0, 'nothing is decided before decision_wait');
      await th.stopClean();
      const got = byTrace(flattenSpans(await th.readOutput()));
      for (const t of traces) {
        const want = t.kind === 'error' || probabilisticSampled(t.traceId);
        if (want) {
          assert.ok(got.has(t.traceId), `pending trace ${t.traceId} flushed at shutdown`);
          assert.equal(got.get(t.traceId).length, 4);
        } else {
          assert.ok(!got.has(t.traceId), `trace ${t.traceId} not sampled`);
        }
      }
      assert.match(th.stderr, /decided 200 pending traces \(800 spans\) early at shutdown/);
      await th.cleanup();
    });
});
