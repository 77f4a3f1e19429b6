// The batch and memory_limiter processors in the real binary.
//
// batch: apps on the official JS SDK (protobuf and JSON exporters) send through a batch
// processor to the file exporter: every span arrives once, with its own resource, in fewer
// requests than were sent; the size trigger and send_batch_max_size split. Acks: in front of
// a consumer that is not durable (the file exporter settles at its own enqueue) a sender is
// answered at enqueue, as by the Collector, and SIGTERM's flush still writes what is pending;
// in front of a durable one (an otlp_http exporter without a sending queue, to a sink in
// this test that holds or refuses its requests) a sender is answered only once its batch is
// delivered, the batch leaves at the end of the loop iteration rather than at the timeout,
// and a refusal downstream reaches every sender with 503.
//
// memory_limiter: a flood from many concurrent clients into memory_limiter -> batch (huge
// send_batch_size, so accepted requests pile up in memory until the timeout) -> nop. The
// receiver answers 503 "data refused due to high memory usage", RSS stays under the limit
// plus a stated margin, and once the flood stops and the batch flushes, requests get 200
// again.

import assert from 'node:assert/strict';
import http from 'node:http';
import { describe, test } from 'node:test';

import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

import { flattenSpans, Tracehouse } from './lib/harness.mjs';
import * as pb from './lib/pb.mjs';

/** A whole config: OTLP/HTTP -> the given processors -> the given exporter. */
function config({ processors, exporter = 'file', exporterYaml = '    path: "{out}"\n    flush_interval: 50ms\n' }) {
  const names = Object.keys(processors);
  const procYaml = names.map((n) => `  ${n}:\n${Object.entries(processors[n])
    .map(([k, v]) => `    ${k}: ${v}\n`).join('')}`).join('');
  return `receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
processors:
${procYaml}exporters:
  ${exporter}:
${exporterYaml}service:
  telemetry:
    logs:
      level: info
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [${names.join(', ')}]
      exporters: [${exporter}]
`;
}

const TRACE = pb.hex('5b8efff798038103d269b633813fc60c');

/** A protobuf request of @p n spans named `${prefix}-${i}`, each with @p attrs attributes. */
function request(prefix, n, attrs = 0) {
  const spans = [];
  for (let i = 0; i < n; i++) {
    const attributes = [];
    for (let k = 0; k < attrs; k++) {
      attributes.push(pb.keyValue(`attr.${k}`, pb.anyString(`${'v'.repeat(40)}-${i}`)));
    }
    spans.push(pb.span({
      traceId: TRACE,
      spanId: Buffer.from([1, 2, 3, 4, 5, 6, (i >> 8) & 255, i & 255]),
      name: `${prefix}-${i}`,
      attributes,
    }));
  }
  return pb.request(spans, prefix);
}

/** POST a protobuf body; resolves with status, body and the time the answer took. */
function post(th, body, agent) {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port: th.port,
      path: '/v1/traces',
      method: 'POST',
      agent,
      headers: { 'content-type': 'application/x-protobuf', 'content-length': body.length },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks), ms: Date.now() - t0 }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * An OTLP/HTTP sink standing in for a downstream collector: it records the span names of
 * every request and answers by its `mode`: 'ok' (200), 'hold' (keeps the response until
 * release()) or 'refuse' (503).
 */
async function startSink() {
  const sink = { mode: 'ok', requests: [], held: [] };
  sink.server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      sink.requests.push(Buffer.concat(chunks));
      const answer = (code) => {
        res.writeHead(code, { 'content-type': 'application/x-protobuf' });
        res.end();
      };
      if (sink.mode === 'hold') {
        sink.held.push(() => answer(200));
      } else {
        answer(sink.mode === 'refuse' ? 503 : 200);
      }
    });
  });
  await new Promise((r) => sink.server.listen(0, '127.0.0.1', r));
  sink.port = sink.server.address().port;
  sink.release = () => { sink.held.splice(0).forEach((f) => f()); };
  sink.close = () => { sink.release(); sink.server.closeAllConnections(); sink.server.close(); };
  return sink;
}

