/**
 * Error classes shared by name with the Python and Java SDKs. A class name is what travels as
 * `error.type` in a result, and the orchestrator's `non_retryable_errors` matches on it, so the
 * names are part of the wire contract: do not rename them.
 */
import type { Run } from './api.js'

export type ErrorCode =
  | 'BATON_NON_RETRYABLE'
  | 'BATON_RETRY_LATER'
  | 'BATON_PAYLOAD_TOO_LARGE'
  | 'BATON_SERIALIZATION'
  | 'BATON_CONFIG'
  | 'BATON_IDLE_TIMEOUT'
  | 'BATON_WORKER_STATE'
  | 'BATON_API'
  | 'BATON_API_CONNECTION'
  | 'BATON_WAIT_TIMEOUT'

export class BatonError extends Error {
  /** Whether the orchestrator may retry the step after this error. */
  readonly retryable: boolean

  constructor (readonly code: ErrorCode, message: string, options?: { cause?: unknown, retryable?: boolean }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause })
    // new.target.name, not a literal: subclasses get their own simple class name as error.type.
    this.name = new.target.name
    this.retryable = options?.retryable ?? true
  }
}

/** Thrown by a handler: the step is dead-lettered at once, without retries. */
export class NonRetryableError extends BatonError {
  constructor (message: string, options?: { cause?: unknown }) {
    super('BATON_NON_RETRYABLE', message, { ...options, retryable: false })
  }
}

/** Thrown by a handler: retry this step after `delayMs` instead of the policy's interval. */
export class RetryLater extends BatonError {
  readonly delayMs: number

  constructor (delayMs: number, message?: string) {
    if (!Number.isFinite(delayMs) || delayMs < 0) {
      throw new RangeError('RetryLater delay must be a finite number of milliseconds >= 0')
    }
    const delay = Math.round(delayMs)
    super('BATON_RETRY_LATER', message ?? `retry in ${delay} ms`, { retryable: true })
    this.delayMs = delay
  }
}

/** Raised by the SDK when a handler's encoded output is larger than `maxPayloadBytes`. */
export class PayloadTooLarge extends BatonError {
  constructor (message: string) {
    super('BATON_PAYLOAD_TOO_LARGE', message, { retryable: false })
  }
}

/** Raised by the SDK when a handler's return value cannot be encoded as JSON. */
export class SerializationError extends BatonError {
  constructor (message: string, options?: { cause?: unknown }) {
    super('BATON_SERIALIZATION', message, { ...options, retryable: false })
  }
}

/** Invalid worker options, environment variables or registrations. */
export class ConfigError extends BatonError {
  constructor (message: string) {
    super('BATON_CONFIG', message, { retryable: false })
  }
}

/** `runUntilIdle()` gave up: the worker was not idle within `timeoutMs` (it is stopped anyway). */
export class IdleTimeout extends BatonError {
  constructor (message: string) {
    super('BATON_IDLE_TIMEOUT', message, { retryable: false })
  }
}

/** A call the worker's state does not allow: `register()` after `start()`, `start()` twice. */
export class WorkerStateError extends BatonError {
  constructor (message: string) {
    super('BATON_WORKER_STATE', message, { retryable: false })
  }
}

/**
 * The Baton HTTP API answered with an error (or, for `ApiConnectionError` and `WaitTimeout`, did not
 * answer in time). `status` is the HTTP status (`undefined` without an answer), `errorCode` the error
 * envelope's `error.code` (e.g. `run_not_found`; `undefined` when the body was not an envelope),
 * `message` the envelope's message (else the HTTP reason: never a response body or a stack trace),
 * `details` the envelope's `details`. `code` stays the SDK's stable code, like every `BatonError`.
 */
export class ApiError extends BatonError {
  readonly status: number | undefined
  readonly errorCode: string | undefined
  readonly details: unknown

  constructor (message: string, options: ApiErrorOptions = {}, code: ErrorCode = 'BATON_API') {
    super(code, message, options.cause === undefined ? undefined : { cause: options.cause })
    this.status = options.status
    this.errorCode = options.errorCode
    this.details = options.details
  }
}

export interface ApiErrorOptions {
  status?: number
  errorCode?: string
  details?: unknown
  cause?: unknown
}

/** HTTP 400: the body is not valid JSON. */
export class BadRequest extends ApiError {}

/** HTTP 401: the server requires a bearer token (`apiKey` / `BATON_API_KEY`) and got none. */
export class Unauthorized extends ApiError {}

/** HTTP 403: the bearer token is not one of the server's `BATON_API_KEYS`. */
export class Forbidden extends ApiError {}

/** HTTP 404: unknown workflow, run or dead letter. */
export class NotFound extends ApiError {}

/** HTTP 409: an Idempotency-Key reused with another body, or a run / dead letter in the wrong state. */
export class Conflict extends ApiError {}

/** HTTP 413: the body, or the first job it would create, is over the server's payload limit. */
export class RequestTooLarge extends ApiError {}

/** HTTP 422: an invalid definition, input, id, wait or cursor; `details` says what. */
export class ValidationFailed extends ApiError {}

/** HTTP 503: a service the server needs is down, or it holds too many waiters; retry later. */
export class ServiceUnavailable extends ApiError {}

/** No answer from the API: unreachable, connection refused or dropped, no reply in time, client closed. */
export class ApiConnectionError extends ApiError {
  constructor (message: string, options?: { cause?: unknown }) {
    super(message, options, 'BATON_API_CONNECTION')
  }
}

/** `waitForRun()` ran out of time; `run` is the run as it stood at the last answer. */
export class WaitTimeout extends ApiError {
  constructor (message: string, readonly run: Run) {
    super(message, {}, 'BATON_WAIT_TIMEOUT')
  }
}
