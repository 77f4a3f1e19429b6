// Hostile and unusual HTTP against the real binary: wrong media types, methods and paths,
// oversized bodies and a gzip bomb, undecodable protobuf and JSON, wrong id lengths, a
// 5000-deep value, invalid UTF-8 and NUL bytes, compressed bodies, keep-alive, HTTP/2 with
// prior knowledge, CORS, and stalled clients. Error bodies must be google.rpc.Status in the
// request's encoding. Afterwards the process must still serve, exit 0 on SIGTERM, have
// written exactly the accepted spans, and its memory must not have grown past a bound.
//
// Statuses follow the contract: shared/reference/otlp.md §2 and otelcol-config.md §4.2.

import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import zlib from 'node:zlib';

import { flattenSpans, Tracehouse } from './lib/harness.mjs';
import * as pb from './lib/pb.mjs';

const MAX_BODY = 256 * 1024; // room for the 5000-deep JSON value (~140 KB)
// RSS may grow this much over the whole run (allocator caches, h2o pools) and no more.
const RSS_BOUND_KIB = 16 * 1024;

let th;
let rssBefore;
const accepted = new Set(); // span names the receiver answered 200 for
const refused = new Set(); // span names it refused

before(async () => {
  th = await Tracehouse.start({
    http: {
      max_request_body_size: MAX_BODY,
      read_timeout: '2s',
      read_header_timeout: '2s',
      cors: { allowed_origins: ['https://app.example.com'], max_age: 600 },
    },
  });
  // Warm up (first requests allocate pools), then take the baseline.
  for (let i = 0; i < 20; i++) {
    await post(validPb(`warmup-${i}`));
  }
  rssBefore = th.rssKiB();
});

after(() => {
  th?.kill();
});

const TRACE = pb.hex('5b8efff798038103d269b633813fc60c');
const SPAN = pb.hex('eee19b7ec3c1b174');

/** A valid protobuf request with one span named @p name. */
function validPb(name, extra = {}) {
  accepted.add(name);
  return pb.request([pb.span({ traceId: TRACE, spanId: SPAN, name, ...extra })]);
}

/** The same as OTLP/JSON. */
function validJson(name) {
  accepted.add(name);
  return JSON.stringify({
    resourceSpans: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: 'bad-input' } }] },
      scopeSpans: [{
        scope: { name: 'th-it' },
        spans: [{ traceId: TRACE.toString('hex'), spanId: SPAN.toString('hex'), name, kind: 2,
          startTimeUnixNano: '1544712660000000000', endTimeUnixNano: '1544712661000000000' }],
      }],
    }],
  });
}

/**
 * One HTTP/1.1 request.
 * @returns {Promise<{status:number, headers:object, body:Buffer}>}
 */
function request({ method = 'POST', path = '/v1/traces', headers = {}, body, agent = false }) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: th.port, method, path, headers, agent },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers,
          body: Buffer.concat(chunks), reusedSocket: req.reusedSocket }));
        res.on('error', reject);
      });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('request timed out')));
    if (body !== undefined) {
      req.end(body);
    } else {
      req.end();
    }
  });
}

const post = (body, headers = {}, extra = {}) => request({
  body,
  headers: { 'Content-Type': 'application/x-protobuf', ...headers },
  ...extra,
});

const postJson = (body, headers = {}) => request({
  body,
  headers: { 'Content-Type': 'application/json', ...headers },
});

/** The response must be a google.rpc.Status in the request's encoding. */
function assertStatusBody(res, json, what) {
  const ct = res.headers['content-type'] ?? '';
  if (json) {
    assert.match(ct, /^application\/json/, `${what}: content-type ${ct}`);
    const st = JSON.parse(res.body.toString('utf8'));
    assert.equal(typeof st, 'object', `${what}: body is a JSON object`);
    assert.equal(typeof (st.message ?? ''), 'string');
    if (st.code !== undefined) {
      assert.equal(typeof st.code, 'number', `${what}: code is a number`);
    }
    assert.ok((st.message ?? '').length > 0, `${what}: a message explains the refusal`);
    return st;
  }
  assert.match(ct, /^application\/x-protobuf/, `${what}: content-type ${ct}`);
  const st = pb.decodeStatus(res.body);
  assert.ok(st.message.length > 0, `${what}: a message explains the refusal`);
  return st;
}

