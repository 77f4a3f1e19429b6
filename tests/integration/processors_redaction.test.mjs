// The redaction processor end to end: an app instrumented with the official OpenTelemetry JS
// SDK puts credit card numbers, tokens, passwords and e-mail addresses in span, resource,
// event and link attributes (and a raw OTLP/JSON request adds scope attributes, which the JS
// SDK cannot set); the real tracehouse binary runs them through `redaction` into the file
// exporter, and the file must never contain them. A second run hashes with HMAC-SHA256 and
// checks the digests against node's crypto, and that the key never reaches the logs.

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { test } from 'node:test';

import { SpanKind } from '@opentelemetry/api';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';

import { flattenSpans, Tracehouse } from './lib/harness.mjs';

const VISA = '4111111111111111';
const MASTERCARD = '5500000000000004';
const EMAIL = 'alice@example.com';
const EMAIL2 = 'bob.smith@example.org';
const PASSWORD = 'hunter2-correct-horse';
const TOKEN = 'eyJhbGciOiJIUzI1NiJ9.c2VjcmV0LXBheWxvYWQ.sig-abc123';
const SECRETS = [VISA, MASTERCARD, EMAIL, EMAIL2, PASSWORD, TOKEN];

function config(processor) {
  return `
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
processors:
${processor}
exporters:
  file:
    path: {out}
    flush_interval: 100ms
service:
  telemetry:
    logs:
      level: debug
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      processors: [redaction]
      exporters: [file]
`;
}

const MASKING = config(`  redaction:
    allow_all_keys: true
    ignored_keys: [service.name]
    blocked_key_patterns: ['(?i)(password|token|secret)']
    blocked_values:
      - '4[0-9]{12}(?:[0-9]{3})?'
      - '5[1-5][0-9]{14}'
      - '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}'
    summary: debug`);

/** Send spans full of secrets with the SDK, and one raw OTLP/JSON request with scope
 *  attributes. */
async function sendSecrets(th) {
  const exporter = new ProtoExporter({ url: `${th.baseUrl}/v1/traces` });
  const results = [];
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      [ATTR_SERVICE_NAME]: 'checkout',
      'owner.email': EMAIL,
      'deploy.token': TOKEN,
      'team': 'payments',
    }),
    spanProcessors: [new SimpleSpanProcessor({
      export: (spans, done) => exporter.export(spans, (r) => { results.push(r); done(r); }),
      shutdown: () => exporter.shutdown(),
    })],
  });
  const tracer = provider.getTracer('checkout-lib', '1.0.0');
  const other = tracer.startSpan('enqueue', { kind: SpanKind.PRODUCER });
  other.end();
  const span = tracer.startSpan('POST /pay', {
    kind: SpanKind.SERVER,
    attributes: {
      'card.number': VISA,
      'note': `paid with ${MASTERCARD} by ${EMAIL}`,
      'user.password': PASSWORD,
      'http.request.header.authorization_token': `Bearer ${TOKEN}`,
      'http.route': '/pay',
      'amount': 42,
    },
    links: [{ context: other.spanContext(), attributes: { 'link.owner': EMAIL2, 'link.n': 1 } }],
  });
  span.addEvent('login', { 'db.password': PASSWORD, 'user': EMAIL2, 'card': VISA });
  span.end();
  await provider.forceFlush();
  await provider.shutdown();
  assert.ok(results.length >= 1);
  for (const r of results) {
    assert.equal(r.code, ExportResultCode.SUCCESS, `export failed: ${r.error?.message}\n${th.stderr}`);
  }

  const body = {
    resourceSpans: [{
      resource: { attributes: [{ key: 'service.name', value: { stringValue: 'raw' } }] },
      scopeSpans: [{
        scope: {
          name: 'raw-scope',
          attributes: [
            { key: 'scope.secret_token', value: { stringValue: TOKEN } },
            { key: 'scope.card', value: { stringValue: `card ${VISA}` } },
          ],
        },
        spans: [{
          traceId: '5b8efff798038103d269b633813fc60c',
          spanId: 'eee19b7ec3c1b174',
          name: 'raw',
          kind: 1,
          startTimeUnixNano: '1700000000000000000',
          endTimeUnixNano: '1700000000000000100',
          attributes: [{ key: 'contact', value: { stringValue: `mail ${EMAIL}` } }],
        }],
      }],
    }],
  };
  const res = await fetch(`${th.baseUrl}/v1/traces`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  assert.equal(res.status, 200, await res.text());
}

/** The attributes of an OTLP/JSON list as a plain object of their values. */
function attrs(list) {
  const out = {};
  for (const kv of list ?? []) {
    const v = kv.value ?? {};
    out[kv.key] = v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v);
  }
  return out;
}

