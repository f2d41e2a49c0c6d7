/**
 * Runs one handler and turns whatever happens (value, Promise, throw of any value, unserialisable
 * or oversize output) into a result outcome. Nothing a handler does can escape as an exception: a
 * swallowed failure would look like a finished job, and an exception here would leave the job
 * unanswered and its partition's commits frozen, so every path ends in COMPLETED or FAILED.
 */
import { BatonError, PayloadTooLarge, RetryLater, SerializationError } from './errors.js'
import type { JobContext } from './context.js'
import type { ResultError } from './protocol.js'
import { cutUtf8, hasLoneSurrogate, MAX_MESSAGE_BYTES, MAX_STACK_BYTES, safeString } from './_text.js'

/** A job handler: the payload is the job's `input` as plain JSON values. */
export type Handler = (payload: any, ctx: JobContext) => unknown

export type Outcome =
  | { status: 'COMPLETED', outputJson: string }
  | { status: 'FAILED', error: ResultError }

/** Never rejects. */
export async function execute (handler: Handler, payload: unknown, ctx: JobContext, maxPayloadBytes: number): Promise<Outcome> {
  let output: unknown
  try {
    output = await handler(payload, ctx)
  } catch (err: unknown) {
    return { status: 'FAILED', error: errorFor(err) }
  }
  return encodeOutput(output, maxPayloadBytes)
}

export function encodeOutput (output: unknown, maxPayloadBytes: number): Outcome {
  let json: string | undefined
  try {
    json = JSON.stringify(output === undefined ? null : output)
  } catch (err: unknown) {
    return failed(new SerializationError(`handler output is not JSON-serialisable: ${reason(err)}`))
  }
  // JSON.stringify returns undefined for a bare function or symbol instead of throwing.
  if (json === undefined) {
    return failed(new SerializationError(`handler output is not JSON-serialisable: ${typeof output}`))
  }
  if (hasLoneSurrogate(json)) {
    return failed(new SerializationError('handler output is not valid UTF-8: a string holds a lone surrogate'))
  }
  const size = Buffer.byteLength(json, 'utf8')
  if (size > maxPayloadBytes) {
    return failed(new PayloadTooLarge(`handler output is ${size} bytes, over the limit of ${maxPayloadBytes} bytes`))
  }
  return { status: 'COMPLETED', outputJson: json }
}

/**
 * Maps a thrown value to the wire's error object (protocol/README.md, error.type table), message
 * and stack cut to their bounds. Every property read is guarded: getters may throw too.
 */
export function errorFor (err: unknown): ResultError {
  const isError = attempt(() => err instanceof Error, false)
  if (!isError) return bounded('Error', safeString(err), null, true)
  const e = err as Error
  const name = attempt(() => e.name, '')
  const message = attempt(() => e.message, '')
  const stack = attempt(() => e.stack, undefined)
  const retryable = attempt(() => (err instanceof BatonError ? err.retryable : true), true)
  const error = bounded(typeof name === 'string' && name !== '' ? name : 'Error', safeString(message),
    stack === undefined || stack === null ? null : safeString(stack), retryable)
  const delayMs = attempt(() => (err instanceof RetryLater ? err.delayMs : undefined), undefined)
  if (delayMs !== undefined) error.retry_after_ms = delayMs
  return error
}

/** The result error of a job whose handler the worker stopped waiting for. */
export function timeoutError (lateMs: number, graceMs: number): ResultError {
  return bounded('Timeout', `handler still running ${lateMs} ms after the job's deadline (grace ${graceMs} ms); abandoned`, null, true)
}

function bounded (type: string, message: string, stacktrace: string | null, retryable: boolean): ResultError {
  return {
    type: cutUtf8(type, 200),
    message: cutUtf8(message, MAX_MESSAGE_BYTES),
    stacktrace: stacktrace === null ? null : cutUtf8(stacktrace, MAX_STACK_BYTES),
    retryable: typeof retryable === 'boolean' ? retryable : true
  }
}

function attempt<T> (read: () => T, fallback: T): T {
  try {
    return read()
  } catch {
    return fallback
  }
}

function reason (err: unknown): string {
  return attempt(() => (err instanceof Error ? safeString(err.message) : safeString(err)), '<unprintable error>')
}

function failed (err: BatonError): Outcome {
  return { status: 'FAILED', error: errorFor(err) }
}