/** otlp_http to @p sink without a sending queue: it settles acks once delivered (durable). */
function durableExporterYaml(sink) {
  return `    endpoint: http://127.0.0.1:${sink.port}
    sending_queue:
      enabled: false
    retry_on_failure:
      enabled: false
`;
}

/** Span counts per line of the file exporter's output. */
async function lineSizes(th) {
  return (await th.readOutput()).map((req) => flattenSpans([req]).length);
}

describe('batch processor', () => {
  test('merges the requests of several SDK apps; every span arrives once, with its resource', async () => {
    const th = await Tracehouse.start({
      yaml: config({ processors: { batch: { send_batch_size: 1000, timeout: '300ms' } } }),
    });
    try {
      const APPS = 4;
      const SPANS = 25;
      let requests = 0;
      const results = [];
      const providers = [];
      for (let a = 0; a < APPS; a++) {
        const Exporter = a % 2 === 0 ? ProtoExporter : JsonExporter;
        const inner = new Exporter({ url: `${th.baseUrl}/v1/traces` });
        // Count the requests each exporter makes, and what they were answered.
        const exporter = {
          export(spans, done) {
            requests++;
            inner.export(spans, (r) => { results.push(r); done(r); });
          },
          shutdown: () => inner.shutdown(),
          forceFlush: () => inner.forceFlush(),
        };
        const provider = new BasicTracerProvider({
          resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: `app-${a}` }),
          spanProcessors: [new BatchSpanProcessor(exporter, { maxExportBatchSize: 10, scheduledDelayMillis: 60000 })],
        });
        const tracer = provider.getTracer('th-it-batch');
        for (let i = 0; i < SPANS; i++) {
          tracer.startSpan(`app-${a}-span-${i}`).end();
        }
        providers.push(provider);
      }
      await Promise.all(providers.map((p) => p.forceFlush()));
      await Promise.all(providers.map((p) => p.shutdown()));
      assert.equal(results.length, requests);
      for (const r of results) {
        assert.equal(r.code, ExportResultCode.SUCCESS, `export failed: ${r.error?.message}\n${th.stderr}`);
      }
      assert.ok(requests >= APPS * 3, `the SDKs sent ${requests} requests`);
      await th.stopClean();
      const spans = flattenSpans(await th.readOutput());
      assert.equal(spans.length, APPS * SPANS);
      const names = new Set(spans.map((s) => s.span.name));
      assert.equal(names.size, APPS * SPANS, 'no span twice');
      for (const s of spans) {
        const app = s.span.name.split('-span-')[0];
        const svc = s.resource.attributes.find((kv) => kv.key === ATTR_SERVICE_NAME)?.value.stringValue;
        assert.equal(svc, app, `${s.span.name} kept its own resource`);
        assert.equal(s.scope.name, 'th-it-batch');
      }
      const lines = (await th.readOutput()).length;
      assert.ok(lines < requests, `${requests} requests were merged into ${lines} batches`);
      await th.cleanup();
    } finally {
      th.kill();
    }
  });

  test('size trigger and send_batch_max_size: 5 x 9 spans leave as 25 + 20 at once', async () => {
    const th = await Tracehouse.start({
      yaml: config({
        processors: { batch: { send_batch_size: 20, send_batch_max_size: 25, timeout: '30s' } },
      }),
    });
    try {
      const rs = await Promise.all([0, 1, 2, 3, 4].map((i) => post(th, request(`r${i}`, 9))));
      for (const r of rs) {
        assert.equal(r.status, 200);
        // far sooner than the 30s timeout: the size trigger sent them
        assert.ok(r.ms < 10000, `answered after ${r.ms} ms`);
      }
      await th.stopClean();
      assert.deepEqual(await lineSizes(th), [25, 20]);
      const spans = flattenSpans(await th.readOutput());
      const names = spans.map((s) => s.span.name);
      assert.equal(new Set(names).size, 45);
      // Within each request the spans keep their order, even across the split.
      for (let i = 0; i < 5; i++) {
        const mine = names.filter((n) => n.startsWith(`r${i}-`));
        assert.deepEqual(mine, [...Array(9).keys()].map((k) => `r${i}-${k}`));
      }
      await th.cleanup();
    } finally {
      th.kill();
    }
  });

  test('not durable behind: a sender is answered at enqueue, the batch still waits for size', async () => {
    const th = await Tracehouse.start({
      yaml: config({ processors: { batch: { send_batch_size: 10, timeout: '60s' } } }),
    });
    try {
      // The file exporter settles at its own enqueue, so holding the ack would buy nothing.
      const first = await post(th, request('first', 4));
      assert.equal(first.status, 200);
      assert.ok(first.ms < 5000, `answered after ${first.ms} ms`);
      // Six more spans fill the batch: sent as one.
      const second = await post(th, request('second', 6));
      assert.equal(second.status, 200);
      await th.stopClean();
      assert.deepEqual(await lineSizes(th), [10]);
      await th.cleanup();
    } finally {
      th.kill();
    }
  });

  test('durable behind: a sender is answered once delivered, without waiting for the timer',
    async () => {
      const sink = await startSink();
      const th = await Tracehouse.start({
        yaml: config({
          processors: { batch: { send_batch_size: 1000, timeout: '60s' } },
          exporter: 'otlp_http',
          exporterYaml: durableExporterYaml(sink),
        }),
      });
      try {
        sink.mode = 'hold';
        let answered = false;
        const t0 = Date.now();
        const first = post(th, request('first', 4)).then((r) => { answered = true; return r; });
        // Sent at the end of the loop iteration (far sooner than the 60s timeout) ...
        while (sink.requests.length === 0 && Date.now() - t0 < 5000) {
          await sleep(10);
        }
        assert.equal(sink.requests.length, 1, 'the batch was not sent before the timeout');
        // ... but the sender waits until the downstream has it.
        await sleep(300);
        assert.equal(answered, false, 'answered before the downstream accepted the batch');
        sink.release();
        const r = await first;
        assert.equal(r.status, 200);
        assert.ok(r.ms < 10000, `answered after ${r.ms} ms`);
        // Several concurrent senders, in one or a few batches, each answered once delivered.
        sink.mode = 'ok';
        const rs = await Promise.all(['a', 'b', 'c'].map((n) => post(th, request(n, 2))));
        for (const x of rs) {
          assert.equal(x.status, 200);
        }
        assert.ok(sink.requests.length >= 2 && sink.requests.length <= 4);
        await th.stopClean();
      } finally {
        th.kill();
        sink.close();
        await th.cleanup();
      }
    });

  test('timeout flush: a lone request is sent when the timer fires', async () => {
    const th = await Tracehouse.start({
      yaml: config({ processors: { batch: { send_batch_size: 1000, timeout: '1s' } } }),
    });
    try {
      // The timer runs from start, as the Collector's does: the spans wait for the next
      // expiry, at most one timeout (the sender was answered at enqueue).
      const r = await post(th, request('lone', 3));
      assert.equal(r.status, 200);
      await sleep(1500);
      assert.deepEqual(await lineSizes(th), [3]);
      await th.stopClean();
      assert.deepEqual(await lineSizes(th), [3]);
      await th.cleanup();
    } finally {
      th.kill();
    }
  });

  test('SIGTERM sends what is pending: the spans are written', async () => {
    const th = await Tracehouse.start({
      yaml: config({ processors: { batch: { send_batch_size: 1000, timeout: '60s' } } }),
    });
    try {
      const r = await post(th, request('late', 4));
      assert.equal(r.status, 200);
      await sleep(300);
      assert.deepEqual(await lineSizes(th), [], 'sent before the timer or SIGTERM');
      await th.stopClean();
      assert.deepEqual(await lineSizes(th), [4]);
      await th.cleanup();
    } finally {
      th.kill();
    }
  });

  test('durable behind: a refused batch fails every sender in it with 503', async () => {
    const sink = await startSink();
    const th = await Tracehouse.start({
      yaml: config({
        processors: { batch: { send_batch_size: 1000, timeout: '30s' } },
        exporter: 'otlp_http',
        exporterYaml: durableExporterYaml(sink),
      }),
    });
    try {
      sink.mode = 'refuse';
      const rs = await Promise.all(['b', 'c', 'd'].map((n) => post(th, request(n, 2))));
      for (const r of rs) {
        assert.equal(r.status, 503);
        const st = pb.decodeStatus(r.body);
        assert.equal(st.code, 14); // UNAVAILABLE: retry
      }
      assert.ok(sink.requests.length >= 1 && sink.requests.length <= 3);
      await th.stop();
    } finally {
      th.kill();
      sink.close();
      await th.cleanup();
    }
  });

  test('not durable behind: a refusal downstream is logged as dropped (senders had 200)', async () => {
    // The file exporter on /dev/full buffers the first batch, fails to write it, and from
    // then on refuses new data as retryable. Its senders were answered at enqueue, as the
    // Collector answers, so the refusal can only be logged.
    const th = await Tracehouse.start({
      yaml: config({
        processors: { batch: { send_batch_size: 6, timeout: '30s' } },
        exporterYaml: '    path: /dev/full\n    flush_interval: 50ms\n',
      }),
    });
    try {
      const first = await post(th, request('first', 6));
      assert.equal(first.status, 200);
      await sleep(300); // the writer has failed by now
      const r = await post(th, request('b', 6));
      assert.equal(r.status, 200);
      await th.waitLog(/refused a batch of 6 spans .*dropped: its senders were answered at enqueue/);
      await th.stop(); // the exporter reports the unwritten bytes: exit code 1
    } finally {
      await th.cleanup();
    }
  });
});

