// Faults on the real binary (issue 10, item 4). Each case ends in a clear log line, with no
// acknowledged span lost and no damage, and ingest answering 503 while it cannot store and
// recovering by itself:
//
//  1. a full disk (ENOSPC while growing the map and syncing, from the fault shim);
//  2. store files that turn read-only during a run (the shim's EROFS), and a read-only store
//     at start (a read-only bind mount);
//  3. a damaged store file at start (cut short, header pages or other pages overwritten):
//     Tracehouse refuses to start, names the file and the way out, and leaves the file as it
//     was;
//  4. an exporter target that accepts TCP and never answers (otlp_http and otlp_grpc, memory
//     and persistent queues): timeouts, retries, the queue holds the data, 503 when full, and
//     everything acknowledged arrives once the target answers;
//  5. wall clock steps (a day back, an hour forward) during ingest: nothing acknowledged is
//     lost, nothing is deleted early, no request stalls;
//  6. SIGKILL at random points of a write, 20 times over one store: it opens every time, with
//     every acknowledged trace whole and no error logged.
//
// The fault shim (tests/faultshim, built beside the binary as libth_faultshim.so) is
// LD_PRELOADed: it shifts the wall clock by an offset read from a file, and fails write-side
// calls on the store's files while a flag file exists. Tests run as root (the bind mount).

import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';

import { BIN, freePorts, Tracehouse } from './lib/harness.mjs';

const SHIM = process.env.TH_FAULTSHIM ?? path.join(path.dirname(BIN), 'libth_faultshim.so');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const cleanups = [];
after(async () => {
  for (const f of cleanups.reverse()) {
    try {
      await f();
    } catch {
      // best effort
    }
  }
});

async function tmpdir(tag) {
  const d = await fsp.mkdtemp(path.join(os.tmpdir(), `th-faults-${tag}-`));
  cleanups.push(() => fsp.rm(d, { recursive: true, force: true }));
  return d;
}

/** A config: OTLP/HTTP on {port} into an LMDB store, with the query API and health check. */
function storeYaml({ dir, queryPort, hcPort, lmdb = '', batch = false }) {
  return [
    'extensions:',
    '  jaeger_storage:',
    '    backends:',
    `      main: {lmdb: {path: ${JSON.stringify(dir)}${lmdb ? `, ${lmdb}` : ''}}}`,
    '  jaeger_query:',
    '    storage: {traces: main}',
    `    http: {endpoint: "127.0.0.1:${queryPort}"}`,
    `  health_check: {endpoint: "127.0.0.1:${hcPort}"}`,
    'receivers:',
    '  otlp:',
    '    protocols:',
    '      http: {endpoint: "127.0.0.1:{port}"}',
    ...(batch ? ['processors:', '  batch: {timeout: 200ms, send_batch_size: 64}'] : []),
    'exporters:',
    '  jaeger_storage_exporter: {trace_storage: main}',
    'service:',
    '  extensions: [jaeger_storage, jaeger_query, health_check]',
    '  telemetry: {metrics: {level: none}}',
    '  pipelines:',
    `    traces: {receivers: [otlp],${batch ? ' processors: [batch],' : ''} exporters: [jaeger_storage_exporter]}`,
    '',
  ].join('\n');
}

/** One trace of @p n spans as OTLP/JSON; @p pad bytes of random attribute per span. */
function traceBody(traceId, { n = 10, pad = 0, service = 'faults' } = {}) {
  const now = BigInt(Date.now()) * 1_000_000n;
  const spans = [];
  for (let i = 0; i < n; i++) {
    spans.push({
      traceId,
      spanId: crypto.randomBytes(8).toString('hex'),
      name: `op-${i % 3}`,
      kind: 2,
      startTimeUnixNano: String(now),
      endTimeUnixNano: String(now + 1_000_000n),
      attributes: pad ? [{ key: 'blob', value: { stringValue: crypto.randomBytes(pad / 2).toString('hex') } }] : [],
    });
  }
  return JSON.stringify({
    resourceSpans: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: service } }] },
      scopeSpans: [{ spans }],
    }],
  });
}

