/**
 * Runs one consumed record end to end: decode, call the handler, publish the result (or send an
 * undecodable record to the DLT), then mark the offset done so it may be committed. The offset is
 * marked only after Kafka acknowledged what this job produced: that ordering is the at-least-once
 * guarantee. Every job ends in exactly one result: the handler's outcome, a FAILED result that
 * fits when Kafka refused the first as too large, or `Timeout` when the handler outlived its
 * deadline plus the grace (the worker then stops waiting for it; see #abandon).
 */
import type { Tracer } from '@opentelemetry/api'
import type { WorkerConfig } from './config.js'
import { JobContextImpl } from './context.js'
import { errorFor, execute, timeoutError, type Handler, type Outcome } from './execute.js'
import { PayloadTooLarge } from './errors.js'
import { childLogger, type Logger } from './logger.js'
import type { OffsetTracker } from './offsets.js'
import { decodeJob, encodeResult, timestampNow, UndecodableError, type Job, type Result } from './protocol.js'
import { VERSION } from './version.js'
import { raceDeadline } from './_deadline.js'
import { dltHeaders, headersOf, salvageJobId, type KafkaMessage, type Topics } from './_kafka.js'
import type { BatchingPublisher, OutgoingMessage, SendStatus } from './_publisher.js'
import { safeString } from './_text.js'
import { HandleSpan } from './_tracing.js'

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
  /** Makes each job's `baton.handle` span (see _tracing.ts). */
  tracer: Tracer
  /** The worker's one publisher: every send goes through it (see _publisher.ts for why). */
  publisher: BatchingPublisher
  /** True once the worker closed its clients: nothing can be sent any more. */
  isStopped: () => boolean
  /** Called whenever a slot frees up, so the worker can resume fetching. */
  onIdleSlot: () => void
}

/** One job being run: the decoded job, its handle span, and the logger whose records carry the trace ids. */
interface Attempt {
  job: Job
  span: HandleSpan
  log: Logger
}

/** A concurrency slot. `held`: released when the abandoned handler settles, not when the job ends. */
interface Slot {
  release: () => void
  held: boolean
}

export class JobRunner {
  readonly report: RunReport = { completed: 0, failed: 0, deadLettered: 0 }
  readonly #deps: RunnerDeps
  /** Handlers running that the worker still waits for. */
  readonly #contexts = new Set<JobContextImpl>()
  /** Handlers abandoned after their deadline that have not settled yet. */
  readonly #stuck = new Set<JobContextImpl>()
  readonly #heartbeatsInFlight = new Set<string>()
  #slots = 0
  #unanswered = 0
  #handlersRunning = 0
  /** Abandoned handlers still running whose slot was freed (at most `maxAbandoned`). */
  #freed = 0

  constructor (deps: RunnerDeps) {
    this.#deps = deps
  }

  /** Slots taken: jobs under way plus abandoned handlers past the `maxAbandoned` cap. */
  get active (): number {
    return this.#slots
  }

  /** Jobs started whose result (or DLT record) Kafka has not acknowledged yet. */
  get unanswered (): number {
    return this.#unanswered
  }

  /** Handlers that have not settled, whether the worker still waits for them or not. */
  get handlersRunning (): number {
    return this.#handlersRunning
  }

  /** Abandoned handlers (answered `Timeout`) that are still running, freed slot or not. */
  get stuckSlots (): number {
    return this.#stuck.size
  }

