// Sending spans through the official OpenTelemetry JS SDK, shared by the integration tests.

import assert from 'node:assert/strict';

import { ExportResultCode } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

/**
 * Send @p n spans of service @p service through the SDK's batch processor and @p exporter
 * (any SDK trace exporter: OTLP/HTTP proto or JSON, OTLP/gRPC); throws unless every export
 * the SDK made succeeded.
 */
export async function sdkExport(exporter, service, n = 5) {
  const results = [];
  const capture = {
    export(spans, done) {
      exporter.export(spans, (r) => { results.push(r); done(r); });
    },
    shutdown: () => exporter.shutdown(),
    forceFlush: () => exporter.forceFlush?.() ?? Promise.resolve(),
  };
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': service }),
    spanProcessors: [new BatchSpanProcessor(capture)],
  });
  const tracer = provider.getTracer('tracehouse-it');
  for (let i = 0; i < n; i++) {
    tracer.startSpan(`op-${i}`).end();
  }
  await provider.forceFlush();
  await provider.shutdown();
  assert.ok(results.length > 0, 'the SDK exported something');
  for (const r of results) {
    assert.equal(r.code, ExportResultCode.SUCCESS, `${service}: export failed: ${r.error}`);
  }
}