async function post(port, body, timeoutMs = 10_000) {
  const res = await fetch(`http://127.0.0.1:${port}/v1/traces`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  return { status: res.status, text: await res.text() };
}

const newId = () => crypto.randomBytes(16).toString('hex');

/** Which of @p ids the query API does not return whole (with @p n spans). */
async function notStored(queryPort, ids, n) {
  const bad = [];
  for (const id of ids) {
    const res = await fetch(`http://127.0.0.1:${queryPort}/api/traces/${id}`);
    if (res.status !== 200) {
      await res.text();
      bad.push(`${id}: HTTP ${res.status}`);
      continue;
    }
    const got = await res.json();
    const spans = got.data?.[0]?.spans?.length ?? 0;
    if (spans !== n) {
      bad.push(`${id}: ${spans} spans`);
    }
  }
  return bad;
}

async function health(hcPort) {
  const res = await fetch(`http://127.0.0.1:${hcPort}/`);
  return { status: res.status, body: await res.text() };
}

async function until(what, fn, ms = 20_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) {
      return v;
    }
    if (Date.now() > deadline) {
      assert.fail(`timed out waiting for ${what}`);
    }
    await sleep(50);
  }
}

/** Run the binary with @p yaml until it exits (it is expected to refuse to start). */
async function runToExit(yaml, { env = {}, ms = 15_000 } = {}) {
  const dir = await tmpdir('run');
  const cfg = path.join(dir, 'config.yaml');
  const [port] = await freePorts(1);
  await fsp.writeFile(cfg, yaml.replaceAll('{port}', String(port)));
  const p = spawn(BIN, ['--config', cfg], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let stderr = '';
  p.stderr.setEncoding('utf8');
  p.stderr.on('data', (d) => { stderr += d; });
  p.stdout.resume();
  const timer = setTimeout(() => p.kill('SIGKILL'), ms);
  const [code, signal] = await new Promise((r) => p.on('exit', (c, s) => r([c, s])));
  clearTimeout(timer);
  return { code, signal, stderr };
}

/** Start a store-backed tracehouse; the shim's files are in @p env. */
async function startStore(o, env = {}) {
  const th = await Tracehouse.start({ yaml: storeYaml(o), env });
  cleanups.push(() => th.kill());
  return th;
}

function shimEnv(extra) {
  assert.ok(fs.existsSync(SHIM), `the fault shim is not built at ${SHIM}`);
  // Under ASan the runtime wants to be first in the library list; the shim only forwards to
  // the next definition, which is ASan's interceptor, so its order check is turned off.
  const asan = process.env.TH_SANITIZED
    ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:` : ''}verify_asan_link_order=0` }
    : {};
  return { LD_PRELOAD: SHIM, ...asan, ...extra };
}

/* ---- 1 and 2: the store cannot write while running ------------------------------------ */

/**
 * Ingest while the shim makes the store's writes fail with @p errno: 503 and a clear log
 * line while it lasts, recovery by itself after, every acknowledged trace stored.
 */
