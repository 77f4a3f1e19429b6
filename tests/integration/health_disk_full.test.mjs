// A store whose disk fills up, on the real binary: the store sits on a small tmpfs that a
// filler file has mostly taken. Ingest fills the store's preallocated map, the next growth
// finds no room, and from then on senders get 503 and the health check answers 503 saying
// the store is full. Nothing stored is deleted to make room (the default): once the filler
// is removed the store grows by itself, writes succeed, the health check is 200 again, and
// every trace that was ever answered 200 is in the store, whole.
//
// With `evict_oldest_when_full: true` (opt-in) the old behaviour stays: at the disk's limit
// retention deletes the oldest blocks to make room, ingest goes on, and the traces missing
// are the oldest ones, never one here and there.
//
// Mounting a tmpfs needs root, as CI runs; elsewhere the test fails and says so.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, test } from 'node:test';

import { freePorts, Tracehouse } from './lib/harness.mjs';

const MIB = 1024 * 1024;
// The store preallocates a 64 MiB map and grows it in 64 MiB steps: 160 MiB of tmpfs with
// 90 MiB taken leaves room for the first map and not for the first step.
const TMPFS_MIB = 160;
const FILLER_MIB = 90;

let th;
let dir;
let mounted = false;
let hcPort;
let queryPort;

/** Mount a fresh tmpfs with its filler and start tracehouse on it; @p lmdb: extra keys. */
async function setup(lmdb = '') {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'th-diskfull-'));
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_MIB}m`, 'tmpfs', dir], {
    encoding: 'utf8',
  });
  assert.equal(m.status, 0,
    `mounting a ${TMPFS_MIB} MiB tmpfs on ${dir} failed (this test needs root): ${m.stderr}`);
  mounted = true;
  await fsp.writeFile(path.join(dir, 'filler'), Buffer.alloc(FILLER_MIB * MIB, 1));
  [hcPort, queryPort] = await freePorts(2);
  const yaml = [
    'extensions:',
    '  jaeger_storage:',
    '    backends:',
    `      main: {lmdb: {path: "${dir}/data", ttl: {spans: 72h}${lmdb}}}`,
    '  jaeger_query:',
    '    storage: {traces: main}',
    `    http: {endpoint: "127.0.0.1:${queryPort}"}`,
    `  health_check: {endpoint: "127.0.0.1:${hcPort}"}`,
    'receivers:',
    '  otlp:',
    '    protocols:',
    '      http: {endpoint: "127.0.0.1:{port}"}',
    'exporters:',
    '  jaeger_storage_exporter: {trace_storage: main}',
    'service:',
    '  extensions: [jaeger_storage, jaeger_query, health_check]',
    '  telemetry: {metrics: {level: none}}',
    '  pipelines:',
    '    traces: {receivers: [otlp], exporters: [jaeger_storage_exporter]}',
    '',
  ].join('\n');
  th = await Tracehouse.start({ yaml });
}

async function teardown() {
  if (th) {
    const r = await th.stop();
    assert.equal(r.code, 0, th.stderr);
    await th.cleanup();
    th = null;
  }
  if (mounted) {
    spawnSync('umount', [dir]);
    mounted = false;
  }
  await fsp.rm(dir, { recursive: true, force: true });
}

afterEach(teardown);

async function health() {
  const res = await fetch(`http://127.0.0.1:${hcPort}/`);
  return { status: res.status, body: await res.text() };
}

async function healthUntil(status, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const h = await health();
    if (h.status === status || Date.now() > deadline) {
      return h;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

// One trace of 50 spans whose attributes are random hex (about 4 KB a span after zstd, so
// the map fills after a few hundred requests).
function request(traceId) {
  const now = BigInt(Date.now()) * 1_000_000n;
  const spans = [];
  for (let i = 0; i < 50; i++) {
    spans.push({
      traceId,
      spanId: crypto.randomBytes(8).toString('hex'),
      name: `op-${i % 5}`,
      kind: 2,
      startTimeUnixNano: String(now),
      endTimeUnixNano: String(now + 1_000_000n),
      attributes: [0, 1, 2, 3].map((k) => ({
        key: `blob.${k}`, value: { stringValue: crypto.randomBytes(1000).toString('hex') },
      })),
    });
  }
  return JSON.stringify({
    resourceSpans: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: 'diskfull' } }] },
      scopeSpans: [{ spans }],
    }],
  });
}

