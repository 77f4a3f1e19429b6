// Authentication end to end with the real binary: bearertokenauth (a token file) on the
// OTLP/HTTP and OTLP/gRPC receivers, basicauth (htpasswd file plus inline) on the query API.
// The official JS SDK without a token gets 401 / UNAUTHENTICATED and nothing is stored
// (checked through the query API with credentials); with the token (an HTTP header, gRPC
// metadata) its spans are stored. The query API answers 401 with a Basic challenge on every
// route (API, UI page, SPA route, static file) without valid credentials, and 200 with them.
// Replacing the token file while the process runs takes effect. A second process's
// otlp_grpc and otlp_http exporters authenticate with a client bearertokenauth. The output
// never contains a token or a password.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';

import { Metadata } from '@grpc/grpc-js';
import { SpanKind } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor }
  from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

import { freePorts, Tracehouse } from './lib/harness.mjs';

const EXPORT_PATH = '/opentelemetry.proto.collector.trace.v1.TraceService/Export';
const TOKEN_1 = 'tok-Alpha-7f3c9e1d2b';
const TOKEN_2 = 'tok-Bravo-55aa01cc9e';
const TOKEN_3 = 'tok-Charlie-0d0e0f1a2b';
const TOKEN_4 = 'tok-Delta-9e8d7c6b5a41';
// htpasswd -nbB -C 4 viewer 'Viewer-pw-8812' (in the file) and
// htpasswd -nbm admin 'Admin-pw-4471' (inline)
const VIEWER = ['viewer', 'Viewer-pw-8812'];
const ADMIN = ['admin', 'Admin-pw-4471'];
const SECRETS = [TOKEN_1, TOKEN_2, TOKEN_3, TOKEN_4, VIEWER[1], ADMIN[1]];

let th;
let dir;
let tokenPath;
let grpcPort;
let qport;
let clientOut; // a second process whose exporters authenticate to the first
let rotatingClient; // one whose client token comes from a file that is replaced

function basic([u, p]) {
  return `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`;
}

/** GET from the query API; resolves {status, headers, text, json}. */
function get(p, authorization) {
  return new Promise((resolve, reject) => {
    const headers = authorization ? { authorization } : {};
    http.get({ host: '127.0.0.1', port: qport, path: p, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { text += d; });
      res.on('end', () => {
        let json = null;
        try { json = JSON.parse(text); } catch { /* not JSON */ }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    }).on('error', reject);
  });
}

/** POST to the OTLP/HTTP receiver; resolves {status, headers, body}. */
function post(body, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: th.port, path: '/v1/traces', method: 'POST',
      headers: { 'content-length': body.length, ...headers },
    }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
        body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Spans of one trace of a service, made by the SDK. */
function makeSpans(service) {
  const memory = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: service }),
    spanProcessors: [new SimpleSpanProcessor(memory)],
  });
  const tracer = provider.getTracer('auth-test');
  const root = tracer.startSpan('GET /auth', { kind: SpanKind.SERVER });
  root.end();
  const spans = memory.getFinishedSpans();
  return { spans, traceId: root.spanContext().traceId };
}

function exportWith(exporter, spans) {
  return new Promise((resolve) => exporter.export(spans, resolve));
}

async function sendHttp(service, headers) {
  const { spans, traceId } = makeSpans(service);
  const exporter = new ProtoExporter({ url: `${th.baseUrl}/v1/traces`, headers });
  const r = await exportWith(exporter, spans);
  await exporter.shutdown();
  return { r, traceId };
}

async function sendGrpc(service, authorization) {
  const { spans, traceId } = makeSpans(service);
  const metadata = new Metadata();
  if (authorization) {
    metadata.set('authorization', authorization);
  }
  const exporter = new GrpcExporter({ url: `http://127.0.0.1:${grpcPort}`, metadata });
  const r = await exportWith(exporter, spans);
  await exporter.shutdown();
  return { r, traceId };
}

/** Wait until the query API (with credentials) has the trace. */
async function waitForTrace(traceId) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await get(`/api/traces/${traceId}`, basic(VIEWER));
    if (r.status === 200) {
      return r;
    }
    assert.equal(r.status, 404, r.text);
    if (Date.now() > deadline) {
      assert.fail(`trace ${traceId} was not stored\nstderr:\n${th.stderr}`);
    }
    await new Promise((res) => setTimeout(res, 100));
  }
}

async function services() {
  const r = await get('/api/services', basic(ADMIN));
  assert.equal(r.status, 200, r.text);
  return r.json.data ?? [];
}