describe('routing and media types', () => {
  test('unsupported Content-Type is 415', async () => {
    const res = await post(validPb('never-415'), { 'Content-Type': 'text/plain' });
    refused.add('never-415');
    accepted.delete('never-415');
    assert.equal(res.status, 415);
    assert.match(res.body.toString(), /application\/x-protobuf/);
  });

  test('missing Content-Type is 415', async () => {
    const res = await request({ body: Buffer.from('x') });
    assert.equal(res.status, 415);
  });

  test('GET is 405', async () => {
    const res = await request({ method: 'GET' });
    assert.equal(res.status, 405);
  });

  test('PUT is 405', async () => {
    const res = await request({ method: 'PUT', body: 'x', headers: { 'Content-Type': 'application/json' } });
    assert.equal(res.status, 405);
  });

  test('an unknown path is 404', async () => {
    const res = await post(validPb('never-404'), {}, { path: '/v1/nothing' });
    refused.add('never-404');
    accepted.delete('never-404');
    assert.equal(res.status, 404);
    const res2 = await post(validPb('never-404b'), {}, { path: '/v1/traces/extra' });
    refused.add('never-404b');
    accepted.delete('never-404b');
    assert.equal(res2.status, 404);
  });

  test('media type parameters are ignored (application/json; charset=utf-8)', async () => {
    const res = await postJson(validJson('json-charset'), { 'Content-Type': 'application/json; charset=utf-8' });
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'], /^application\/json/);
  });
});

describe('size limits', () => {
  test('a body over max_request_body_size is 413 with a Status', async () => {
    const body = Buffer.concat([validPb('never-413'), Buffer.alloc(MAX_BODY)]);
    refused.add('never-413');
    accepted.delete('never-413');
    const res = await post(body);
    assert.equal(res.status, 413);
    assertStatusBody(res, false, '413');
  });

  test('a gzip bomb (small on the wire, huge inflated) is 413', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 });
    assert.ok(bomb.length < MAX_BODY, 'the bomb itself fits the limit');
    const res = await post(bomb, { 'Content-Encoding': 'gzip' });
    assert.equal(res.status, 413);
    assertStatusBody(res, false, 'gzip bomb');
  });

  test('a JSON body over the limit is 413 with a JSON Status', async () => {
    const res = await postJson(' '.repeat(MAX_BODY + 10) + validJson('never-413j'));
    refused.add('never-413j');
    accepted.delete('never-413j');
    assert.equal(res.status, 413);
    assertStatusBody(res, true, '413 json');
  });
});

