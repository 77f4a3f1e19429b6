// TLS on every server endpoint of the real binary. A CA, server certificates for
// localhost/127.0.0.1 and a client certificate are made with the openssl CLI in a temp dir;
// tracehouse runs with `tls` on OTLP/HTTP, OTLP/gRPC (with client_ca_file: mTLS), the query
// API, health_check (min_version 1.3) and the internal metrics endpoint. The official JS SDK
// sends spans over https and over gRPC with TLS, and they are read back over https from the
// query API. Then the refusals: plaintext on every port, a gRPC client without a certificate,
// a TLS 1.2-only client against min_version 1.3; and a certificate replaced on disk while
// running is served to new connections (reload_interval) without a restart.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { after, before, test } from 'node:test';

import * as grpc from '@grpc/grpc-js';
import { SpanKind } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as HttpExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

import { freePorts, Tracehouse } from './lib/harness.mjs';

let th;
let certDir;
let ports; // {grpc, query, health, metrics}; th.port is OTLP/HTTP
const pem = {};

function openssl(...args) {
  execFileSync('openssl', args, { cwd: certDir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A key and a certificate signed by @p ca (a name in certDir), with @p ext extensions. */
function issue(name, cn, ca, ext) {
  openssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  const args = ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`,
    '-CAcreateserial', '-out', `${name}.pem`, '-days', '2'];
  if (ext) {
    args.push('-extfile', ext);
  }
  openssl(...args);
}

const file = (n) => path.join(certDir, n);
const read = (n) => fs.readFileSync(file(n));
const fingerprint = (certPem) => new crypto.X509Certificate(certPem).fingerprint256;

function makeCerts() {
  certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'th-tls-it-'));
  fs.writeFileSync(file('san.ext'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=tracehouse-it-ca');
  issue('server', 'localhost', 'ca', 'san.ext');
  issue('server2', 'localhost', 'ca', 'san.ext');
  issue('client', 'it-client', 'ca');
  // The OTLP/HTTP server reads these; the reload test replaces them.
  fs.copyFileSync(file('server.pem'), file('live.pem'));
  fs.copyFileSync(file('server.key'), file('live.key'));
  for (const n of ['ca.pem', 'server.pem', 'server2.pem', 'client.pem', 'client.key']) {
    pem[n] = read(n);
  }
}

function tlsBlock(indent, extra = {}) {
  const pad = ' '.repeat(indent);
  const lines = [`${pad}tls:`,
    `${pad}  cert_file: ${JSON.stringify(file('server.pem'))}`,
    `${pad}  key_file: ${JSON.stringify(file('server.key'))}`];
  for (const [k, v] of Object.entries(extra)) {
    lines.push(`${pad}  ${k}: ${JSON.stringify(v)}`);
  }
  return lines.join('\n');
}

before(async () => {
  makeCerts();
  const [g, q, h, m] = await freePorts(4);
  ports = { grpc: g, query: q, health: h, metrics: m };
  const yaml = `
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
      endpoint: 127.0.0.1:${q}
${tlsBlock(6)}
  health_check:
    endpoint: 127.0.0.1:${h}
${tlsBlock(4, { min_version: '1.3' })}
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
        tls:
          cert_file: ${JSON.stringify(file('live.pem'))}
          key_file: ${JSON.stringify(file('live.key'))}
          reload_interval: 200ms
      grpc:
        endpoint: 127.0.0.1:${g}
${tlsBlock(8, { client_ca_file: file('ca.pem') })}
exporters:
  jaeger_storage_exporter:
    trace_storage: main
service:
  extensions: [jaeger_storage, jaeger_query, health_check]
  telemetry:
    metrics:
      readers:
        - pull:
            exporter:
              prometheus:
                host: 127.0.0.1
                port: ${m}
${tlsBlock(16)}
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
`;
  th = await Tracehouse.start({ yaml });
});

// Connections left open on purpose: shutdown must close them (and not trip on a handshake
// in progress).
const lingering = [];

after(async () => {
  if (th) {
    await th.stopClean();
    for (const s of lingering) {
      s.destroy();
    }
    await th.cleanup();
  }
  if (certDir) {
    fs.rmSync(certDir, { recursive: true, force: true });
  }
});

/** GET over https; resolves {status, text, json}. */
function httpsGet(port, p, opts = {}) {
  return new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', servername: 'localhost', port, path: p, ca: pem['ca.pem'],
      agent: false, ...opts }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, text, json });
      });
    }).on('error', reject);
  });
}

/** A plaintext HTTP/1.1 request: resolves {status} when answered, {error} when not. */
function plainGet(port, p = '/') {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false, timeout: 5000 }, (res) => {
      res.resume();
      resolve({ status: res.statusCode });
    });
    req.on('timeout', () => { req.destroy(new Error('timeout')); });
    req.on('error', (error) => resolve({ error }));
  });
}

/** Raw plaintext bytes: resolves what came back before the server closed the connection. */
function rawPlaintext(port, bytes) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    const chunks = [];
    const timer = setTimeout(() => { s.destroy(); reject(new Error('connection left open')); }, 5000);
    s.on('connect', () => s.write(bytes));
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(timer); resolve(Buffer.concat(chunks)); });
  });
}

/** The certificate a TLS connection is served, and the protocol. */
function peer(port, opts = {}) {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', servername: 'localhost', port, ca: pem['ca.pem'],
      ...opts }, () => {
      const cert = s.getPeerX509Certificate();
      const out = { fingerprint: cert.fingerprint256, protocol: s.getProtocol(), alpn: s.alpnProtocol };
      s.end();
      resolve(out);
    });
    s.on('error', reject);
  });
}

/** Connect, send nothing, and wait for the server to end the connection or 2 s to pass. */
function tlsOutcome(port, opts = {}) {
  return new Promise((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', servername: 'localhost', port, ca: pem['ca.pem'],
      ...opts });
    const timer = setTimeout(() => { s.destroy(); resolve({ open: true }); }, 2000);
    s.on('error', (error) => { clearTimeout(timer); resolve({ error }); });
    s.on('close', () => { clearTimeout(timer); resolve({ closed: true }); });
    s.on('data', () => {});
  });
}

function provider(exporter, service) {
  return new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: service }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  });
}

/** Export one span through @p exporter; resolves {result, traceId}. */
async function sendSpan(exporter, service, name) {
  const results = [];
  const wrapped = {
    export: (spans, done) => exporter.export(spans, (r) => { results.push(r); done(r); }),
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
  const p = provider(wrapped, service);
  const span = p.getTracer('tls-it').startSpan(name, { kind: SpanKind.SERVER });
  const traceId = span.spanContext().traceId;
  span.end();
  // A failed export also rejects the flush; the result says what happened.
  await p.forceFlush().catch(() => {});
  await p.shutdown().catch(() => {});
  return { result: results[0], traceId };
}

async function waitForTrace(traceId) {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await httpsGet(ports.query, `/api/traces/${traceId}`);
    if (r.status === 200 && r.json?.data?.length === 1) {
      return r.json.data[0];
    }
    if (Date.now() > deadline) {
      throw new Error(`trace ${traceId} not readable over https: ${r.status} ${r.text.slice(0, 200)}`);
    }
    await new Promise((res) => setTimeout(res, 100));
  }
}

test('the JS SDK exports over https (OTLP/HTTP) and the span is read back over https', async () => {
  const exporter = new HttpExporter({
    url: `https://localhost:${th.port}/v1/traces`,
    httpAgentOptions: { ca: pem['ca.pem'] },
  });
  const { result, traceId } = await sendSpan(exporter, 'tls-http-svc', 'GET /secure');
  assert.equal(result.code, ExportResultCode.SUCCESS, String(result.error));
  const t = await waitForTrace(traceId);
  assert.equal(t.spans.length, 1);
  assert.equal(t.spans[0].operationName, 'GET /secure');
  const proc = t.processes[t.spans[0].processID];
  assert.equal(proc.serviceName, 'tls-http-svc');
});

