/**
 * Test helpers against the real Kafka of the local stack. Every test gets its own topic prefix and
 * group (`t-<uuid>-`), deletes its topics afterwards and waits with deadlines, never bare sleeps.
 */
import { randomUUID } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import type { TestContext } from 'node:test'
import { Admin, Consumer, Producer, compatibilityPartitioner, type Message } from '@platformatic/kafka'
import Ajv2020 from 'ajv/dist/2020.js'
import type { Logger } from '../src/index.js'
import type { Job } from '../src/protocol.js'

export const BOOTSTRAP = process.env.BATON_KAFKA_BOOTSTRAP_SERVERS ?? '127.0.0.1:9092'
export const REPO_ROOT = new URL('../../../', import.meta.url)

export type Record_ = Message<Buffer, Buffer, Buffer, Buffer>

/** A logger that keeps lines for assertions and prints nothing. */
export function memoryLogger (): Logger & { lines: Array<{ level: string, message: string, fields?: object }> } {
  const lines: Array<{ level: string, message: string, fields?: object }> = []
  // BATON_TEST_LOG=1 echoes SDK logs while debugging a test.
  const echo = process.env.BATON_TEST_LOG === '1'
  const push = (level: string) => (message: string, fields?: object) => {
    lines.push({ level, message, fields })
    if (echo) process.stderr.write(`${level} ${message} ${JSON.stringify(fields ?? {}, (_k, v: unknown) => typeof v === 'bigint' ? String(v) : v)}\n`)
  }
  return { lines, debug: push('debug'), info: push('info'), warn: push('warn'), error: push('error') }
}

export async function eventually<T> (check: () => T | Promise<T>, timeoutMs = 15_000, what = 'condition'): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const result = await check()
    if (result !== undefined && result !== null && result !== false) return result as NonNullable<T>
    if (Date.now() > deadline) throw new Error(`${what} not true after ${timeoutMs} ms`)
    await sleep(50)
  }
}

export function makeJob (action: string, input: unknown, overrides: Partial<Job> = {}): Job {
  const now = Date.now()
  return {
    v: 1,
    job_id: randomUUID(),
    run_id: randomUUID(),
    workflow_id: 'wf-test',
    workflow_version: 1,
    step: 'step-a',
    action,
    attempt: 1,
    max_attempts: 4,
    input,
    deadline: new Date(now + 300_000).toISOString(),
    timeout_ms: 300_000,
    created_at: new Date(now).toISOString(),
    ...overrides
  }
}

/** One isolated corner of the broker: unique prefix and group, topics deleted after the test. */
export class KafkaScope {
  readonly prefix = `t-${randomUUID()}-`
  readonly group = `${this.prefix}group`
  readonly admin: Admin
  readonly producer: Producer<Buffer, Buffer, Buffer, Buffer>
  readonly #consumers: Array<Consumer<Buffer, Buffer, Buffer, Buffer>> = []

  constructor (readonly bootstrap: string = BOOTSTRAP) {
    this.admin = new Admin({ clientId: 'baton-test', bootstrapBrokers: [bootstrap] })
    // Idempotent: in our runs a plain producer sometimes wrote a batch twice right after topic
    // creation (a retried request), duplicating jobs. Tests send sequentially (see src/_publisher.ts).
    this.producer = new Producer({ clientId: 'baton-test', bootstrapBrokers: [bootstrap], partitioner: compatibilityPartitioner, idempotent: true })
  }

  /** A scope on the shared broker, or on `bootstrap` (the outage test's private one). */
  static async open (t: TestContext, bootstrap?: string): Promise<KafkaScope> {
    const scope = new KafkaScope(bootstrap)
    t.after(async () => { await scope.close() })
    // Fails (not skips) when Kafka is down: listTopics needs a broker.
    await scope.admin.listTopics()
    return scope
  }

  topic (suffix: string): string {
    return `${this.prefix}${suffix}`
  }