describe('undecodable and invalid data is 400', () => {
  test('garbage protobuf', async () => {
    const res = await post(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x99]));
    assert.equal(res.status, 400);
    const st = assertStatusBody(res, false, 'garbage');
    assert.equal(st.code, 3, 'INVALID_ARGUMENT');
  });

  test('a truncated protobuf', async () => {
    const full = validPb('never-truncated');
    refused.add('never-truncated');
    accepted.delete('never-truncated');
    const res = await post(full.subarray(0, full.length - 5));
    assert.equal(res.status, 400);
    assertStatusBody(res, false, 'truncated');
  });

  test('bad JSON', async () => {
    const res = await postJson('{"resourceSpans": [');
    assert.equal(res.status, 400);
    assertStatusBody(res, true, 'bad json');
  });

  test('JSON that is not an object', async () => {
    const res = await postJson('[1,2,3]');
    assert.equal(res.status, 400);
    assertStatusBody(res, true, 'json array');
  });

  test('a span id of 3 bytes', async () => {
    const body = pb.request([pb.span({ traceId: TRACE, spanId: Buffer.from([1, 2, 3]), name: 'never-short-id' })]);
    refused.add('never-short-id');
    const res = await post(body);
    assert.equal(res.status, 400);
    const st = assertStatusBody(res, false, 'short span id');
    assert.match(st.message, /span_?id|spanId/i);
  });

  test('a trace id of 17 bytes', async () => {
    const body = pb.request([pb.span({ traceId: Buffer.alloc(17, 1), spanId: SPAN, name: 'never-long-tid' })]);
    refused.add('never-long-tid');
    const res = await post(body);
    assert.equal(res.status, 400);
    assertStatusBody(res, false, 'long trace id');
  });

  test('a JSON trace id of the wrong length', async () => {
    const doc = JSON.parse(validJson('never-json-id'));
    accepted.delete('never-json-id');
    refused.add('never-json-id');
    doc.resourceSpans[0].scopeSpans[0].spans[0].traceId = 'abcd';
    const res = await postJson(JSON.stringify(doc));
    assert.equal(res.status, 400);
    assertStatusBody(res, true, 'json short id');
  });

  test('an AnyValue nested 5000 deep (protobuf) is refused, not a crash', async () => {
    const deep = pb.deepAnyValue(5000);
    const body = pb.request([pb.span({ traceId: TRACE, spanId: SPAN, name: 'never-deep',
      attributes: [pb.keyValue('deep', deep)] })]);
    refused.add('never-deep');
    const res = await post(body);
    assert.equal(res.status, 400);
    assertStatusBody(res, false, 'deep protobuf');
  });

  test('an AnyValue nested 5000 deep (JSON) is refused, not a crash', async () => {
    const doc = JSON.parse(validJson('never-deep-json'));
    accepted.delete('never-deep-json');
    refused.add('never-deep-json');
    let v = '{"stringValue":"x"}';
    for (let i = 0; i < 5000; i++) {
      v = `{"arrayValue":{"values":[${v}]}}`;
    }
    doc.resourceSpans[0].scopeSpans[0].spans[0].attributes = [{ key: 'deep', value: '@@' }];
    const text = JSON.stringify(doc).replace('"@@"', v);
    const res = await postJson(text);
    assert.equal(res.status, 400);
    assertStatusBody(res, true, 'deep json');
  });

  test('invalid UTF-8 in a string', async () => {
    const body = pb.request([pb.span({ traceId: TRACE, spanId: SPAN,
      name: Buffer.from([0x6e, 0x65, 0x76, 0x65, 0x72, 0xff, 0xfe, 0xc3]) })]);
    const res = await post(body);
    assert.equal(res.status, 400);
    assertStatusBody(res, false, 'invalid utf-8');
  });

  test('a NUL byte in a string', async () => {
    const body = pb.request([pb.span({ traceId: TRACE, spanId: SPAN,
      name: Buffer.from('never-nul\u0000hidden', 'utf8') })]);
    refused.add('never-nul');
    const res = await post(body);
    assert.equal(res.status, 400);
    assertStatusBody(res, false, 'NUL');
  });

  test('a NUL escape in a JSON string', async () => {
    const text = validJson('never-nul-json').replace('never-nul-json', 'never-nul-json\\u0000x');
    accepted.delete('never-nul-json');
    refused.add('never-nul-json');
    const res = await postJson(text);
    assert.equal(res.status, 400);
    assertStatusBody(res, true, 'NUL json');
  });

  test('a corrupt gzip body', async () => {
    const gz = zlib.gzipSync(validPb('never-corrupt-gz'));
    refused.add('never-corrupt-gz');
    accepted.delete('never-corrupt-gz');
    gz[gz.length - 6] ^= 0xff; // break the CRC
    const res = await post(gz, { 'Content-Encoding': 'gzip' });
    assert.equal(res.status, 400);
    assertStatusBody(res, false, 'corrupt gzip');
  });

  test('an unknown Content-Encoding', async () => {
    const res = await post(validPb('never-br'), { 'Content-Encoding': 'br' });
    refused.add('never-br');
    accepted.delete('never-br');
    assert.equal(res.status, 400);
  });
});