describe('memory_limiter processor', () => {
  const LIMIT_MIB = 64;
  const SPIKE_MIB = 16; // soft limit 48 MiB
  const CLIENTS = 4;
  const IN_FLIGHT = 48; // per client
  // VmRSS counts the binary's and libraries' file pages (about 5 MiB) besides the anonymous
  // memory the limiter measures, and the bodies of the requests in flight (192 x 70 KB) are
  // read, and decoded to be refused, whatever the limiter says: the stated margin over the
  // hard limit covers both.
  const MARGIN_MIB = 32;
  const BOUND_KIB = (LIMIT_MIB + MARGIN_MIB) * 1024;
  // Many small spans: ~70 KB of protobuf that decode into ~0.5 MiB of structs, so accepted
  // requests weigh far more than the bodies in flight.
  const body = request('flood', 2000);

  // memory_limiter (when asked) -> batch (huge send_batch_size: accepted requests stay in
  // memory until the 3s timeout) -> nop.
  function floodConfig(limiter) {
    const processors = {};
    if (limiter) {
      // Senders are answered at enqueue (nop is not durable), so the batch holds as much as
      // the limiter lets in; once it flushes, the heap is free but RSS only falls at the next
      // trim, which above the soft limit waits min_gc_interval_when_soft_limited (10s by
      // default, backed off up to 30s): shorter here so recovery fits the test's patience.
      processors.memory_limiter = {
        check_interval: '100ms', limit_mib: LIMIT_MIB, spike_limit_mib: SPIKE_MIB,
        min_gc_interval_when_soft_limited: '1s', max_gc_interval_when_soft_limited: '2s',
        max_gc_interval_when_hard_limited: '2s',
      };
    }
    processors.batch = { send_batch_size: 100000000, timeout: '3s' };
    return config({ processors, exporter: 'nop', exporterYaml: '' });
  }

  /** CLIENTS x IN_FLIGHT concurrent senders for @p ms; the answers and the highest VmRSS. */
  async function flood(th, ms) {
    let maxRssKiB = 0;
    const sampler = setInterval(() => {
      if (th.alive) {
        maxRssKiB = Math.max(maxRssKiB, th.rssKiB());
      }
    }, 20);
    const counts = {};
    const messages = new Set();
    let stop = false;
    const agents = [];
    const workers = [];
    for (let c = 0; c < CLIENTS; c++) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
      agents.push(agent);
      for (let k = 0; k < IN_FLIGHT; k++) {
        workers.push((async () => {
          while (!stop) {
            const r = await post(th, body, agent);
            counts[r.status] = (counts[r.status] ?? 0) + 1;
            if (r.status !== 200) {
              messages.add(pb.decodeStatus(r.body).message);
            }
          }
        })());
      }
    }
    await sleep(ms);
    stop = true;
    await Promise.all(workers);
    clearInterval(sampler);
    agents.forEach((a) => a.destroy());
    return { counts, messages: [...messages], maxRssKiB };
  }

  // ASan keeps freed memory in its quarantine and adds shadow memory, so RSS neither shows
  // what the process holds nor falls after a flood: these two are for normal builds only.
  const sanitized = process.env.TH_SANITIZED
    ? 'ASan builds: RSS includes the quarantine and never falls' : false;

  test('without it, the same flood takes RSS past the bound (calibration)', { skip: sanitized }, async (t) => {
    const th = await Tracehouse.start({ yaml: floodConfig(false) });
    try {
      const r = await flood(th, 3000);
      t.diagnostic(`no limiter: ${JSON.stringify(r.counts)}, max VmRSS ${Math.round(r.maxRssKiB / 1024)} MiB`);
      assert.deepEqual(Object.keys(r.counts), ['200']);
      assert.ok(r.maxRssKiB > BOUND_KIB,
        `the flood only reached ${r.maxRssKiB} KiB: it would not show the limiter working`);
      await th.stopClean();
      await th.cleanup();
    } finally {
      th.kill();
    }
  });

  test('refuses a flood with 503, keeps RSS bounded, and accepts again afterwards', { skip: sanitized }, async (t) => {
    const th = await Tracehouse.start({ yaml: floodConfig(true) });
    try {
      const { counts, messages, maxRssKiB } = await flood(th, 5000);
      const measured = [...th.stderr.matchAll(/cur_mem_mib=(\d+)/g)].map((m) => Number(m[1]));
      t.diagnostic(`flood answers ${JSON.stringify(counts)}, max VmRSS ${Math.round(maxRssKiB / 1024)} MiB, ` +
        `highest measurement logged ${Math.max(...measured)} MiB`);
      assert.ok(counts[503] > 0, `no 503 in the flood: ${JSON.stringify(counts)}`);
      assert.ok(counts[200] > 0, `nothing accepted in the flood: ${JSON.stringify(counts)}`);
      assert.deepEqual(Object.keys(counts).sort(), ['200', '503']);
      assert.deepEqual(messages, ['data refused due to high memory usage']);
      assert.ok(maxRssKiB <= BOUND_KIB,
        `RSS reached ${maxRssKiB} KiB, over ${LIMIT_MIB} MiB + ${MARGIN_MIB} MiB`);
      await th.waitLog(/Memory usage is above soft limit\. Refusing data\./);

      // The flood is over: the batch flushes within its timeout, memory is returned (trim),
      // and a check lets data in again.
      let ok = null;
      for (let i = 0; i < 30 && !ok; i++) {
        const r = await post(th, request('after', 10));
        if (r.status === 200) {
          ok = r;
        } else {
          assert.equal(r.status, 503);
          await sleep(500);
        }
      }
      assert.ok(ok, `still refused after the flood\n${th.stderr.slice(-2000)}`);
      await th.waitLog(/Memory usage back within limits\. Resuming normal operation\./);
      await th.stopClean();
      await th.cleanup();
    } finally {
      th.kill();
    }
  });
});