async function post(body) {
  const res = await fetch(`http://127.0.0.1:${th.port}/v1/traces`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body,
  });
  return { status: res.status, text: await res.text() };
}

/** Which of @p acked the query API does not return (404), by index; fails on a partial one. */
async function missingOf(acked) {
  const missing = [];
  for (const [i, id] of acked.entries()) {
    const res = await fetch(`http://127.0.0.1:${queryPort}/api/traces/${id}`);
    if (res.status === 404) {
      await res.text();
      missing.push(i);
      continue;
    }
    assert.equal(res.status, 200);
    const got = await res.json();
    assert.equal(got.data[0].spans.length, 50, `trace ${id} (request ${i}) is not whole`);
  }
  return missing;
}

test('a full disk: 503 to senders and from the health check, recovery by itself, nothing acknowledged lost', async () => {
  await setup();
  assert.equal((await health()).status, 200);
  const acked = [];
  let refused = null;
  for (let i = 0; i < 2000 && !refused; i++) {
    const id = crypto.randomBytes(16).toString('hex');
    const body = request(id);
    const r = await post(body);
    if (r.status === 200) {
      acked.push(id);
    } else {
      assert.equal(r.status, 503, `a full store answers 503, not ${r.status}: ${r.text}`);
      refused = { id, body };
    }
  }
  assert.ok(refused, `the store never filled up (${acked.length} requests stored)`);
  assert.ok(acked.length > 50, `only ${acked.length} requests fitted before the store was full`);

  const h = await healthUntil(503);
  assert.equal(h.status, 503, 'the health check reports the full store');
  assert.match(h.body, /jaeger_storage_exporter/);
  assert.match(h.body, /full/);
  // Still full: a retry is refused again, and the health check stays 503.
  assert.equal((await post(refused.body)).status, 503);
  assert.equal((await health()).status, 503);
  // Nothing was deleted to make room.
  assert.deepEqual(await missingOf(acked), [], 'acknowledged traces were deleted to make room');

  // Room again: the sender's retry goes through, and the health check follows by itself.
  await fsp.rm(path.join(dir, 'filler'));
  let retried;
  const deadline = Date.now() + 20_000;
  do {
    retried = await post(refused.body);
    if (retried.status !== 200) {
      await new Promise((r) => setTimeout(r, 100));
    }
  } while (retried.status !== 200 && Date.now() < deadline);
  assert.equal(retried.status, 200, `the store did not recover: ${retried.text}`);
  acked.push(refused.id);
  assert.equal((await healthUntil(200)).status, 200);

  // Everything answered 200 is stored, whole: none is missing.
  assert.deepEqual(await missingOf(acked), []);
  assert.match(th.stderr, /the store is full \(.*No space left on device\).*ingest answers 503/);
  assert.match(th.stderr, /takes writes again/);
});

test('evict_oldest_when_full: ingest goes on at the disk\'s limit, only the oldest traces go', async () => {
  await setup(', evict_oldest_when_full: true');
  const acked = [];
  // about half again what the disk holds
  for (let i = 0; i < 500; i++) {
    const id = crypto.randomBytes(16).toString('hex');
    const r = await post(request(id));
    if (r.status === 200) {
      acked.push(id);
    } else {
      assert.equal(r.status, 503, `${r.status}: ${r.text}`);
    }
  }
  assert.match(th.stderr, /store is full/);
  const missing = await missingOf(acked);
  assert.ok(missing.length > 0, 'nothing was evicted: the disk never filled up');
  assert.deepEqual(missing, missing.map((_, i) => i),
    `only the oldest traces may be deleted to make room; missing: ${missing.join(',')}`);
  assert.ok(acked.length - missing.length > 50, `${missing.length} of ${acked.length} deleted`);
});