async function writeFault(errno, reason, logRe, { metaOnly = false } = {}) {
  const dir = await tmpdir(`wf-${errno}`);
  const flag = path.join(dir, 'fault-on');
  const store = path.join(dir, 'store');
  const [queryPort, hcPort] = await freePorts(2);
  const env = { TH_FAULT_IO_PATH: store, TH_FAULT_IO_FLAG: flag, TH_FAULT_IO_ERRNO: errno };
  if (metaOnly) {
    env.TH_FAULT_IO_MSYNC_MAXLEN = '8192'; // LMDB's meta page sync, not its data sync
  }
  const th = await startStore({ dir: store, queryPort, hcPort }, shimEnv(env));
  const acked = [];
  for (let i = 0; i < 20; i++) {
    const id = newId();
    assert.equal((await post(th.port, traceBody(id))).status, 200);
    acked.push(id);
  }
  await fsp.writeFile(flag, '');
  await sleep(30);
  // While the fault lasts: 503s (the shim reads its flag every few ms: one may slip through)
  let refused = null;
  for (let i = 0; i < 50 && !refused; i++) {
    const id = newId();
    const body = traceBody(id);
    const r = await post(th.port, body);
    if (r.status === 200) {
      acked.push(id);
    } else {
      assert.equal(r.status, 503, `a store that cannot write answers 503, not ${r.status}: ${r.text}`);
      refused = { id, body };
    }
  }
  assert.ok(refused, 'writes kept succeeding with the fault on');
  assert.equal((await post(th.port, refused.body)).status, 503);
  const h = await until('the health check to report it', async () => {
    const x = await health(hcPort);
    return x.status === 503 ? x : null;
  });
  assert.match(h.body, reason);
  await th.waitLog(logRe);
  // The fault ends: the sender's retry goes through by itself.
  await fsp.rm(flag);
  if (metaOnly) {
    // Queries recover before any write comes: after LMDB's panic, a read reopens the store.
    await until('a query to answer before any write', async () => {
      const res = await fetch(`http://127.0.0.1:${queryPort}/api/traces/${acked[0]}`);
      const body = await res.text();
      return res.status === 200 && JSON.parse(body).data[0].spans.length === 10;
    }, 5000);
  }
  await until('the store to take writes again', async () => (await post(th.port, refused.body)).status === 200);
  if (metaOnly) {
    // A failed meta page sync leaves the commit in the page cache, where the reopened handle
    // finds it: the refused request may be stored twice (at least once, as a retry can be).
    const res = await fetch(`http://127.0.0.1:${queryPort}/api/traces/${refused.id}`);
    const spans = (await res.json()).data[0].spans.length;
    assert.ok(spans === 10 || spans === 20, `${spans} spans`);
  } else {
    acked.push(refused.id);
  }
  await until('the health check to recover', async () => (await health(hcPort)).status === 200);
  await th.waitLog(/takes writes again/);
  for (let i = 0; i < 5; i++) {
    const id = newId();
    assert.equal((await post(th.port, traceBody(id))).status, 200);
    acked.push(id);
  }
  assert.deepEqual(await notStored(queryPort, acked, 10), []);
  // and after a restart on the same files, still all there
  await th.stopClean();
  const th2 = await startStore({ dir: store, queryPort, hcPort });
  assert.deepEqual(await notStored(queryPort, acked, 10), []);
  await th2.stopClean();
  assert.doesNotMatch(th2.stderr, /\berror\b/);
}

test('disk full (ENOSPC growing and syncing the map): 503, a clear log line, recovery, nothing lost', async () => {
  await writeFault('ENOSPC', /store is full/,
    /the store is full \(.*No space left on device\).*ingest answers 503.*free space/);
});

test('disk quota exceeded (EDQUOT) is a full disk too', async () => {
  await writeFault('EDQUOT', /store is full/, /the store is full \(.*quota exceeded\)/i);
});

test('store files turn read-only during a run (EROFS): 503, a clear log line, recovery, nothing lost', async () => {
  await writeFault('EROFS', /read-only/,
    /the store is read-only \(.*Read-only file system\).*ingest answers 503.*writable again/);
});

test('the meta page write fails (LMDB panics): 503, the store reopens itself, nothing lost', async () => {
  await writeFault('EIO', /cannot write/,
    /the store cannot write \(.*Input\/output error\).*ingest answers 503/, { metaOnly: true });
});

test('a read-only store at start: a clear error naming the path and what to do', async () => {
  const dir = await tmpdir('ro');
  const store = path.join(dir, 'store');
  const [queryPort, hcPort] = await freePorts(2);
  // a store with data, then the same directory bind-mounted read-only over itself
  const th = await startStore({ dir: store, queryPort, hcPort });
  const ids = [newId(), newId()];
  for (const id of ids) {
    assert.equal((await post(th.port, traceBody(id))).status, 200);
  }
  await th.stopClean();
  let m = spawnSync('mount', ['--bind', store, store], { encoding: 'utf8' });
  assert.equal(m.status, 0, `bind mount failed (this test needs root): ${m.stderr}`);
  cleanups.push(() => spawnSync('umount', [store]));
  m = spawnSync('mount', ['-o', 'remount,bind,ro', store], { encoding: 'utf8' });
  assert.equal(m.status, 0, m.stderr);
  const r = await runToExit(storeYaml({ dir: store, queryPort, hcPort }));
  assert.equal(r.signal, null, r.stderr);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, new RegExp(`${store.replaceAll('/', '\\/')}: the store's files cannot be opened for writing \\(Read-only file system\\)`));
  assert.match(r.stderr, /remount it read-write/);
  // writable again: it starts with the data
  spawnSync('umount', [store]);
  const th2 = await startStore({ dir: store, queryPort, hcPort });
  assert.deepEqual(await notStored(queryPort, ids, 10), []);
  await th2.stopClean();
});

