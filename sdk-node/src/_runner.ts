/**
 * Runs one consumed record end to end: decode, call the handler, publish the result (or send an
 * undecodable record to the DLT), then mark the offset done so it may be committed. The offset is
 * marked only after Kafka acknowledged what this job produced: that ordering is the at-least-once
 * guarantee.
 */
import type { WorkerConfig } from './config.js'
import { JobContextImpl } from './context.js'
import { execute, type Handler, type Outcome } from './execute.js'
import type { Logger } from './logger.js'
import type { OffsetTracker } from './offsets.js'
import { decodeJob, encodeResult, timestampNow, UndecodableError, type Job, type Result } from './protocol.js'
import { VERSION } from './version.js'
import { dltHeaders, header, headersOf, salvageJobId, type KafkaMessage, type Topics } from './_kafka.js'
import type { BatchingPublisher, OutgoingMessage } from './_publisher.js'

export interface RunReport {
  completed: number
  failed: number
  deadLettered: number
}

export interface RunnerDeps {
  config: WorkerConfig
  logger: Logger
  handlers: Map<string, Handler>
  topics: Topics
  tracker: OffsetTracker
  workerId: string
  /** The worker's one publisher: every send goes through it (see _publisher.ts for why). */
  publisher: BatchingPublisher
  /** True once the worker closed its clients: nothing can be sent any more. */
  isStopped: () => boolean
  /** Called whenever a job finishes, so the worker can resume fetching. */
  onIdleSlot: () => void
}

export class JobRunner {
  readonly report: RunReport = { completed: 0, failed: 0, deadLettered: 0 }
  readonly #deps: RunnerDeps
  readonly #publisher: BatchingPublisher
  readonly #contexts = new Set<JobContextImpl>()
  readonly #heartbeatsInFlight = new Set<string>()
  #active = 0

  constructor (deps: RunnerDeps) {
    this.#deps = deps
    this.#publisher = deps.publisher
  }

  get active (): number {
    return this.#active
  }

  run (message: KafkaMessage): void {
    this.#active++
    this.#process(message)
      .catch((err: unknown) => this.#deps.logger.error('job processing failed', { error: describe(err), offset: String(message.offset) }))
      .finally(() => {
        this.#active--
        this.#deps.onIdleSlot()
      })
  }

  /** Shutdown timed out: tell every running handler through `ctx.signal`. */
  abandonAll (reason: string): void {
    for (const ctx of this.#contexts) ctx.abandon(reason)
  }

  async #process (message: KafkaMessage): Promise<void> {
    const { handlers, tracker } = this.#deps
    let job: Job
    let handler: Handler | undefined
    try {
      job = decodeJob(message.value)
      handler = handlers.get(job.action)
      if (handler === undefined) throw new UndecodableError(`no handler registered for action '${job.action}'`)
    } catch (err: unknown) {
      const reason = err instanceof UndecodableError ? err.reason : String(err)
      if (await this.#deadLetter(message, reason)) tracker.done(message.topic, message.partition, message.offset)
      return
    }
    const ctx = new JobContextImpl(job, this.#deps.logger, () => this.#heartbeat(job, message))
    this.#contexts.add(ctx)
    const startedAt = timestampNow()
    let outcome: Outcome
    try {
      outcome = await execute(handler, job.input, ctx, this.#deps.config.maxPayloadBytes)
    } finally {
      this.#contexts.delete(ctx)
    }
    // An abandoned job stays uncommitted: the worker already gave up on it and another runs it.
    if (ctx.signal.aborted || this.#deps.isStopped()) return
    if (await this.#publishResult(job, message, outcome, startedAt)) {
      tracker.done(message.topic, message.partition, message.offset)
      if (outcome.status === 'COMPLETED') this.report.completed++
      else this.report.failed++
    }
  }

  async #publishResult (job: Job, message: KafkaMessage, outcome: Outcome, startedAt: string): Promise<boolean> {
    const result = this.#result(job, outcome.status, startedAt)
    if (outcome.status === 'FAILED') {
      result.error = outcome.error
      this.#deps.logger.debug('job failed', { job_id: job.job_id, type: outcome.error.type })
    }
    const json = encodeResult(result, outcome.status === 'COMPLETED' ? outcome.outputJson : 'null')
    return await this.#send(this.#resultMessage(job, message, json))
  }

  #result (job: Job, status: Result['status'], startedAt: string | null): Omit<Result, 'output'> {
    return {
      v: 1,
      job_id: job.job_id,
      run_id: job.run_id,
      step: job.step,
      attempt: job.attempt,
      status,
      error: null,
      worker: { id: this.#deps.workerId, language: 'node', sdk_version: VERSION },
      started_at: startedAt,
      finished_at: timestampNow()
    }
  }

  #resultMessage (job: Job, message: KafkaMessage, json: string): OutgoingMessage {
    const traceparent = header(message, 'traceparent')
    return {
      topic: this.#deps.topics.results,
      key: Buffer.from(job.run_id, 'utf8'),
      value: Buffer.from(json, 'utf8'),
      headers: headersOf({ 'baton-job-id': job.job_id, traceparent })
    }
  }

  // Fire and forget (heartbeat() must not block a handler); at most one in flight per job, since
  // the orchestrator only needs to know the job is alive, not how often the handler said so.
  #heartbeat (job: Job, message: KafkaMessage): void {
    if (this.#heartbeatsInFlight.has(job.job_id) || this.#deps.isStopped()) return
    this.#heartbeatsInFlight.add(job.job_id)
    const json = encodeResult(this.#result(job, 'HEARTBEAT', null))
    this.#publisher.publish(this.#resultMessage(job, message, json))
      .catch((err: unknown) => this.#deps.logger.warn('heartbeat send failed', { job_id: job.job_id, error: describe(err) }))
      .finally(() => this.#heartbeatsInFlight.delete(job.job_id))
  }

  async #deadLetter (message: KafkaMessage, reason: string): Promise<boolean> {
    const { config, topics, logger } = this.#deps
    const jobId = salvageJobId(message.value)
    logger.warn('undecodable job sent to the DLT', { topic: message.topic, partition: message.partition, offset: String(message.offset), reason })
    const sent = await this.#send({
      topic: topics.dlt,
      key: message.key,
      value: message.value,
      headers: dltHeaders(message, config.groupId, reason, jobId)
    })
    if (sent) this.report.deadLettered++
    return sent
  }

  async #send (message: OutgoingMessage): Promise<boolean> {
    return await this.#publisher.publishWithRetry(message, this.#deps.isStopped, (err, attempt) => {
      this.#deps.logger.warn('send failed; retrying', { topic: message.topic, attempt, error: describe(err) })
    })
  }
}

/** An error as one line, including the causes an AggregateError from the client carries. */
export function describe (err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const inner = (err as { errors?: unknown }).errors
  const causes = Array.isArray(inner) && inner.length > 0 ? ` (${inner.map(describe).join('; ')})` : ''
  return `${err.name}: ${err.message}${causes}`
}
