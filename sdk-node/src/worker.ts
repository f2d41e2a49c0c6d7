/**
 * The Worker: registers handlers, consumes `<prefix>jobs.<action>`, runs at most `concurrency`
 * jobs at a time and answers on `<prefix>results`. Delivery rules (docs/sdk-contract.md): a job's
 * offset is committed only after its result was acknowledged, contiguously per partition, so a
 * crash at any point re-runs jobs rather than losing them.
 */
import { randomBytes } from 'node:crypto'
import type { Tracer } from '@opentelemetry/api'
import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import { resolveConfig, validateAction, type WorkerConfig, type WorkerOptions } from './config.js'
import { ConfigError, IdleTimeout, WorkerStateError } from './errors.js'
import { defaultLogger, type Logger } from './logger.js'
import { type Handler } from './execute.js'
import { OffsetTracker, tp } from './offsets.js'
import { encodeWorkerHeartbeat, timestampNow, type WorkerHeartbeat } from './protocol.js'
import { VERSION } from './version.js'
import { createClients, endOffsets, ensureTopics, isUnreachable, openJobStream, topicsFor, type Clients, type JobStream, type KafkaMessage, type Topics } from './_kafka.js'
import { describe, JobRunner, type RunReport } from './_runner.js'
import { BatchingPublisher } from './_publisher.js'
import { installSignalHandlers } from './_signals.js'
import { resolveTracer } from './_tracing.js'

export type { RunReport } from './_runner.js'

type State = 'new' | 'starting' | 'running' | 'stopping' | 'stopped'

/** Internal (not exported by index.ts): sizes of a worker's per-job state, for the bounded-memory tests. */
// A let, assigned once by the static block below: only that block can read the private fields.
export let bookkeepingOf: (worker: Worker) => Record<string, number>

export class Worker {
  /** `node-<hostname>-<pid>-<4 hex>`: names this process in results and presence heartbeats. */
  readonly id = `node-${hostname()}-${process.pid}-${randomBytes(2).toString('hex')}`
  readonly #config: WorkerConfig
  readonly #logger: Logger
  readonly #tracer: Tracer
  readonly #topics: Topics
  readonly #handlers = new Map<string, Handler>()
  readonly #tracker = new OffsetTracker()
  #state: State = 'new'
  #clients: Clients | undefined
  #stream: JobStream | undefined
  #runner: JobRunner | undefined
  #publisher: BatchingPublisher | undefined
  #offsetsReady = false
  #startedAt = ''
  #timers: NodeJS.Timeout[] = []
  #commitInFlight: Promise<void> | undefined
  #stopping: Promise<void> | undefined
  #removeSignalHandlers: (() => void) | undefined
  /** Aborted by stop() during start-up, so waiting for Kafka ends at once. */
  readonly #startAbort = new AbortController()

  constructor (options: WorkerOptions = {}) {
    this.#logger = options.logger ?? defaultLogger()
    this.#tracer = resolveTracer(options)
    this.#config = resolveConfig(options, process.env, (message) => warnOnce(this.#logger, message))
    this.#topics = topicsFor(this.#config.topicPrefix)
  }