/* ---- 3: a damaged store file at start ------------------------------------------------- */

async function damagedStart(tag, damage) {
  const dir = await tmpdir(`bad-${tag}`);
  const store = path.join(dir, 'store');
  const [queryPort, hcPort] = await freePorts(2);
  const th = await startStore({ dir: store, queryPort, hcPort });
  for (let i = 0; i < 60; i++) {
    assert.equal((await post(th.port, traceBody(newId(), { pad: 2000 }))).status, 200);
  }
  await th.stopClean();
  const file = path.join(store, 'data.mdb');
  await damage(file);
  const before = crypto.createHash('sha256').update(await fsp.readFile(file)).digest('hex');
  // After a fault caught inside LMDB the check leaves its read-only handle open on purpose
  // (closing it could fault again): under ASan that is reported as a leak at exit.
  const env = process.env.TH_SANITIZED
    ? { ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:` : ''}detect_leaks=0` }
    : {};
  const r = await runToExit(storeYaml({ dir: store, queryPort, hcPort }), { env });
  assert.equal(r.signal, null, `crashed: ${r.stderr}`);
  assert.notEqual(r.code, 0, 'started on a damaged store');
  assert.match(r.stderr, new RegExp(`${file.replaceAll('/', '\\/')} is damaged`));
  assert.match(r.stderr, /never deletes one: to start with an empty store, move the directory aside \(mv /);
  const afterHash = crypto.createHash('sha256').update(await fsp.readFile(file)).digest('hex');
  assert.equal(afterHash, before, 'the damaged file was changed');
  // the way out the message gives works
  await fsp.rename(store, `${store}.damaged`);
  const th2 = await startStore({ dir: store, queryPort, hcPort });
  assert.equal((await post(th2.port, traceBody(newId()))).status, 200);
  await th2.stopClean();
  return r.stderr;
}

/** The last used page of a store file (from its meta pages: txnid and last_pg). */
function lastPage(buf) {
  // meta at offset 16 of pages 0 and 1: magic u32, version u32, address u64, mapsize u64,
  // 2 × 48-byte db records, last_pg u64, txnid u64
  const psize = 4096;
  let best = null;
  for (const off of [16, psize + 16]) {
    const last = Number(buf.readBigUInt64LE(off + 24 + 96));
    const txn = buf.readBigUInt64LE(off + 24 + 104);
    if (!best || txn > best.txn) {
      best = { last, txn };
    }
  }
  return best.last;
}

test('a store file cut short: refuses to start, names the file and the way out, changes nothing', async () => {
  await damagedStart('cut', async (file) => {
    const last = lastPage(await fsp.readFile(file));
    assert.ok(last > 20, `the store is too small (${last} pages)`);
    await fsp.truncate(file, Math.floor(last / 2) * 4096);
  });
});

test('header pages overwritten: refuses to start with a clear message', async () => {
  const err = await damagedStart('meta', async (file) => {
    const fd = await fsp.open(file, 'r+');
    await fd.write(crypto.randomBytes(8192), 0, 8192, 0);
    await fd.close();
  });
  assert.match(err, /header pages/);
});

test('pages of garbage inside the file: refuses to start, never crashes', async () => {
  await damagedStart('pages', async (file) => {
    const buf = await fsp.readFile(file);
    const last = lastPage(buf);
    const fd = await fsp.open(file, 'r+');
    // every page in use but the two header pages
    for (let pg = 2; pg <= last; pg++) {
      await fd.write(crypto.randomBytes(4096), 0, 4096, pg * 4096);
    }
    await fd.close();
  });
});

test('a few random pages of garbage: refuses to start, never crashes', async () => {
  for (let round = 0; round < 3; round++) {
    await damagedStart(`few-${round}`, async (file) => {
      const last = lastPage(await fsp.readFile(file));
      const fd = await fsp.open(file, 'r+');
      for (let i = 0; i < 4; i++) {
        const pg = 2 + Math.floor(Math.random() * (last - 1));
        // the page header and its first nodes: what LMDB follows
        await fd.write(crypto.randomBytes(512), 0, 512, pg * 4096);
      }
      await fd.close();
    });
  }
});

/* ---- 4: the exporter's target hangs --------------------------------------------------- */

/**
 * A TCP front for the target: while hanging it accepts connections and never answers; then
 * it pipes new connections to @p upstreamPort.
 */
async function hangingFront(port, upstreamPort) {
  const held = new Set();
  const front = { hanging: true, accepted: 0 };
  const srv = net.createServer((sock) => {
    front.accepted++;
    sock.on('error', () => {});
    if (front.hanging) {
      held.add(sock);
      sock.resume(); // read and drop, never answer
      return;
    }
    const up = net.connect(upstreamPort, '127.0.0.1');
    up.on('error', () => sock.destroy());
    sock.on('error', () => up.destroy());
    sock.pipe(up);
    up.pipe(sock);
  });
  await new Promise((r) => srv.listen(port, '127.0.0.1', r));
  front.answer = () => {
    front.hanging = false;
    for (const s of held) {
      s.destroy();
    }
    held.clear();
  };
  front.close = () => new Promise((r) => { front.answer(); srv.close(r); });
  cleanups.push(front.close);
  return front;
}

/** The sink: a real Tracehouse with a file exporter, on HTTP {port} and gRPC @p grpcPort. */
async function startSink(grpcPort) {
  const yaml = [
    'receivers:', '  otlp:', '    protocols:',
    '      http: {endpoint: "127.0.0.1:{port}"}',
    `      grpc: {endpoint: "127.0.0.1:${grpcPort}"}`,
    'exporters:', '  file: {path: "{out}", flush_interval: 100ms}',
    'service:', '  telemetry: {metrics: {level: none}}',
    '  pipelines:', '    traces: {receivers: [otlp], exporters: [file]}', '',
  ].join('\n');
  const th = await Tracehouse.start({ yaml });
  cleanups.push(() => th.kill());
  return th;
}

async function sinkTraceIds(sink) {
  const ids = new Map();
  for (const req of await sink.readOutput()) {
    for (const rs of req.resourceSpans ?? []) {
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          // the file exporter writes ids as hex
          ids.set(s.traceId, (ids.get(s.traceId) ?? 0) + 1);
        }
      }
    }
  }
  return ids;
}