test('the JS SDK exports over gRPC with TLS and a client certificate (mTLS)', async () => {
  const exporter = new GrpcExporter({
    url: `https://localhost:${ports.grpc}`,
    credentials: grpc.credentials.createSsl(pem['ca.pem'], pem['client.key'], pem['client.pem']),
  });
  const { result, traceId } = await sendSpan(exporter, 'tls-grpc-svc', 'rpc Secure');
  assert.equal(result.code, ExportResultCode.SUCCESS, String(result.error));
  const t = await waitForTrace(traceId);
  assert.equal(t.spans[0].operationName, 'rpc Secure');
});

test('gRPC refuses a client without a certificate, and a plaintext client', async () => {
  const noCert = new GrpcExporter({
    url: `https://localhost:${ports.grpc}`,
    credentials: grpc.credentials.createSsl(pem['ca.pem']),
    timeoutMillis: 3000,
  });
  const r1 = await sendSpan(noCert, 'tls-grpc-nocert', 'refused');
  assert.equal(r1.result.code, ExportResultCode.FAILED);
  const plain = new GrpcExporter({
    url: `http://localhost:${ports.grpc}`,
    credentials: grpc.credentials.createInsecure(),
    timeoutMillis: 3000,
  });
  const r2 = await sendSpan(plain, 'tls-grpc-plain', 'refused');
  assert.equal(r2.result.code, ExportResultCode.FAILED);
  assert.match(String(r1.result.error), /certificate required/);
  // A raw TLS client without a certificate: TLS 1.3 finishes the client's side of the
  // handshake, then the server's alert ends the connection.
  const raw = await tlsOutcome(ports.grpc, { ALPNProtocols: ['h2'] });
  assert.match(String(raw.error), /certificate required/);
  // With the certificate and ALPN h2 the handshake completes.
  const ok = await peer(ports.grpc, { ALPNProtocols: ['h2'], key: pem['client.key'], cert: pem['client.pem'] });
  assert.equal(ok.alpn, 'h2');
  assert.equal(ok.fingerprint, fingerprint(pem['server.pem']));
});

