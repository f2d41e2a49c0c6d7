// The example worker's OpenTelemetry setup (R2.8), loaded by worker.mjs only when BATON_TRACE_DIR or
// OTEL_EXPORTER_OTLP_ENDPOINT is set. The SDK library uses the OpenTelemetry API only; configuring a
// provider, a context manager and exporters is the application's job, done here.
//   BATON_TRACE_DIR              finished spans as OTLP/JSON lines in $BATON_TRACE_DIR/baton-worker-node-<pid>.jsonl
//   OTEL_EXPORTER_OTLP_ENDPOINT  the standard OTLP/HTTP exporter (it reads the OTEL_EXPORTER_OTLP_* variables)
import { appendFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { context, trace } from '@opentelemetry/api'
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base'

export const SERVICE_NAME = 'baton-worker-node'

/**
 * Registers the global tracer provider and context manager from the environment; returns
 * `{ provider, shutdown }` (shutdown flushes), or undefined when neither variable is set. The OTLP
 * exporter reads its own OTEL_EXPORTER_OTLP_* settings from process.env, as standard.
 */
export async function setupTracing (env = process.env) {
  const processors = []
  if (nonEmpty(env.BATON_TRACE_DIR)) {
    const file = join(env.BATON_TRACE_DIR, `${SERVICE_NAME}-${process.pid}.jsonl`)
    processors.push(new BatchSpanProcessor(new OtlpJsonFileExporter(file), { scheduledDelayMillis: 1000 }))
  }
  if (nonEmpty(env.OTEL_EXPORTER_OTLP_ENDPOINT)) {
    // Loaded only when used: it pulls in the HTTP transport.
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http')
    processors.push(new BatchSpanProcessor(new OTLPTraceExporter()))
  }
  if (processors.length === 0) return undefined
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ 'service.name': SERVICE_NAME }),
    spanProcessors: processors
  })
  // Without a context manager the handler's active span is lost across awaits, so a user's spans
  // would not nest under baton.handle.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  trace.setGlobalTracerProvider(provider)
  return { provider, shutdown: async () => await provider.shutdown() }
}

/**
 * Writes each export batch as one line: an OTLP/JSON ExportTraceServiceRequest shaped like the
 * OpenTelemetry Collector's file exporter (hex ids, int64 values as decimal strings, OTLP kinds).
 */
export class OtlpJsonFileExporter {
  #file
  #stopped = false

  constructor (file) {
    this.#file = file
    mkdirSync(join(file, '..'), { recursive: true })
  }

  export (spans, resultCallback) {
    if (this.#stopped) return resultCallback({ code: 1, error: new Error('exporter shut down') })
    try {
      // Synchronous: a batch is written whole, even when the process exits right after.
      appendFileSync(this.#file, JSON.stringify(toExportRequest(spans)) + '\n')
      resultCallback({ code: 0 })
    } catch (error) {
      resultCallback({ code: 1, error })
    }
  }

  async forceFlush () {}

  async shutdown () {
    this.#stopped = true
  }
}

/** ReadableSpans to one ExportTraceServiceRequest: grouped by resource, then by instrumentation scope. */
export function toExportRequest (spans) {
  const byResource = new Map()
  for (const span of spans) {
    const scopes = byResource.get(span.resource) ?? new Map()
    byResource.set(span.resource, scopes)
    const { name, version } = span.instrumentationScope
    const key = `${name}\u0000${version ?? ''}`
    if (!scopes.has(key)) scopes.set(key, { scope: version === undefined ? { name } : { name, version }, spans: [] })
    scopes.get(key).spans.push(toOtlpSpan(span))
  }
  return {
    resourceSpans: [...byResource].map(([resource, scopes]) => ({
      resource: { attributes: toAttributes(resource.attributes) },
      scopeSpans: [...scopes.values()]
    }))
  }
}

function toOtlpSpan (span) {
  const ctx = span.spanContext()
  const out = { traceId: ctx.traceId, spanId: ctx.spanId }
  const state = ctx.traceState?.serialize()
  if (state) out.traceState = state
  if (span.parentSpanContext?.spanId) out.parentSpanId = span.parentSpanContext.spanId
  Object.assign(out, {
    name: span.name,
    kind: span.kind + 1, // API SpanKind starts at INTERNAL = 0; OTLP at SPAN_KIND_INTERNAL = 1
    startTimeUnixNano: nanos(span.startTime),
    endTimeUnixNano: nanos(span.endTime),
    attributes: toAttributes(span.attributes),
    events: span.events.map((e) => ({ timeUnixNano: nanos(e.time), name: e.name, attributes: toAttributes(e.attributes ?? {}) })),
    links: span.links.map((l) => ({ traceId: l.context.traceId, spanId: l.context.spanId, attributes: toAttributes(l.attributes ?? {}) })),
    status: span.status.message ? { code: span.status.code, message: span.status.message } : { code: span.status.code }
  })
  return out
}

function toAttributes (attributes) {
  const out = []
  for (const [key, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) out.push({ key, value: anyValue(value) })
  }
  return out
}

function anyValue (value) {
  if (Array.isArray(value)) return { arrayValue: { values: value.filter((v) => v !== undefined && v !== null).map(anyValue) } }
  if (typeof value === 'boolean') return { boolValue: value }
  if (typeof value === 'number') return Number.isInteger(value) ? { intValue: String(value) } : { doubleValue: value }
  return { stringValue: String(value) }
}

/** An HrTime [seconds, nanoseconds] as a decimal string of nanoseconds (int64 in OTLP/JSON). */
function nanos ([seconds, nanoseconds]) {
  return (BigInt(seconds) * 1_000_000_000n + BigInt(nanoseconds)).toString()
}

function nonEmpty (value) {
  return typeof value === 'string' && value.trim() !== ''
}