  /** Registers `fn` for `action`; `fn(payload, ctx)` may return a value or a Promise. */
  register (action: string, fn: Handler): this {
    validateAction(action)
    if (this.#handlers.has(action)) throw new ConfigError(`action '${action}' is already registered`)
    if (typeof fn !== 'function') throw new ConfigError(`handler for '${action}' must be callable`)
    if (this.#state !== 'new') throw new WorkerStateError('register() must be called before start()')
    this.#handlers.set(action, fn)
    return this
  }

  get actions (): string[] {
    return [...this.#handlers.keys()]
  }

  /** Slots taken: jobs whose handler or result send is under way, plus abandoned handlers past `maxAbandoned`. */
  get inFlight (): number {
    return this.#runner?.active ?? 0
  }

  /** Handlers abandoned after their deadline plus the grace (answered `Timeout`) that still run. */
  get stuckSlots (): number {
    return this.#runner?.stuckSlots ?? 0
  }

  /** Jobs started whose result Kafka has not acknowledged yet; what a drain waits for. */
  get #unanswered (): number {
    return this.#runner?.unanswered ?? 0
  }

  /**
   * Creates missing topics (waiting for Kafka while it is unreachable), joins the consumer group
   * and starts consuming. Resolves once jobs flow, or once stop() (SIGINT, SIGTERM) ended the
   * start-up early; the worker then runs until `stop()`, SIGINT or SIGTERM.
   */
  async start (): Promise<void> {
    if (this.#state !== 'new') throw new WorkerStateError('a Worker can be started only once')
    if (this.#handlers.size === 0) throw new ConfigError('register at least one action before start()')
    this.#state = 'starting'
    this.#startedAt = timestampNow()
    // Installed before connecting: a signal while Kafka is unreachable must stop the start-up.
    if (this.#config.handleSignals) {
      this.#removeSignalHandlers = installSignalHandlers({ stop: async () => await this.stop(), handlersRunning: () => this.#runner?.handlersRunning ?? 0, logger: this.#logger })
    }
    const clients = createClients(this.#config, this.id)
    this.#clients = clients
    try {
      await this.#connect(clients)
    } catch (err: unknown) {
      if (this.#state !== 'starting') return // stop() ended the start-up and closes the clients
      this.#state = 'stopped'
      await this.#close()
      throw err
    }
    if (this.#state !== 'starting') return
    this.#state = 'running'
    this.#logger.info('worker started', { worker_id: this.id, actions: this.actions, group_id: this.#config.groupId })
  }

  async #connect (clients: Clients): Promise<void> {
    for (const client of [clients.admin, clients.producer, clients.consumer]) {
      client.on('error', (err: unknown) => this.#logger.warn('kafka client error', { error: describe(err) }))
    }
    await this.#createTopics(clients)
    await clients.admin.close()
    this.#publisher = new BatchingPublisher(clients.producer)
    this.#runner = new JobRunner({
      config: this.#config,
      logger: this.#logger,
      handlers: this.#handlers,
      topics: this.#topics,
      tracker: this.#tracker,
      workerId: this.id,
      tracer: this.#tracer,
      publisher: this.#publisher,
      isStopped: () => this.#state === 'stopped',
      onIdleSlot: () => { if (this.#state === 'running') this.#stream?.resume() }
    })
    // Registered before consume(): the first join happens inside it.
    clients.consumer.on('consumer:group:join', (payload) => this.#onAssigned(payload.assignments ?? []))
    clients.consumer.on('consumer:group:rebalance', () => this.#logger.info('rebalance started'))
    await this.#openStream()
    this.#every(100, () => { void this.#commit() })
    this.#every(this.#config.presenceIntervalMs, () => { void this.#sendPresence('RUNNING') })
    void this.#sendPresence('RUNNING')
  }

  // Start order must not matter: while no broker answers, wait (bounded backoff) until one does
  // or stop() gives up. Errors from a broker that answered (bad replication factor) fail start().
  async #createTopics (clients: Clients): Promise<void> {
    const { results, dlt, workers } = this.#topics
    const topics = [...this.actions.map((a) => this.#topics.jobs(a)), results, dlt, workers]
    const settings = { partitions: this.#config.topicPartitions, replicationFactor: this.#config.topicReplicationFactor, minInsyncReplicas: this.#config.topicMinInsyncReplicas }
    for (let attempt = 1; ; attempt++) {
      try {
        return await ensureTopics(clients.admin, topics, settings, this.#logger)
      } catch (err: unknown) {
        if (this.#startAbort.signal.aborted || !isUnreachable(err)) throw err
        this.#logger.warn('waiting for Kafka', { bootstrap_servers: this.#config.bootstrapServers, attempt, error: describe(err) })
        await sleep(Math.min(5_000, 250 * 2 ** Math.min(attempt, 5)), undefined, { signal: this.#startAbort.signal })
      }
    }
  }

  async #openStream (): Promise<void> {
    const clients = this.#clients
    if (clients === undefined) return
    const stream = await openJobStream(clients.consumer, this.actions.map((a) => this.#topics.jobs(a)))
    this.#stream = stream
    stream.on('offsets', () => { this.#offsetsReady = true })
    stream.on('data', (message: KafkaMessage) => this.#onMessage(message))
    stream.on('error', (err: unknown) => { void this.#reopen(err) })
  }

  // The client destroys its stream when a fetch fails for good (broker gone too long). Keep the
  // group membership and fetch again from the committed offsets; duplicates are filtered.
  async #reopen (err: unknown): Promise<void> {
    if (this.#state !== 'running') return
    this.#logger.error('job stream failed; reopening', { error: describe(err) })
    await sleep(1000, undefined, { ref: false })
    if (this.#state !== 'running') return
    this.#openStream().catch((e: unknown) => { void this.#reopen(e) })
  }

  #onAssigned (assignments: Array<{ topic: string, partitions: number[] }>): void {
    const assigned = new Set(assignments.flatMap((a) => a.partitions.map((p) => tp(a.topic, p))))
    this.#tracker.retain(assigned)
    this.#offsetsReady = false
    this.#logger.info('partitions assigned', { count: assigned.size })
  }

  #onMessage (message: KafkaMessage): void {
    const runner = this.#runner
    // While stopping, buffered records are left uncommitted: another worker (or this one after a
    // restart) gets them again. A record of a partition revoked while it sat in the buffer likewise.
    if (runner === undefined || this.#state !== 'running') return
    if (!this.#isAssigned(message.topic, message.partition)) {
      this.#logger.debug('skipping a record of a revoked partition', { topic: message.topic, partition: message.partition })
      return
    }
    if (!this.#tracker.begin(message.topic, message.partition, message.offset)) {
      this.#logger.debug('skipping a record already started', { topic: message.topic, partition: message.partition, offset: message.offset })
      return
    }
    if (runner.active + 1 >= this.#config.concurrency) this.#stream?.pause()
    runner.run(message)
  }

  #isAssigned (topic: string, partition: number): boolean {
    const assignments = this.#clients?.consumer.assignments ?? []
    return assignments.some((a) => a.topic === topic && a.partitions.includes(partition))
  }

  async #commit (): Promise<void> {
    const consumer = this.#clients?.consumer
    if (consumer === undefined || this.#commitInFlight !== undefined) return await this.#commitInFlight
    const positions = this.#tracker.pending()
    if (positions.length === 0) return
    this.#commitInFlight = consumer.commit({ offsets: positions.map((p) => ({ ...p, leaderEpoch: -1 })) })
      .then(() => this.#tracker.markCommitted(positions))
      .catch((err: unknown) => this.#logger.warn('offset commit failed; will retry', { error: describe(err) }))
      .finally(() => { this.#commitInFlight = undefined })
    await this.#commitInFlight
  }

  async #sendPresence (status: WorkerHeartbeat['status']): Promise<void> {
    const publisher = this.#publisher
    if (publisher === undefined) return
    const heartbeat: WorkerHeartbeat = {
      v: 1,
      worker_id: this.id,
      language: 'node',
      sdk_version: VERSION,
      hostname: hostname(),
      pid: process.pid,
      group_id: this.#config.groupId,
      actions: this.actions,
      concurrency: this.#config.concurrency,
      in_flight: this.inFlight,
      stuck_slots: this.stuckSlots,
      status,
      started_at: this.#startedAt,
      sent_at: timestampNow()
    }
    const message = { topic: this.#topics.workers, key: Buffer.from(this.id), value: Buffer.from(encodeWorkerHeartbeat(heartbeat)) }
    try {
      await publisher.publish(message)
    } catch (err: unknown) {
      this.#logger.warn('presence heartbeat failed', { error: describe(err) })
    }
  }

  /**
   * Graceful drain: stop fetching, wait up to `timeoutMs` for in-flight jobs and their results,
   * commit, announce STOPPED, close. Jobs still running at the timeout stay uncommitted (another
   * worker runs them again) and their `ctx.signal` is aborted. During start-up: stop at once.
   */
  async stop (timeoutMs: number = this.#config.drainTimeoutMs): Promise<void> {
    if (this.#state === 'new') {
      this.#state = 'stopped'
      return
    }
    this.#stopping ??= this.#state === 'starting' ? this.#abortStart() : this.#drain(timeoutMs)
    await this.#stopping
  }

  // Nothing ran yet (records are taken only once running), so nothing needs draining or committing.
  async #abortStart (): Promise<void> {
    this.#logger.info('stopping during start-up')
    this.#state = 'stopped'
    this.#startAbort.abort()
    await this.#close()
  }

  async #drain (timeoutMs: number): Promise<void> {
    if (this.#state === 'stopped') return
    this.#state = 'stopping'
    this.#stream?.pause()
    this.#logger.info('stopping: draining in-flight jobs', { in_flight: this.#unanswered, timeout_ms: timeoutMs })
    const deadline = Date.now() + timeoutMs
    while (this.#unanswered > 0 && Date.now() < deadline) await sleep(10)
    if (this.#unanswered > 0) {
      this.#logger.warn('drain timed out; abandoning jobs (left uncommitted)', { in_flight: this.#unanswered })
      this.#runner?.abandonAll('worker shutdown: drain timeout')
    }
    // Bounded: with Kafka gone (or the topics deleted) the client would retry these for minutes.
    await bounded(this.#commit(), FINAL_SEND_MS)
    await bounded(this.#commit(), FINAL_SEND_MS) // a commit in flight above may predate the last results
    await bounded(this.#sendPresence('STOPPED'), FINAL_SEND_MS)
    this.#state = 'stopped'
    await this.#close()
    this.#logger.info('worker stopped', { worker_id: this.id, ...this.report })
  }

  async #close (): Promise<void> {
    for (const t of this.#timers) clearInterval(t)
    this.#timers = []
    this.#removeSignalHandlers?.()
    const clients = this.#clients
    if (clients === undefined) return
    const closers = [
      async () => await this.#stream?.close(),
      async () => await clients.consumer.close(true),
      async () => await clients.producer.close(),
      async () => await clients.admin.close()
    ]
    for (const close of closers) {
      try {
        await close()
      } catch (err: unknown) {
        this.#logger.debug('error while closing kafka client', { error: describe(err) })
      }
    }
  }

  /** Counts since start: jobs completed, failed and dead-lettered (undecodable) by this worker. */
  get report (): RunReport {
    return this.#runner?.report ?? { completed: 0, failed: 0, deadLettered: 0 }
  }

  /**
   * Burst mode, for tests and batch jobs: start if needed, process until every assigned partition's
   * position reached its end offset and nothing is in flight, then stop and return the counts.
   */
  async runUntilIdle (options: { timeoutMs?: number, pollMs?: number } = {}): Promise<RunReport> {
    const timeoutMs = options.timeoutMs ?? 30_000
    if (this.#state === 'new') await this.start()
    const deadline = Date.now() + timeoutMs
    while (!(await this.#isIdle())) {
      // Stopped meanwhile (a signal, or stop() from elsewhere): report what was done.
      if (this.#state === 'stopping' || this.#state === 'stopped') break
      if (Date.now() > deadline) {
        await this.stop()
        throw new IdleTimeout(`runUntilIdle: not idle after ${timeoutMs} ms`)
      }
      await sleep(options.pollMs ?? 50)
    }
    await this.stop()
    return this.report
  }

  async #isIdle (): Promise<boolean> {
    const consumer = this.#clients?.consumer
    const stream = this.#stream
    if (this.#state !== 'running' || consumer?.assignments == null || stream === undefined) return false
    if (!this.#offsetsReady || this.#unanswered > 0 || stream.readableLength > 0) return false
    const assignments = consumer.assignments
    const ends = await endOffsets(consumer, assignments.map((a) => a.topic))
    for (const { topic, partitions } of assignments) {
      for (const partition of partitions) {
        const end = ends.get(topic)?.[partition]
        const position = this.#tracker.position(topic, partition) ?? stream.offsetsToFetch.get(tp(topic, partition))
        if (end === undefined || position === undefined || position < end) return false
      }
    }
    return this.#unanswered === 0 && stream.readableLength === 0
  }

  #every (ms: number, fn: () => void): void {
    const timer = setInterval(fn, ms)
    timer.unref()
    this.#timers.push(timer)
  }

  async [Symbol.asyncDispose] (): Promise<void> {
    await this.stop()
  }

  static {
    bookkeepingOf = (worker) => ({ offsets: worker.#tracker.size, partitions: worker.#tracker.partitions, ...worker.#runner?.bookkeeping })
  }
}


/** How long a stopping worker waits for its last commit and its STOPPED announcement. */
const FINAL_SEND_MS = 5_000

async function bounded (work: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms) })
  await Promise.race([work, timeout])
  clearTimeout(timer)
}

const warned = new Set<string>()

/** Deprecation warnings: once per process, not once per worker. */
function warnOnce (logger: Logger, message: string): void {
  if (warned.has(message)) return
  warned.add(message)
  logger.warn(message)
}