  /** `configs` are topic configs, e.g. `{ 'max.message.bytes': '1048588' }` (Kafka's default limit). */
  async createTopics (suffixes: string[], partitions = 1, configs: Record<string, string> = {}): Promise<void> {
    const entries = Object.entries(configs).map(([name, value]) => ({ name, value }))
    await this.admin.createTopics({ topics: suffixes.map((s) => this.topic(s)), partitions, replicas: 1, configs: entries })
  }

  /** Keyed by run_id like the orchestrator; `partitionOf(i)` places message i explicitly instead. */
  async produce (suffix: string, values: Array<string | object>, headers?: Record<string, string>, partitionOf?: (i: number) => number): Promise<void> {
    const messages = values.map((v, i) => {
      const value = typeof v === 'string' ? v : JSON.stringify(v)
      const runId = typeof v === 'object' && 'run_id' in v ? String(v.run_id) : 'raw'
      const h = new Map(Object.entries(headers ?? {}).map(([k, x]) => [Buffer.from(k), Buffer.from(x)]))
      const partition = partitionOf?.(i)
      return { topic: this.topic(suffix), key: Buffer.from(runId), value: Buffer.from(value), headers: h, ...(partition === undefined ? {} : { partition }) }
    })
    await this.producer.send({ messages })
  }

  /** Reads `suffix` from the beginning until `count` records arrived (or fails at the deadline). */
  async read (suffix: string, count: number, timeoutMs = 15_000): Promise<Record_[]> {
    const consumer = new Consumer({ clientId: 'baton-test-reader', groupId: `${this.prefix}reader-${randomUUID()}`, bootstrapBrokers: [this.bootstrap], autocommit: false })
    this.#consumers.push(consumer)
    const stream = await consumer.consume({ topics: [this.topic(suffix)], mode: 'earliest', autocommit: false })
    const records: Record_[] = []
    stream.on('data', (m: Record_) => records.push(m))
    try {
      await eventually(() => records.length >= count, timeoutMs, `${count} records on ${suffix} (got ${records.length})`)
      return records
    } finally {
      await stream.close()
      await consumer.close(true)
    }
  }

  async readJson<T = any> (suffix: string, count: number, timeoutMs?: number): Promise<T[]> {
    return (await this.read(suffix, count, timeoutMs)).map((r) => JSON.parse(r.value.toString('utf8')) as T)
  }

  /** Sum of the group's committed offsets over the partitions of `suffix`. */
  async committed (suffix: string): Promise<bigint> {
    const groups = await this.admin.listConsumerGroupOffsets({ groups: [this.group] })
    let sum = 0n
    for (const g of groups) {
      for (const t of g.topics) {
        if (t.name !== this.topic(suffix)) continue
        for (const p of t.partitions) if (p.committedOffset > 0n) sum += p.committedOffset
      }
    }
    return sum
  }

  async close (): Promise<void> {
    for (const c of this.#consumers) {
      try { await c.close(true) } catch {}
    }
    try {
      const mine = (await this.admin.listTopics()).filter((t) => t.startsWith(this.prefix))
      if (mine.length > 0) await this.admin.deleteTopics({ topics: mine })
    } catch {}
    await this.producer.close().catch(() => {})
    await this.admin.close().catch(() => {})
  }
}

export function headerMap (record: Record_): Map<string, Buffer> {
  return new Map([...record.headers].map(([k, v]) => [k.toString('utf8'), v]))
}

const schemas = new Map<string, (data: unknown) => boolean>()

/** Validates `data` against protocol/schemas/<name>.schema.json; returns the errors as text. */
export function schemaErrors (name: 'job' | 'result' | 'worker-heartbeat', data: unknown): string {
  let validate = schemas.get(name)
  if (validate === undefined) {
    const ajv = new Ajv2020.default({ strict: false, validateFormats: false, allErrors: true })
    const fn = ajv.compile(JSON.parse(readFileSync(new URL(`protocol/schemas/${name}.schema.json`, REPO_ROOT), 'utf8')))
    validate = (d: unknown) => { const ok = fn(d); lastErrors = ok ? '' : ajv.errorsText(fn.errors); return ok }
    schemas.set(name, validate)
  }
  validate(data)
  return lastErrors
}
let lastErrors = ''