describe('accepted encodings and transports', () => {
  test('protobuf: 200 with an empty ExportTraceServiceResponse', async () => {
    const res = await post(validPb('plain-pb'));
    assert.equal(res.status, 200);
    assert.match(res.headers['content-type'], /^application\/x-protobuf/);
    // An empty message, or an empty partial_success (0a 00) as the Collector writes.
    assert.ok(res.body.length === 0 || res.body.equals(Buffer.from([0x0a, 0x00])),
      `unexpected body ${res.body.toString('hex')}`);
  });

  test('JSON: 200 with {} or an empty partialSuccess', async () => {
    const res = await postJson(validJson('plain-json'));
    assert.equal(res.status, 200);
    const body = JSON.parse(res.body.toString());
    assert.ok(Object.keys(body).length === 0 || Object.keys(body.partialSuccess ?? {}).length === 0);
  });

  test('gzip body', async () => {
    const res = await post(zlib.gzipSync(validPb('gzip-pb')), { 'Content-Encoding': 'gzip' });
    assert.equal(res.status, 200);
  });

  test('deflate (zlib) body', async () => {
    const res = await post(zlib.deflateSync(validPb('deflate-pb')), { 'Content-Encoding': 'deflate' });
    assert.equal(res.status, 200);
  });

  test('gzip JSON body', async () => {
    const res = await postJson(zlib.gzipSync(validJson('gzip-json')), { 'Content-Encoding': 'gzip' });
    assert.equal(res.status, 200);
  });

  // zstd: node 20's zlib has no zstd; the C unit tests of the receiver cover it.

  test('keep-alive: several requests over one connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    let reused = 0;
    for (let i = 0; i < 5; i++) {
      const res = await post(validPb(`keepalive-${i}`), {}, { agent });
      assert.equal(res.status, 200);
      reused += res.reusedSocket ? 1 : 0;
    }
    agent.destroy();
    assert.equal(reused, 4, 'requests 2..5 reused the first connection');
  });

  test('HTTP/2 with prior knowledge (h2c)', async () => {
    const client = http2.connect(`http://127.0.0.1:${th.port}`);
    try {
      for (const name of ['h2-a', 'h2-b']) {
        const res = await new Promise((resolve, reject) => {
          const req = client.request({ ':method': 'POST', ':path': '/v1/traces',
            'content-type': 'application/x-protobuf' });
          const chunks = [];
          let headers;
          req.on('response', (h) => { headers = h; });
          req.on('data', (c) => chunks.push(c));
          req.on('end', () => resolve({ status: headers[':status'], headers, body: Buffer.concat(chunks) }));
          req.on('error', reject);
          req.end(validPb(name));
        });
        assert.equal(res.status, 200);
      }
      // And a refusal over HTTP/2 carries a Status too.
      const bad = await new Promise((resolve, reject) => {
        const req = client.request({ ':method': 'POST', ':path': '/v1/traces',
          'content-type': 'application/x-protobuf' });
        const chunks = [];
        let headers;
        req.on('response', (h) => { headers = h; });
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => resolve({ status: headers[':status'], headers, body: Buffer.concat(chunks) }));
        req.on('error', reject);
        req.end(Buffer.from([0xff, 0xff, 0xff]));
      });
      assert.equal(bad.status, 400);
      assertStatusBody(bad, false, 'h2 400');
    } finally {
      client.close();
    }
  });

  test('CORS preflight from an allowed origin', async () => {
    const res = await request({ method: 'OPTIONS', headers: {
      'Origin': 'https://app.example.com',
      'Access-Control-Request-Method': 'POST',
      'Access-Control-Request-Headers': 'content-type',
    } });
    assert.ok(res.status === 204 || res.status === 200, `preflight status ${res.status}`);
    assert.equal(res.headers['access-control-allow-origin'], 'https://app.example.com');
    assert.match(res.headers['access-control-allow-methods'] ?? '', /POST/);
    assert.match((res.headers['access-control-allow-headers'] ?? '').toLowerCase(), /content-type/);
  });

  test('CORS preflight from another origin gets no allow-origin', async () => {
    const res = await request({ method: 'OPTIONS', headers: {
      'Origin': 'https://evil.example.net',
      'Access-Control-Request-Method': 'POST',
    } });
    assert.equal(res.headers['access-control-allow-origin'], undefined);
  });

  test('a cross-origin POST from an allowed origin carries the CORS header', async () => {
    const res = await postJson(validJson('cors-post'), { Origin: 'https://app.example.com' });
    assert.equal(res.status, 200);
    assert.equal(res.headers['access-control-allow-origin'], 'https://app.example.com');
  });
});