test('redaction masks card numbers, tokens, passwords and e-mails in every attribute list',
  async () => {
    const th = await Tracehouse.start({ yaml: MASKING });
    try {
      await sendSecrets(th);
      await th.stopClean();
      const { readFile } = await import('node:fs/promises');
      const text = await readFile(th.outPath, 'utf8');
      for (const secret of SECRETS) {
        assert.ok(!text.includes(secret), `the output contains ${secret}`);
      }
      const spans = flattenSpans(await th.readOutput());
      const pay = spans.find((s) => s.span.name === 'POST /pay');
      assert.ok(pay, 'the span went through');
      const sa = attrs(pay.span.attributes);
      assert.equal(sa['card.number'], '****');
      assert.equal(sa.note, 'paid with **** by ****');
      assert.equal(sa['user.password'], '****');
      assert.equal(sa['http.request.header.authorization_token'], '****');
      assert.equal(sa['http.route'], '/pay');
      assert.equal(sa.amount, 42);
      assert.equal(sa['redaction.masked.keys'],
        'card.number,http.request.header.authorization_token,note,user.password');
      assert.equal(sa['redaction.masked.count'], 4);

      const ra = attrs(pay.resource.attributes);
      assert.equal(ra['owner.email'], '****');
      assert.equal(ra['deploy.token'], '****');
      assert.equal(ra.team, 'payments');
      assert.equal(ra['service.name'], 'checkout');
      assert.equal(ra['redaction.ignored.count'], 1);
      assert.equal(ra['redaction.masked.count'], 2);

      const ea = attrs(pay.span.events[0].attributes);
      assert.deepEqual([ea['db.password'], ea.user, ea.card], ['****', '****', '****']);
      assert.equal(ea['redaction.masked.count'], 3);
      const la = attrs(pay.span.links[0].attributes);
      assert.equal(la['link.owner'], '****');
      assert.equal(la['link.n'], 1);
      assert.equal(la['redaction.masked.keys'], 'link.owner');

      const raw = spans.find((s) => s.span.name === 'raw');
      const sc = attrs(raw.scope.attributes);
      assert.equal(sc['scope.secret_token'], '****');
      assert.equal(sc['scope.card'], 'card ****');
      assert.equal(sc['redaction.masked.count'], 2);
      assert.equal(attrs(raw.span.attributes).contact, 'mail ****');
      await th.cleanup();
    } finally {
      th.kill();
    }
  });

test('hmac-sha256 replaces each match with its digest; only allowed keys survive', async () => {
  const key = 'k'.repeat(16) + crypto.randomBytes(16).toString('hex');
  const th = await Tracehouse.start({
    yaml: config(`  redaction:
    allowed_keys: [card.number, note, team, service.name, user, card]
    blocked_values:
      - '4[0-9]{12}(?:[0-9]{3})?'
      - '5[1-5][0-9]{14}'
      - '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\\.[A-Za-z]{2,}'
    hash_function: hmac-sha256
    hmac_key: \${env:TH_IT_HMAC_KEY}
    summary: info`),
    env: { TH_IT_HMAC_KEY: key },
  });
  try {
    await sendSecrets(th);
    await th.stopClean();
    const { readFile } = await import('node:fs/promises');
    const text = await readFile(th.outPath, 'utf8');
    for (const secret of SECRETS) {
      assert.ok(!text.includes(secret), `the output contains ${secret}`);
    }
    assert.ok(!th.stderr.includes(key) && !th.stdout.includes(key), 'the HMAC key was logged');
    const hmac = (s) => crypto.createHmac('sha256', key).update(s).digest('hex');
    const spans = flattenSpans(await th.readOutput());
    const pay = spans.find((s) => s.span.name === 'POST /pay');
    const sa = attrs(pay.span.attributes);
    assert.equal(sa['card.number'], hmac(VISA));
    assert.equal(sa.note, `paid with ${hmac(MASTERCARD)} by ${hmac(EMAIL)}`);
    assert.ok(!('user.password' in sa), 'a key not allowed is deleted');
    assert.ok(!('http.route' in sa));
    // not allowed: user.password, the token header, http.route, amount
    assert.equal(sa['redaction.redacted.count'], 4);
    assert.equal(sa['redaction.masked.count'], 2);
    assert.ok(!('redaction.redacted.keys' in sa), 'info lists no key names');
    const ea = attrs(pay.span.events[0].attributes);
    assert.equal(ea.card, hmac(VISA));
    assert.equal(ea.user, hmac(EMAIL2));
    assert.ok(!('db.password' in ea));
    await th.cleanup();
  } finally {
    th.kill();
  }
});

test('a regex that does not compile stops the collector, naming the list and index', async () => {
  await assert.rejects(Tracehouse.start({
    yaml: config(`  redaction:
    allow_all_keys: true
    blocked_values: ['ok', '(']`),
  }), // (the log line is JSON: the quotes arrive escaped)
  /processors::redaction: blocked_values::1: invalid regular expression \\?"\(\\?": missing closing parenthesis at offset 1/);
});
