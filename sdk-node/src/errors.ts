/**
 * Error classes shared by name with the Python and Java SDKs. A class name is what travels as
 * `error.type` in a result, and the orchestrator's `non_retryable_errors` matches on it, so the
 * names are part of the wire contract: do not rename them.
 */

export type ErrorCode =
  | 'BATON_NON_RETRYABLE'
  | 'BATON_RETRY_LATER'
  | 'BATON_PAYLOAD_TOO_LARGE'
  | 'BATON_SERIALIZATION'
  | 'BATON_CONFIG'
  | 'BATON_IDLE_TIMEOUT'
  | 'BATON_WORKER_STATE'

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