before(async () => {
  dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'th-auth-'));
  tokenPath = path.join(dir, 'tokens');
  await fsp.writeFile(tokenPath, `${TOKEN_1}\n${TOKEN_2}\n`);
  const htpasswd = path.join(dir, 'htpasswd');
  await fsp.writeFile(htpasswd,
    'viewer:$2y$04$j1/sgJDuGLynEYR8p3HyIeGwyBxX6Mb2gwgKJbf5M/zkrZVE.B9TS\n');
  [grpcPort, qport] = await freePorts(2);
  const yaml = `
extensions:
  bearertokenauth:
    filename: ${tokenPath}
  basicauth/query:
    htpasswd:
      file: ${htpasswd}
      inline: |
        admin:$apr1$UCmj.NW4$Mynr931Hij2Qh.f4jdY2D/
  jaeger_storage:
    backends:
      main:
        memory:
          max_traces: 1000
  jaeger_query:
    storage:
      traces: main
    http:
      endpoint: 127.0.0.1:${qport}
      auth:
        authenticator: basicauth/query
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:${grpcPort}
        auth:
          authenticator: bearertokenauth
      http:
        endpoint: 127.0.0.1:{port}
        auth:
          authenticator: bearertokenauth
exporters:
  jaeger_storage_exporter:
    trace_storage: main
service:
  extensions: [jaeger_storage, jaeger_query, bearertokenauth, basicauth/query]
  telemetry:
    logs:
      level: debug
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
`;
  th = await Tracehouse.start({ yaml });
});