async function exporterHang(kind, persistent) {
  const [frontPort, grpcPort] = await freePorts(2);
  const sink = await startSink(grpcPort);
  const front = await hangingFront(frontPort, kind === 'http' ? sink.port : grpcPort);
  const qdir = persistent ? await tmpdir('q') : null;
  const exporter = kind === 'http'
    ? ['  otlp_http:', `    endpoint: http://127.0.0.1:${frontPort}`, '    compression: none']
    : ['  otlp:', `    endpoint: 127.0.0.1:${frontPort}`, '    tls: {insecure: true}', '    compression: none'];
  const yaml = [
    'receivers:', '  otlp:', '    protocols:', '      http: {endpoint: "127.0.0.1:{port}"}',
    'exporters:', ...exporter,
    '    timeout: 1s',
    '    retry_on_failure: {initial_interval: 100ms, max_interval: 400ms, max_elapsed_time: 0}',
    `    sending_queue: {num_consumers: 2, queue_size: 25${persistent ? ', storage: file_storage/q' : ''}}`,
    ...(persistent ? ['extensions:', '  file_storage/q:', `    directory: ${JSON.stringify(qdir)}`, '    create_directory: true'] : []),
    'service:',
    ...(persistent ? ['  extensions: [file_storage/q]'] : []),
    '  telemetry: {metrics: {level: none}}',
    '  pipelines:', `    traces: {receivers: [otlp], exporters: [${kind === 'http' ? 'otlp_http' : 'otlp'}]}`, '',
  ].join('\n');
  const a = await Tracehouse.start({ yaml });
  cleanups.push(() => a.kill());
  const acked = [];
  let refused = 0;
  for (let i = 0; i < 40; i++) {
    const id = newId();
    const t0 = Date.now();
    const r = await post(a.port, traceBody(id, { n: 5 }));
    assert.ok(Date.now() - t0 < 3000, 'the receiver waited on the hanging target');
    if (r.status === 200) {
      acked.push(id);
    } else {
      assert.equal(r.status, 503, `${r.status}: ${r.text}`);
      refused++;
    }
  }
  assert.ok(acked.length >= 20, `only ${acked.length} accepted while the target hangs`);
  assert.ok(refused > 0, 'a full queue never answered 503');
  // the timeout fires and the exporter retries: over HTTP/1.1 on new connections; a gRPC
  // channel keeps its one connection attempt for gRPC's 20 s connect timeout, each call
  // failing with DEADLINE_EXCEEDED after its own timeout meanwhile
  await sleep(2500);
  if (kind === 'http') {
    assert.ok(front.accepted >= 2, `the exporter never retried (${front.accepted} connections)`);
    assert.match(a.stderr, /timeout|timed out/i);
  } else {
    assert.match(a.stderr, /DEADLINE_EXCEEDED/);
  }
  assert.deepEqual([...(await sinkTraceIds(sink)).keys()], []);
  // the target answers: everything acknowledged arrives
  front.answer();
  const got = await until('every acknowledged trace at the target', async () => {
    const ids = await sinkTraceIds(sink);
    return acked.every((id) => ids.get(id) >= 5) ? ids : null;
  }, 30_000);
  assert.ok(acked.every((id) => got.get(id) >= 5));
  await a.stopClean();
  await sink.stopClean();
}