describe('stalled clients', () => {
  test('a client that stalls in the headers or the body is cut off; others are served', async (t) => {
    const stalled = [];
    const openStalled = (text) => new Promise((resolve) => {
      const s = net.connect({ host: '127.0.0.1', port: th.port }, () => {
        s.write(text);
        resolve(s);
      });
      s.on('error', () => {});
      const t0 = Date.now();
      s.closedAfter = new Promise((r) => s.on('close', () => r(Date.now() - t0)));
      stalled.push(s);
    });
    // Headers never finished; body shorter than Content-Length.
    await openStalled('POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n');
    await openStalled('POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-protobuf\r\n' +
      'Content-Length: 1000\r\n\r\n0123456789');

    // Meanwhile another client keeps being served, promptly.
    for (let i = 0; i < 10; i++) {
      const t0 = Date.now();
      const res = await post(validPb(`while-stalled-${i}`));
      assert.equal(res.status, 200);
      assert.ok(Date.now() - t0 < 1000, 'served without waiting for the stalled clients');
      await new Promise((r) => setTimeout(r, 100));
    }
    // read_timeout / read_header_timeout are 2s: both are closed by the server well
    // before 15s (the test gives up there).
    const timeout = new Promise((r) => setTimeout(r, 15_000, -1));
    for (const s of stalled) {
      const ms = await Promise.race([s.closedAfter, timeout]);
      s.destroy();
      assert.ok(ms >= 0, 'the server closed the stalled connection');
      t.diagnostic(`stalled connection closed by the server after ${ms} ms`);
    }
  });
});

describe('afterwards', () => {
  test('still up, memory bounded, clean exit, exactly the accepted spans written', async (t) => {
    assert.ok(th.alive, `the process died:\n${th.stderr}`);
    const res = await post(validPb('final'));
    assert.equal(res.status, 200);
    const rssAfter = th.rssKiB();
    t.diagnostic(`VmRSS ${rssBefore} KiB after warm-up, ${rssAfter} KiB at the end`);
    assert.ok(rssAfter - rssBefore < RSS_BOUND_KIB,
      `RSS grew from ${rssBefore} KiB to ${rssAfter} KiB (bound ${RSS_BOUND_KIB} KiB)`);
    await th.stopClean();
    const names = flattenSpans(await th.readOutput()).map((g) => g.span.name);
    const written = new Set(names);
    for (const n of accepted) {
      assert.ok(written.has(n), `accepted span ${n} is missing from the output`);
    }
    for (const n of refused) {
      assert.ok(!written.has(n), `refused span ${n} was written`);
    }
    assert.ok(!names.some((n) => n.startsWith('never')), 'no refused request leaked into the output');
    assert.equal(names.length, accepted.size, 'each accepted span written once');
    await th.cleanup();
  });
});
