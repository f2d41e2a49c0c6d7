/**
 * What a handler learns about the job it runs, and the two ways it talks back while running:
 * `heartbeat()` (I am alive, extend my deadline) and `signal` (you are being abandoned).
 */
import type { Job } from './protocol.js'
import { childLogger, type Logger } from './logger.js'

export interface JobContext {
  /** One attempt of one step; a redelivery of the same attempt carries the same id. */
  readonly jobId: string
  readonly runId: string
  readonly workflowId: string
  readonly step: string
  readonly action: string
  /** 1-based attempt number; `attempt === maxAttempts` is the last try. */
  readonly attempt: number
  readonly maxAttempts: number
  /** `<runId>:<step>`: stable across retries, for side effects that must happen once. */
  readonly idempotencyKey: string
  /** Start-to-close deadline of this attempt; moved forward by `heartbeat()` when the job has a timeout. */
  readonly deadline: Date
  /**
   * Aborted when the worker gives up on this job: reason a `TimeoutError` DOMException once the
   * deadline plus the grace passed, an `AbortError` one when a shutdown's drain timed out. The job
   * is answered (or left to another worker) without this handler: stop work soon.
   */
  readonly signal: AbortSignal
  readonly logger: Logger
  /** Non-blocking: publishes a HEARTBEAT result so the orchestrator extends this attempt's deadline. */
  heartbeat: () => void
}

/** Internal: the context plus the controls the worker keeps for itself. */
export class JobContextImpl implements JobContext {
  readonly jobId: string
  readonly runId: string
  readonly workflowId: string
  readonly step: string
  readonly action: string
  readonly attempt: number
  readonly maxAttempts: number
  readonly idempotencyKey: string
  readonly logger: Logger
  readonly #abort = new AbortController()
  readonly #timeoutMs: number | undefined
  readonly #publishHeartbeat: () => void
  #deadline: Date

  constructor (job: Job, logger: Logger, publishHeartbeat: () => void) {
    this.jobId = job.job_id
    this.runId = job.run_id
    this.workflowId = job.workflow_id
    this.step = job.step
    this.action = job.action
    this.attempt = job.attempt
    this.maxAttempts = job.max_attempts
    this.idempotencyKey = `${job.run_id}:${job.step}`
    this.#deadline = new Date(job.deadline)
    this.#timeoutMs = job.timeout_ms
    this.#publishHeartbeat = publishHeartbeat
    this.logger = childLogger(logger, { job_id: job.job_id, action: job.action })
    this.heartbeat = this.heartbeat.bind(this)
  }

  get deadline (): Date {
    return this.#deadline
  }

  get signal (): AbortSignal {
    return this.#abort.signal
  }

  heartbeat (): void {
    // An abandoned job is answered already: its deadline no longer matters, and a HEARTBEAT would
    // only tell the orchestrator about an attempt it has closed.
    if (this.#abort.signal.aborted) return
    if (this.#timeoutMs !== undefined) this.#deadline = new Date(Date.now() + this.#timeoutMs)
    this.#publishHeartbeat()
  }

  /** Fired when the worker stops waiting for this handler. */
  abandon (message: string, name: 'TimeoutError' | 'AbortError'): void {
    this.#abort.abort(new DOMException(message, name))
  }
}
