/**
 * Runs one handler and turns whatever happens (value, Promise, throw, unserialisable or oversize
 * output) into a result outcome. Nothing a handler does can escape as an exception: a swallowed
 * failure would look like a finished job, so every path ends in COMPLETED or FAILED.
 */
import { BatonError, PayloadTooLarge, RetryLater, SerializationError } from './errors.js'
import type { JobContext } from './context.js'
import type { ResultError } from './protocol.js'

/** A job handler: the payload is the job's `input` as plain JSON values. */
export type Handler = (payload: any, ctx: JobContext) => unknown

export type Outcome =
  | { status: 'COMPLETED', outputJson: string }
  | { status: 'FAILED', error: ResultError }

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
    const reason = err instanceof Error ? err.message : String(err)
    return failed(new SerializationError(`handler output is not JSON-serialisable: ${reason}`, { cause: err }))
  }
  // JSON.stringify returns undefined for a bare function or symbol instead of throwing.
  if (json === undefined) {
    return failed(new SerializationError(`handler output is not JSON-serialisable: ${typeof output}`))
  }
  const size = Buffer.byteLength(json, 'utf8')
  if (size > maxPayloadBytes) {
    return failed(new PayloadTooLarge(`handler output is ${size} bytes, over the limit of ${maxPayloadBytes} bytes`))
  }
  return { status: 'COMPLETED', outputJson: json }
}

/** Maps a thrown value to the wire's error object (protocol/README.md, error.type table). */
export function errorFor (err: unknown): ResultError {
  if (!(err instanceof Error)) {
    return { type: 'Error', message: String(err), stacktrace: null, retryable: true }
  }
  const error: ResultError = {
    type: err.name !== '' ? err.name : 'Error',
    message: err.message,
    stacktrace: err.stack ?? null,
    retryable: err instanceof BatonError ? err.retryable : true
  }
  if (err instanceof RetryLater) error.retry_after_ms = err.delayMs
  return error
}

function failed (err: BatonError): Outcome {
  return { status: 'FAILED', error: errorFor(err) }
}