  /** Sizes of the per-job bookkeeping, for the bounded-memory tests. */
  get bookkeeping (): { contexts: number, stuck: number, heartbeats: number } {
    return { contexts: this.#contexts.size, stuck: this.#stuck.size, heartbeats: this.#heartbeatsInFlight.size }
  }

  run (message: KafkaMessage): void {
    this.#slots++
    this.#unanswered++
    let released = false
    const slot: Slot = {
      held: false,
      release: () => {
        if (released) return
        released = true
        this.#slots--
        this.#deps.onIdleSlot()
      }
    }
    this.#process(message, slot)
      .catch((err: unknown) => this.#deps.logger.error('job processing failed', { error: describe(err), offset: String(message.offset) }))
      .finally(() => {
        this.#unanswered--
        if (!slot.held) slot.release()
      })
  }

  /** Shutdown timed out: tell every handler still awaited through `ctx.signal`. */
  abandonAll (reason: string): void {
    for (const ctx of this.#contexts) ctx.abandon(reason, 'AbortError')
  }

  async #process (message: KafkaMessage, slot: Slot): Promise<void> {
    let job: Job
    let handler: Handler | undefined
    try {
      job = decodeJob(message.value)
      handler = this.#deps.handlers.get(job.action)
      if (handler === undefined) throw new UndecodableError(`no handler registered for action '${job.action}'`)
    } catch (err: unknown) {
      const reason = err instanceof UndecodableError ? err.reason : safeString(err)
      if (await this.#deadLetter(message, reason) === 'sent') this.#deps.tracker.done(message.topic, message.partition, message.offset)
      return
    }
    const startedAt = timestampNow()
    const span = new HandleSpan(this.#deps.tracer, job, message, this.#deps.workerId)
    const attempt: Attempt = { job, span, log: hasKeys(span.logFields) ? childLogger(this.#deps.logger, span.logFields) : this.#deps.logger }
    let answered: Outcome | undefined
    try {
      const outcome = await this.#runHandler(attempt, handler, slot)
      // Abandoned at shutdown, or the worker closed meanwhile: left uncommitted, another worker runs it.
      if (outcome === undefined || this.#deps.isStopped()) return
      answered = await this.#answer(attempt, outcome, startedAt)
    } finally {
      span.end(answered)
    }
    if (answered === undefined) return
    this.#deps.tracker.done(message.topic, message.partition, message.offset)
    if (answered.status === 'COMPLETED') this.report.completed++
    else this.report.failed++
  }

  async #runHandler (attempt: Attempt, handler: Handler, slot: Slot): Promise<Outcome | undefined> {
    const { job, span, log } = attempt
    const ctx = new JobContextImpl(job, log, () => this.#heartbeat(attempt))
    this.#contexts.add(ctx)
    this.#handlersRunning++
    // Inside the span's context: what the handler starts (spans, awaits) inherits it.
    const running = span.run(async () => await execute(handler, job.input, ctx, this.#deps.config.maxPayloadBytes))
    void running.finally(() => { this.#handlersRunning-- })
    const race = await raceDeadline(running, ctx, this.#deps.config.deadlineGraceMs)
    this.#contexts.delete(ctx)
    if (race.kind === 'done') return race.value
    if (race.kind === 'aborted') return undefined
    this.#abandon(ctx, running, slot, race.lateMs, log)
    return { status: 'FAILED', error: timeoutError(race.lateMs, this.#deps.config.deadlineGraceMs) }
  }

  // Node cannot stop a handler: fire its signal, count it as stuck until it settles and drop what
  // it returns. Up to maxAbandoned such handlers get their slot freed, so fetching goes on; past
  // the cap the slot stays taken, which bounds how many can pile up.
  #abandon (ctx: JobContextImpl, running: Promise<Outcome>, slot: Slot, lateMs: number, log: Logger): void {
    const graceMs = this.#deps.config.deadlineGraceMs
    ctx.abandon(`job deadline passed ${lateMs} ms ago (grace ${graceMs} ms)`, 'TimeoutError')
    this.#stuck.add(ctx)
    const freed = this.#freed < this.#deps.config.maxAbandoned
    log.warn('handler outlived its deadline; answering Timeout', { job_id: ctx.jobId, late_ms: lateMs, slot_freed: freed })
    if (freed) {
      this.#freed++
      slot.release()
    } else {
      slot.held = true
    }
    void running.then(() => {
      this.#stuck.delete(ctx)
      if (freed) this.#freed--
      else slot.release()
      log.info('abandoned handler settled; its result is dropped', { job_id: ctx.jobId })
    })
  }

  /** Publishes the job's one result; returns the outcome sent once acknowledged, undefined if not sent. */
  async #answer (attempt: Attempt, outcome: Outcome, startedAt: string): Promise<Outcome | undefined> {
    const { job, log } = attempt
    const status = await this.#send(this.#resultMessage(attempt, this.#encode(attempt, outcome, startedAt)))
    if (status === 'sent') return outcome
    if (status === 'stopped') return undefined
    const error = errorFor(new PayloadTooLarge(`the ${outcome.status} result was refused by Kafka as too large for ${this.#deps.topics.results}`))
    error.stacktrace = null
    log.warn('result too large for Kafka; sending a PayloadTooLarge result instead', { job_id: job.job_id })
    const replacement: Outcome = { status: 'FAILED', error }
    const sent = await this.#send(this.#resultMessage(attempt, this.#encode(attempt, replacement, startedAt)))
    if (sent === 'tooLarge') log.error('even a minimal result is too large for the results topic; job left unanswered', { job_id: job.job_id })
    return sent === 'sent' ? replacement : undefined
  }

  #encode ({ job, log }: Attempt, outcome: Outcome, startedAt: string): string {
    const result = this.#result(job, outcome.status, startedAt)
    if (outcome.status === 'FAILED') {
      result.error = outcome.error
      log.debug('job failed', { job_id: job.job_id, type: outcome.error.type })
    }
    return encodeResult(result, outcome.status === 'COMPLETED' ? outcome.outputJson : 'null')
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

  #resultMessage ({ job, span }: Attempt, json: string): OutgoingMessage {
    return {
      topic: this.#deps.topics.results,
      key: Buffer.from(job.run_id, 'utf8'),
      value: Buffer.from(json, 'utf8'),
      // The handle span's context: the orchestrator's baton.result span is its child.
      headers: headersOf({ 'baton-job-id': job.job_id, ...span.headers })
    }
  }

  // Fire and forget (heartbeat() must not block a handler); at most one in flight per job, since
  // the orchestrator only needs to know the job is alive, not how often the handler said so.
  #heartbeat (attempt: Attempt): void {
    const job = attempt.job
    if (this.#heartbeatsInFlight.has(job.job_id) || this.#deps.isStopped()) return
    this.#heartbeatsInFlight.add(job.job_id)
    const json = encodeResult(this.#result(job, 'HEARTBEAT', null))
    this.#deps.publisher.publish(this.#resultMessage(attempt, json))
      .catch((err: unknown) => this.#deps.logger.warn('heartbeat send failed', { job_id: job.job_id, error: describe(err) }))
      .finally(() => this.#heartbeatsInFlight.delete(job.job_id))
  }

  async #deadLetter (message: KafkaMessage, reason: string): Promise<SendStatus> {
    const { config, topics, logger } = this.#deps
    const jobId = salvageJobId(message.value)
    logger.warn('undecodable job sent to the DLT', { topic: message.topic, partition: message.partition, offset: String(message.offset), reason })
    const record = { topic: topics.dlt, key: message.key, value: message.value, headers: dltHeaders(message, config.groupId, reason, jobId) }
    let status = await this.#send(record)
    if (status === 'tooLarge') {
      // The DLT topic's limit is below the job topic's: keep the headers (where it came from, why).
      logger.warn('undecodable job too large for the DLT; sending its headers without the value', { offset: String(message.offset) })
      const why = `${reason}; original value dropped: too large for ${topics.dlt}`
      const headers = dltHeaders(message, config.groupId, why, jobId)
      headers.set(Buffer.from('baton-dlt-value-dropped'), Buffer.from('too large for the dead-letter topic'))
      status = await this.#send({ ...record, value: Buffer.alloc(0), headers })
    }
    if (status === 'sent') this.report.deadLettered++
    return status
  }

  async #send (message: OutgoingMessage): Promise<SendStatus> {
    return await this.#deps.publisher.publishWithRetry(message, this.#deps.isStopped, (err, attempt) => {
      this.#deps.logger.warn('send failed; retrying', { topic: message.topic, attempt, error: describe(err) })
    })
  }
}

/** An error as one line, including the causes an AggregateError from the client carries. Never throws. */
export function describe (err: unknown): string {
  try {
    if (!(err instanceof Error)) return safeString(err)
    const inner = (err as { errors?: unknown }).errors
    const causes = Array.isArray(inner) && inner.length > 0 ? ` (${inner.map(describe).join('; ')})` : ''
    return `${err.name}: ${err.message}${causes}`
  } catch {
    return safeString(err)
  }
}

function hasKeys (fields: object): boolean {
  for (const _ in fields) return true
  return false
}