test('nothing answers plaintext: every TLS port fails a plaintext request and closes', async () => {
  for (const [name, port] of [['otlp/http', th.port], ['query', ports.query],
    ['health', ports.health], ['metrics', ports.metrics]]) {
    const r = await plainGet(port, name === 'metrics' ? '/metrics' : '/');
    assert.ok(r.error, `${name}: a plaintext request was answered with ${r.status}`);
    const raw = await rawPlaintext(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok(!raw.toString('latin1').includes('HTTP/1.1'), `${name} answered plaintext`);
  }
  const raw = await rawPlaintext(ports.grpc,
    Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00', 'latin1'));
  // At most a TLS alert record (content type 21), never an HTTP/2 SETTINGS frame.
  assert.ok(raw.length === 0 || raw[0] === 21, `gRPC answered plaintext: ${raw.toString('hex')}`);
});

test('health and metrics answer over https; HTTP/2 is negotiated by ALPN', async () => {
  const h = await httpsGet(ports.health, '/');
  assert.equal(h.status, 200);
  assert.equal(h.json.status, 'Server available');
  const m = await httpsGet(ports.metrics, '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.text, /otelcol_receiver_accepted_spans/);
  const p = await peer(ports.query, { ALPNProtocols: ['h2', 'http/1.1'] });
  assert.equal(p.alpn, 'h2');
  const p1 = await peer(th.port, { ALPNProtocols: ['http/1.1'] });
  assert.equal(p1.alpn, 'http/1.1');
  // An OTLP/JSON export over HTTP/2 with TLS.
  const session = http2.connect(`https://localhost:${th.port}`, { ca: pem['ca.pem'] });
  try {
    const status = await new Promise((resolve, reject) => {
      const req = session.request({ ':method': 'POST', ':path': '/v1/traces',
        'content-type': 'application/json' });
      req.on('response', (hdrs) => resolve(hdrs[':status']));
      req.on('error', reject);
      req.end(JSON.stringify({ resourceSpans: [] }));
    });
    assert.equal(status, 200);
  } finally {
    session.close();
  }
});

test('min_version 1.3 refuses a TLS 1.2-only client; 1.2 is the default minimum elsewhere', async () => {
  await assert.rejects(peer(ports.health, { maxVersion: 'TLSv1.2' }));
  const ok = await peer(ports.health);
  assert.equal(ok.protocol, 'TLSv1.3');
  const v12 = await peer(ports.query, { maxVersion: 'TLSv1.2' });
  assert.equal(v12.protocol, 'TLSv1.2');
  await assert.rejects(peer(ports.query, { minVersion: 'TLSv1', maxVersion: 'TLSv1.1' }));
});

test('reload_interval: a certificate replaced on disk is served without a restart', async () => {
  const before = await peer(th.port);
  assert.equal(before.fingerprint, fingerprint(pem['server.pem']));
  const pid = th.pid;
  // Replace both files atomically (write then rename), as cert-manager and certbot do.
  for (const [from, to] of [['server2.pem', 'live.pem'], ['server2.key', 'live.key']]) {
    fs.copyFileSync(file(from), file(`${to}.tmp`));
    fs.renameSync(file(`${to}.tmp`), file(to));
  }
  const want = fingerprint(pem['server2.pem']);
  const deadline = Date.now() + 5000;
  let now = before;
  while (now.fingerprint !== want && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    now = await peer(th.port);
  }
  assert.equal(now.fingerprint, want);
  assert.equal(th.pid, pid);
  assert.ok(th.alive);
  // The new certificate serves requests.
  const exporter = new HttpExporter({
    url: `https://localhost:${th.port}/v1/traces`,
    httpAgentOptions: { ca: pem['ca.pem'] },
  });
  const { result, traceId } = await sendSpan(exporter, 'tls-after-reload', 'after reload');
  assert.equal(result.code, ExportResultCode.SUCCESS, String(result.error));
  await waitForTrace(traceId);
  // A broken replacement keeps the current certificate, with a warning in the log.
  fs.writeFileSync(file('live.pem.tmp'), 'not a certificate\n');
  fs.renameSync(file('live.pem.tmp'), file('live.pem'));
  await new Promise((r) => setTimeout(r, 400));
  assert.equal((await peer(th.port)).fingerprint, want);
  assert.equal((await peer(th.port)).fingerprint, want);
  assert.match(th.stderr, /reloading TLS files failed, still serving the previous certificate/);
  assert.match(th.stderr, /no PEM certificate found/);
  // Key material never reaches the log.
  assert.ok(!th.stderr.includes('PRIVATE KEY'));
});

test('shutdown with connections idle before or inside the TLS handshake exits cleanly', async () => {
  for (const port of [th.port, ports.grpc, ports.query, ports.health, ports.metrics]) {
    for (const hello of [null, Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])]) {
      const s = net.connect({ host: '127.0.0.1', port });
      s.on('error', () => {});
      await new Promise((r) => s.once('connect', r));
      if (hello) {
        s.write(hello); // the start of a ClientHello record, never finished
      }
      lingering.push(s);
    }
  }
  // The server still serves while they hang.
  assert.equal((await httpsGet(ports.health, '/')).status, 200);
  // after() stops tracehouse and requires exit code 0.
});
