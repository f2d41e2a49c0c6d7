/**
 * R2.8 tracing: one `baton.handle <action>` CONSUMER span around each handler, child of the job's
 * `traceparent` (the orchestrator's dispatch span), whose context goes back on the result. Uses
 * the OpenTelemetry API only: with no SDK registered every call is a no-op, attributes are not
 * even built, yet a valid incoming context is still forwarded so a user's own spans join the trace.
 */
import {
  context,
  createTraceState,
  isSpanContextValid,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Context,
  type Span,
  type SpanContext,
  type Tracer,
  type TracerProvider
} from '@opentelemetry/api'
import { ConfigError } from './errors.js'
import type { Outcome } from './execute.js'
import type { LogFields } from './logger.js'
import type { Job } from './protocol.js'
import { VERSION } from './version.js'
import { header, type KafkaMessage } from './_kafka.js'

// W3C Trace Context level 1: version 00 is exactly this; a future version may append `-fields`.
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/
const MAX_TRACESTATE_BYTES = 512

/** The tracer the worker uses: the option given, else the global provider's (resolved lazily by the API). */
export function resolveTracer (options: { tracer?: Tracer, tracerProvider?: TracerProvider }): Tracer {
  const { tracer, tracerProvider } = options
  if (tracer !== undefined) {
    if (typeof (tracer as Partial<Tracer> | null)?.startSpan !== 'function') throw new ConfigError('tracer must be an OpenTelemetry Tracer (with startSpan)')
    return tracer
  }
  if (tracerProvider === undefined) return trace.getTracer('baton', VERSION)
  if (typeof (tracerProvider as Partial<TracerProvider> | null)?.getTracer !== 'function') throw new ConfigError('tracerProvider must be an OpenTelemetry TracerProvider (with getTracer)')
  return tracerProvider.getTracer('baton', VERSION)
}

/** The remote span context in a `traceparent` (+ `tracestate`) header pair; undefined when malformed. */
export function parseTraceparent (traceparent: Buffer | undefined, tracestate: Buffer | undefined): SpanContext | undefined {
  // Decoded as latin1 so any byte stays one char: non-ASCII, NUL or a non-UTF-8 byte fails the pattern.
  if (traceparent === undefined || traceparent.length > 512) return undefined
  const match = TRACEPARENT.exec(traceparent.toString('latin1'))
  if (match === null) return undefined
  const [, version, traceId, spanId, flags, rest] = match as unknown as [string, string, string, string, string, string | undefined]
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined
  const spanContext: SpanContext = { traceId, spanId, traceFlags: parseInt(flags, 16) & 1, isRemote: true }
  if (!isSpanContextValid(spanContext)) return undefined // all-zero trace or span id
  const state = tracestate === undefined || tracestate.length > MAX_TRACESTATE_BYTES ? '' : asciiOrEmpty(tracestate)
  // createTraceState drops members that are not valid `key=value` list entries.
  if (state !== '') spanContext.traceState = createTraceState(state)
  return spanContext
}

/** `traceparent`/`tracestate` header values of a span context, or none for an invalid one. */
export function traceHeaders (spanContext: SpanContext): { traceparent?: string, tracestate?: string } {
  if (!isSpanContextValid(spanContext)) return {}
  const traceparent = `00-${spanContext.traceId}-${spanContext.spanId}-0${(spanContext.traceFlags & 1).toString(16)}`
  const tracestate = spanContext.traceState?.serialize()
  return tracestate === undefined || tracestate === '' ? { traceparent } : { traceparent, tracestate }
}

/** One job's handle span, and what the runner needs from it. */
export class HandleSpan {
  readonly span: Span
  /** Active context for the handler: a user's spans made inside it nest under the handle span. */
  readonly context: Context
  /** Headers for the job's results (also heartbeats): the handle span's context. */
  readonly headers: { traceparent?: string, tracestate?: string }
  /** `trace_id`/`span_id` for the SDK's log records about this job; empty when there is no trace. */
  readonly logFields: LogFields

  constructor (tracer: Tracer, job: Job, message: KafkaMessage, workerId: string) {
    const remote = parseTraceparent(header(message, 'traceparent'), header(message, 'tracestate'))
    // The root context, not the active one: whatever the consume loop runs in is not this job's parent.
    const parent = remote === undefined ? ROOT_CONTEXT : trace.setSpanContext(ROOT_CONTEXT, remote)
    this.span = tracer.startSpan(`baton.handle ${job.action}`, { kind: SpanKind.CONSUMER }, parent)
    if (this.span.isRecording()) this.span.setAttributes(handleAttributes(job, message.topic, workerId))
    this.context = trace.setSpan(parent, this.span)
    const spanContext = this.span.spanContext()
    this.headers = traceHeaders(spanContext)
    this.logFields = isSpanContextValid(spanContext) ? { trace_id: spanContext.traceId, span_id: spanContext.spanId } : {}
  }

  /** Runs `fn` with the handle span active (needs the application's context manager to cross awaits). */
  run<T>(fn: () => T): T {
    return context.with(this.context, fn)
  }

  /** Records how the job ended and ends the span; undefined: abandoned at shutdown, left to another worker. */
  end (outcome: Outcome | undefined): void {
    const span = this.span
    if (span.isRecording()) record(span, outcome)
    span.end()
  }
}

function handleAttributes (job: Job, topic: string, workerId: string): Attributes {
  const attributes: Attributes = {
    'baton.run_id': job.run_id,
    'baton.step': job.step,
    'baton.attempt': job.attempt,
    'baton.action': job.action,
    'baton.job_id': job.job_id,
    'messaging.system': 'kafka',
    'messaging.destination.name': topic,
    'baton.worker_id': workerId,
    'baton.sdk.language': 'node',
    'baton.sdk.version': VERSION
  }
  if (job.workflow_id !== '') attributes['baton.workflow_id'] = job.workflow_id
  return attributes
}

function record (span: Span, outcome: Outcome | undefined): void {
  if (outcome === undefined) {
    span.setAttribute('baton.outcome', 'abandoned')
    return
  }
  if (outcome.status === 'COMPLETED') return
  const error = outcome.error
  // errorFor sets retry_after_ms for a RetryLater only: a planned retry, not an error.
  if (error.retry_after_ms !== undefined) {
    span.setAttribute('baton.outcome', 'retry_later')
    return
  }
  // The already sanitised, bounded wire error rather than the thrown value, whose getters may throw.
  span.recordException({ name: error.type, message: error.message, ...(error.stacktrace === null ? {} : { stack: error.stacktrace }) })
  span.setAttribute('baton.error_type', error.type)
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message })
}

function asciiOrEmpty (bytes: Buffer): string {
  for (const b of bytes) if (b < 0x20 || b > 0x7e) return ''
  return bytes.toString('latin1')
}