after(async () => {
  clientOut?.kill();
  rotatingClient?.kill();
  if (th) {
    await th.stopClean();
  }
  if (dir) {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('OTLP/HTTP: the SDK without a token gets 401 and nothing is stored', async () => {
  const { r, traceId } = await sendHttp('no-token-http', {});
  assert.equal(r.code, ExportResultCode.FAILED);
  assert.match(String(r.error?.message ?? r.error), /401|Unauthorized/i);
  const wrong = await sendHttp('wrong-token-http', { Authorization: `Bearer ${TOKEN_3}` });
  assert.equal(wrong.r.code, ExportResultCode.FAILED);
  // raw: the challenge and a google.rpc.Status in the request's encoding
  const raw = await post(Buffer.from('{}'), { 'content-type': 'application/json' });
  assert.equal(raw.status, 401);
  assert.equal(raw.headers['www-authenticate'], 'Bearer realm="tracehouse"');
  assert.equal(raw.headers['content-type'], 'application/json');
  const status = JSON.parse(raw.body.toString());
  assert.equal(status.code, 16);
  assert.equal(status.message, 'missing or empty authorization header');
  const badScheme = await post(Buffer.from('{}'), {
    'content-type': 'application/json', authorization: `Basic ${TOKEN_1}` });
  assert.equal(badScheme.status, 401);
  // an unknown media type still gets 401 (text), not a hint about the path or the type
  const text = await post(Buffer.from('x'), { 'content-type': 'text/plain' });
  assert.equal(text.status, 401);
  assert.equal(text.headers['www-authenticate'], 'Bearer realm="tracehouse"');
  // the receiver stayed healthy, and nothing reached the store
  const ok = await sendHttp('with-token-http-probe', { Authorization: `Bearer ${TOKEN_1}` });
  assert.equal(ok.r.code, ExportResultCode.SUCCESS, ok.r.error?.message);
  await waitForTrace(ok.traceId);
  const r404 = await get(`/api/traces/${traceId}`, basic(VIEWER));
  assert.equal(r404.status, 404);
  const names = await services();
  assert.ok(!names.includes('no-token-http'), names.join(','));
  assert.ok(!names.includes('wrong-token-http'), names.join(','));
});

test('OTLP/HTTP: with the token (any scheme case) the spans are stored', async () => {
  const { r, traceId } = await sendHttp('with-token-http', { Authorization: `bearer ${TOKEN_2}` });
  assert.equal(r.code, ExportResultCode.SUCCESS, r.error?.message);
  const t = await waitForTrace(traceId);
  assert.equal(t.json.data[0].traceID, traceId);
  assert.ok((await services()).includes('with-token-http'));
});

test('OTLP/gRPC: UNAUTHENTICATED without the token, stored with it', async () => {
  const none = await sendGrpc('no-token-grpc', null);
  assert.equal(none.r.code, ExportResultCode.FAILED);
  assert.match(String(none.r.error?.message ?? none.r.error), /UNAUTHENTICATED|16/);
  const wrong = await sendGrpc('wrong-token-grpc', `Bearer ${TOKEN_3}`);
  assert.equal(wrong.r.code, ExportResultCode.FAILED);

  // raw HTTP/2: a trailers-only answer with grpc-status 16 and a message
  const client = http2.connect(`http://127.0.0.1:${grpcPort}`);
  const headers = await new Promise((resolve, reject) => {
    const req = client.request({ ':method': 'POST', ':path': EXPORT_PATH,
      'content-type': 'application/grpc', te: 'trailers' });
    req.on('response', (h) => resolve(h));
    req.on('error', reject);
    req.end(Buffer.from([0, 0, 0, 0, 0]));
  });
  client.close();
  assert.equal(headers[':status'], 200);
  assert.equal(headers['grpc-status'], '16');
  assert.match(headers['grpc-message'], /authorization/);

  const ok = await sendGrpc('with-token-grpc', `Bearer ${TOKEN_1}`);
  assert.equal(ok.r.code, ExportResultCode.SUCCESS, ok.r.error?.message);
  await waitForTrace(ok.traceId);
  const names = await services();
  assert.ok(names.includes('with-token-grpc'));
  assert.ok(!names.includes('no-token-grpc'));
  assert.ok(!names.includes('wrong-token-grpc'));
  const r404 = await get(`/api/traces/${none.traceId}`, basic(VIEWER));
  assert.equal(r404.status, 404);
});

test('query API: 401 with a Basic challenge on every route without credentials', async () => {
  for (const p of ['/api/services', '/api/traces?service=x', '/api/v3/services', '/',
    '/search', '/trace/0123', '/static/nope.js', '/favicon.ico']) {
    for (const auth of [undefined, basic([VIEWER[0], 'wrong']), basic(['nobody', VIEWER[1]]),
      'Basic !!!', `Bearer ${TOKEN_1}`]) {
      const r = await get(p, auth);
      assert.equal(r.status, 401, `${p} with ${auth}`);
      assert.equal(r.headers['www-authenticate'],
        'Basic realm="tracehouse", charset="UTF-8"', p);
      assert.ok(!r.text.includes('services'), p);
    }
  }
  // with credentials, from the file (bcrypt) and inline ($apr1$); the scheme in any case
  for (const who of [VIEWER, ADMIN]) {
    const r = await get('/api/services', basic(who));
    assert.equal(r.status, 200, r.text);
    const page = await get('/', basic(who).replace('Basic', 'basic'));
    assert.equal(page.status, 200);
    assert.match(page.headers['content-type'], /text\/html/);
    const spa = await get('/search', basic(who));
    assert.equal(spa.status, 200);
  }
});

test('a token file replaced while running takes effect', async () => {
  await fsp.writeFile(`${tokenPath}.new`, `${TOKEN_3}\n`);
  await fsp.rename(`${tokenPath}.new`, tokenPath);
  // the file is looked at again at most once a second, on a request
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await post(Buffer.from('{}'), { 'content-type': 'application/json',
      authorization: `Bearer ${TOKEN_3}` });
    if (r.status === 200) {
      break;
    }
    assert.equal(r.status, 401);
    assert.ok(Date.now() < deadline, 'the new token was never accepted');
    await new Promise((res) => setTimeout(res, 200));
  }
  const old = await post(Buffer.from('{}'), { 'content-type': 'application/json',
    authorization: `Bearer ${TOKEN_1}` });
  assert.equal(old.status, 401);
  const { r, traceId } = await sendGrpc('after-rotation-grpc', `Bearer ${TOKEN_3}`);
  assert.equal(r.code, ExportResultCode.SUCCESS, r.error?.message);
  await waitForTrace(traceId);
  const stale = await sendGrpc('stale-token-grpc', `Bearer ${TOKEN_2}`);
  assert.equal(stale.r.code, ExportResultCode.FAILED);
  await th.waitLog(/reloaded the token file .*: 1 token/);
});

/**
 * A second Tracehouse whose otlp_grpc and otlp_http exporters authenticate to the first with
 * a client bearertokenauth (@p tokenKey: its `token: ...` or `filename: ...`): what arrives on
 * {port} leaves through otlp_grpc, what arrives on @p httpB through otlp_http.
 */
function clientYaml(tokenKey, httpB) {
  return `
extensions:
  bearertokenauth/client:
    ${tokenKey}
receivers:
  otlp/a:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
  otlp/b:
    protocols:
      http:
        endpoint: 127.0.0.1:${httpB}
exporters:
  otlp_grpc:
    endpoint: 127.0.0.1:${grpcPort}
    tls: {insecure: true}
    auth: {authenticator: bearertokenauth/client}
  otlp_http:
    endpoint: http://127.0.0.1:${th.port}
    auth: {authenticator: bearertokenauth/client}
service:
  extensions: [bearertokenauth/client]
  telemetry:
    metrics:
      level: none
  pipelines:
    traces/grpc:
      receivers: [otlp/a]
      exporters: [otlp_grpc]
    traces/http:
      receivers: [otlp/b]
      exporters: [otlp_http]
`;
}

test('exporters send the token of a client bearertokenauth (otlp_grpc, otlp_http)', async () => {
  const [httpB] = await freePorts(1);
  const yaml = clientYaml(`token: ${TOKEN_3}`, httpB);
  clientOut = await Tracehouse.start({ yaml });
  for (const [service, port] of [['via-exporter-grpc', clientOut.port], ['via-exporter-http', httpB]]) {
    const { spans, traceId } = makeSpans(service);
    const exporter = new ProtoExporter({ url: `http://127.0.0.1:${port}/v1/traces` });
    const r = await exportWith(exporter, spans);
    await exporter.shutdown();
    assert.equal(r.code, ExportResultCode.SUCCESS, r.error?.message);
    await waitForTrace(traceId);
  }
  await clientOut.stopClean();
  // the log's messages and levels only: a timestamp can contain "401" (…22.401Z)
  const said = clientOut.stderr.split('\n').filter(Boolean)
    .map((l) => { try { const j = JSON.parse(l); return `${j.level} ${j.msg}`; } catch { return l; } })
    .join('\n');
  assert.doesNotMatch(said, /\b401\b|UNAUTHENTICATED|error/);
});

/** Replace a file the way secret managers do: write a new one, rename it over the old. */
async function replaceFile(p, text) {
  await fsp.writeFile(`${p}.new`, text);
  await fsp.rename(`${p}.new`, p);
}

/** Poll the OTLP/HTTP receiver with a bearer token until it answers @p status. */
async function untilTokenGets(token, status) {
  const deadline = Date.now() + 5000;
  for (;;) {
    const r = await post(Buffer.from('{}'), { 'content-type': 'application/json',
      authorization: `Bearer ${token}` });
    if (r.status === status) {
      return;
    }
    assert.ok(Date.now() < deadline, `the receiver never answered ${status} to that token`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

test('exporters send a rotated client token file from their next request on (otlp_grpc, otlp_http)',
  async () => {
    const clientTokenPath = path.join(dir, 'client-token');
    await fsp.writeFile(clientTokenPath, `${TOKEN_3}\n`);
    const [httpB] = await freePorts(1);
    const yaml = clientYaml(`filename: ${clientTokenPath}`, httpB);
    rotatingClient = await Tracehouse.start({ yaml });
    const viaBoth = async (tag) => {
      for (const [kind, port] of [['grpc', rotatingClient.port], ['http', httpB]]) {
        const { spans, traceId } = makeSpans(`rotating-${kind}-${tag}`);
        const exporter = new ProtoExporter({ url: `http://127.0.0.1:${port}/v1/traces` });
        const r = await exportWith(exporter, spans);
        await exporter.shutdown();
        assert.equal(r.code, ExportResultCode.SUCCESS, r.error?.message);
        await waitForTrace(traceId);
      }
    };
    await viaBoth('before');
    // The change-over: the server takes both tokens, then the client's file gets the new one.
    await replaceFile(tokenPath, `${TOKEN_3}\n${TOKEN_4}\n`);
    await untilTokenGets(TOKEN_4, 200);
    await replaceFile(clientTokenPath, `${TOKEN_4}\n`);
    // the client looks at its file again at most once a second, before a request
    await new Promise((res) => setTimeout(res, 1500));
    await viaBoth('during');
    // The server drops the old token: only exporters that switched still get in.
    await replaceFile(tokenPath, `${TOKEN_4}\n`);
    await untilTokenGets(TOKEN_3, 401);
    await viaBoth('after');
    await rotatingClient.stopClean();
    const said = rotatingClient.stderr.split('\n').filter(Boolean)
      .map((l) => { try { const j = JSON.parse(l); return `${j.level} ${j.msg}`; } catch { return l; } })
      .join('\n');
    assert.doesNotMatch(said, /\b401\b|UNAUTHENTICATED|error/);
    assert.match(said, /reloaded the token file .*client-token: 1 token/);
  });

test('the output never contains a token or a password', async () => {
  const out = th.stdout + th.stderr + (clientOut ? clientOut.stdout + clientOut.stderr : '') +
    (rotatingClient ? rotatingClient.stdout + rotatingClient.stderr : '');
  assert.ok(out.length > 0);
  for (const s of SECRETS) {
    assert.ok(!out.includes(s), `the output contains the secret ${s.slice(0, 5)}…`);
    assert.ok(!out.includes(Buffer.from(s).toString('base64')), 'base64 of a secret');
  }
  for (const who of [VIEWER, ADMIN]) {
    assert.ok(!out.includes(basic(who).slice(6)), 'Basic credentials');
  }
  // the refusals were logged (rate-limited), without the credentials
  assert.match(out, /answered 401|answered UNAUTHENTICATED/);
});