test('otlp_http target hangs (memory queue): timeout, retries, 503 when full, all delivered after', async () => {
  await exporterHang('http', false);
});

test('otlp_http target hangs (persistent queue): all delivered after', async () => {
  await exporterHang('http', true);
});

test('otlp_grpc target hangs (memory queue): timeout, retries, 503 when full, all delivered after', async () => {
  await exporterHang('grpc', false);
});

test('otlp_grpc target hangs (persistent queue): all delivered after', async () => {
  await exporterHang('grpc', true);
});

test('no sending queue and the target hangs: the receiver\'s write_timeout closes the waiting connection; ' +
  'once the target answers, requests are delivered', async () => {
  const [frontPort, grpcPort] = await freePorts(2);
  const sink = await startSink(grpcPort);
  const front = await hangingFront(frontPort, sink.port);
  const yaml = [
    'receivers:', '  otlp:', '    protocols:',
    '      http: {endpoint: "127.0.0.1:{port}", write_timeout: 1s}',
    'exporters:', '  otlp_http:', `    endpoint: http://127.0.0.1:${frontPort}`, '    compression: none',
    '    timeout: 20s', '    retry_on_failure: {enabled: false}', '    sending_queue: {enabled: false}',
    'service:', '  telemetry: {metrics: {level: none}}',
    '  pipelines:', '    traces: {receivers: [otlp], exporters: [otlp_http]}', '',
  ].join('\n');
  const a = await Tracehouse.start({ yaml });
  cleanups.push(() => a.kill());
  // Without a queue the answer waits for the target, which never answers: the connection is
  // closed after write_timeout (the sweep runs every second), not after the exporter's 20 s.
  const t0 = Date.now();
  const err = await post(a.port, traceBody(newId()), 15_000).then((r) => `answered ${r.status}`, (e) => e);
  const took = Date.now() - t0;
  assert.ok(err instanceof Error && !/TimeoutError|aborted/i.test(`${err.name} ${err.message}`),
    `expected the connection to be closed, got: ${err}`);
  assert.ok(took >= 900 && took < 6000, `closed after ${took} ms (write_timeout 1s)`);
  // the client can see the close before the server's log line reaches us through the pipe
  await a.waitLog(/closed 1 connection\(s\) on 127\.0\.0\.1:\d+ since the last such line: a request was not answered and written within write_timeout \(1000 ms/);
  // The target answers again: a request now gets its 200 and reaches the sink.
  front.answer();
  const id = newId();
  const r = await post(a.port, traceBody(id, { n: 3 }));
  assert.equal(r.status, 200, r.text);
  await until('the trace to reach the sink', async () => (await sinkTraceIds(sink)).get(id) === 3);
  await a.stopClean();
});

/* ---- 5: clock steps ------------------------------------------------------------------- */

test('the wall clock steps a day back and an hour forward during ingest: nothing lost or deleted early', async () => {
  const dir = await tmpdir('clock');
  const clock = path.join(dir, 'clock-offset');
  await fsp.writeFile(clock, '0');
  const store = path.join(dir, 'store');
  const [queryPort, hcPort] = await freePorts(2);
  // ttl 2h and retention every second: a block stamped with the stepped-back clock would be
  // 25 hours old once the clock is an hour ahead, and deleted at the next pass
  const th = await startStore({ dir: store, queryPort, hcPort, batch: true,
    lmdb: 'ttl: {spans: 2h}, retention_interval: 1s' }, shimEnv({ TH_FAULT_CLOCK_FILE: clock }));
  const acked = [];
  const send = async (count) => {
    for (let i = 0; i < count; i++) {
      const id = newId();
      const t0 = Date.now();
      const r = await post(th.port, traceBody(id), 5000);
      assert.equal(r.status, 200, r.text);
      // a wait on the wall clock would hang for the step (an hour or a day); a loaded CI
      // machine can take a second or two on its own
      assert.ok(Date.now() - t0 < 4000, `a request took ${Date.now() - t0} ms`);
      acked.push(id);
    }
  };
  // the first blocks of the store are written a day back: with ingest stamped by the wall
  // clock they would be 25 h old once it is an hour ahead, and nothing younger before them
  // would stop the pass that deletes them
  await sleep(300);
  await fsp.writeFile(clock, String(-86400));
  await sleep(20);
  await send(10);
  await sleep(1500); // retention passes on the stepped-back clock
  await fsp.writeFile(clock, String(3600));
  await sleep(20);
  await send(10);
  // one lone request: a group commit waiting on the wall clock would stall here
  await send(1);
  await sleep(2500); // retention passes an hour ahead
  await fsp.writeFile(clock, '0');
  await sleep(20);
  await send(10);
  await sleep(1500);
  assert.deepEqual(await notStored(queryPort, acked, 10), []);
  assert.equal((await health(hcPort)).status, 200);
  await th.stopClean();
  assert.doesNotMatch(th.stderr, /\berror\b/);
});

/* ---- 6: SIGKILL at random points of a write ------------------------------------------- */

test('SIGKILL at random points of writes, 20 times: the store opens, every acknowledged trace is whole', async () => {
  const dir = await tmpdir('kill');
  const store = path.join(dir, 'store');
  const acked = [];
  for (let round = 0; round < 20; round++) {
    // new ports each round: the harness picks the OTLP port while none of these is bound
    const [queryPort, hcPort] = await freePorts(2);
    const th = await startStore({ dir: store, queryPort, hcPort });
    assert.doesNotMatch(th.stderr, /\berror\b/, `round ${round}: ${th.stderr}`);
    // what the last run acknowledged is all there
    assert.deepEqual(await notStored(queryPort, acked.slice(-40), 10), [], `round ${round}`);
    let stop = false;
    const sender = async () => {
      while (!stop) {
        const id = newId();
        try {
          const r = await post(th.port, traceBody(id, { pad: 400 }), 3000);
          if (r.status === 200) {
            acked.push(id);
          }
        } catch {
          return; // killed mid-request: not acknowledged
        }
      }
    };
    const senders = [sender(), sender(), sender(), sender()];
    await sleep(100 + Math.random() * 500);
    th.kill();
    stop = true;
    await Promise.all(senders);
    await th.exitPromise;
    assert.equal(th.exited.signal, 'SIGKILL');
  }
  const [queryPort, hcPort] = await freePorts(2);
  const th = await startStore({ dir: store, queryPort, hcPort });
  assert.ok(acked.length > 100, `only ${acked.length} traces acknowledged`);
  assert.deepEqual(await notStored(queryPort, acked, 10), []);
  await th.stopClean();
  assert.doesNotMatch(th.stderr, /\berror\b/);
});
