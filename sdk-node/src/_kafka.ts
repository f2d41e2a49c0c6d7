/**
 * Private plumbing around @platformatic/kafka: client construction with the settings the delivery
 * rules need, topic creation, DLT headers. Nothing here is public API; worker.ts is the only user.
 */
import {
  Admin,
  Consumer,
  Producer,
  compatibilityPartitioner,
  type Message,
  type MessagesStream
} from '@platformatic/kafka'
import { partitionAssigner } from './_assignor.js'
import type { WorkerConfig } from './config.js'
import type { Logger } from './logger.js'

export type KafkaMessage = Message<Buffer, Buffer, Buffer, Buffer>
export type JobStream = MessagesStream<Buffer, Buffer, Buffer, Buffer>
export type Headers = Map<Buffer, Buffer>

export interface Topics {
  jobs: (action: string) => string
  results: string
  dlt: string
  workers: string
}

export function topicsFor (prefix: string): Topics {
  return {
    jobs: (action) => `${prefix}jobs.${action}`,
    results: `${prefix}results`,
    dlt: `${prefix}jobs.DLT`,
    workers: `${prefix}workers`
  }
}

export interface Clients {
  admin: Admin
  producer: Producer<Buffer, Buffer, Buffer, Buffer>
  consumer: Consumer<Buffer, Buffer, Buffer, Buffer>
}

export function createClients (config: WorkerConfig, clientId: string): Clients {
  const base = { clientId, bootstrapBrokers: config.bootstrapServers }
  return {
    admin: new Admin(base),
    // Idempotent + acks=all: an acknowledged result is durable and a retried send is not duplicated.
    // Java's partitioner (murmur2 & 0x7fffffff), so a run's results share a partition whichever
    // language produced them.
    producer: new Producer({ ...base, idempotent: true, partitioner: compatibilityPartitioner }),
    consumer: new Consumer({
      ...base,
      groupId: config.groupId,
      autocommit: false,
      // A dead worker's partitions move after the session timeout; the client's 60 s default
      // would leave its uncommitted jobs waiting a minute before another worker sees them.
      sessionTimeout: 10_000,
      heartbeatInterval: 1_000,
      rebalanceTimeout: 30_000,
      // Workers of every SDK share one group, each subscribed to its own actions' topics. The classic
      // "roundrobin" protocol is the one aiokafka, this client and Java (RoundRobinAssignor) all
      // offer; version 0 subscription metadata (topics + user data) is what this client actually
      // encodes, so a Java leader can decode it. The library's own assigner ignores subscriptions,
      // hence ours (src/_assignor.ts), the same algorithm as Java's and aiokafka's.
      protocols: [{ name: 'roundrobin', version: 0 }],
      partitionAssigner,
      // Bounds how long an idle fetch blocks, i.e. how fast stop() and runUntilIdle() react.
      maxWaitTime: 500,
      highWaterMark: Math.max(64, config.concurrency * 2)
    })
  }
}

export async function openJobStream (consumer: Clients['consumer'], topics: string[]): Promise<JobStream> {
  return await consumer.consume({
    topics,
    autocommit: false,
    // Resume from the group's committed offsets; a group with none starts at the beginning, so a
    // job published before any worker existed still runs.
    mode: 'committed',
    fallbackMode: 'earliest'
  })
}

export interface TopicSettings {
  partitions: number
  replicationFactor: number
  /** `min.insync.replicas`; undefined leaves the broker's default. */
  minInsyncReplicas: number | undefined
}

/** Creates the missing topics; "already exists" (another process won the race) is success. */
export async function ensureTopics (admin: Admin, topics: string[], settings: TopicSettings, logger: Logger): Promise<void> {
  const existing = new Set(await admin.listTopics())
  const missing = topics.filter((t) => !existing.has(t))
  if (missing.length === 0) return
  const { partitions, replicationFactor, minInsyncReplicas } = settings
  const configs = minInsyncReplicas === undefined ? [] : [{ name: 'min.insync.replicas', value: String(minInsyncReplicas) }]
  try {
    await admin.createTopics({ topics: missing, partitions, replicas: replicationFactor, configs })
    logger.info('created topics', { topics: missing, partitions, replication_factor: replicationFactor })
  } catch (err: unknown) {
    if (!onlyAlreadyExists(err)) throw err
  }
}

/** True when `err` says no broker could be reached (worth waiting for), not that one refused. */
export function isUnreachable (err: unknown): boolean {
  const seen = new Set<unknown>()
  const walk = (e: unknown): boolean => {
    if (typeof e !== 'object' || e === null || seen.has(e)) return false
    seen.add(e)
    const { code, errors, cause } = e as { code?: unknown, errors?: unknown, cause?: unknown }
    if (code === 'PLT_KFK_NETWORK' || code === 'PLT_KFK_TIMEOUT' || code === 'ECONNREFUSED') return true
    return (Array.isArray(errors) && errors.some(walk)) || walk(cause)
  }
  return walk(err)
}

function onlyAlreadyExists (err: unknown): boolean {
  const errors = (err as { errors?: unknown }).errors
  return Array.isArray(errors) && errors.length > 0 &&
    errors.every((e) => (e as { apiId?: unknown }).apiId === 'TOPIC_ALREADY_EXISTS')
}

export function headersOf (pairs: Record<string, string | Buffer | undefined>): Headers {
  const headers: Headers = new Map()
  for (const [k, v] of Object.entries(pairs)) {
    if (v !== undefined) headers.set(Buffer.from(k), typeof v === 'string' ? Buffer.from(v, 'utf8') : v)
  }
  return headers
}

export function header (message: KafkaMessage, name: string): Buffer | undefined {
  for (const [k, v] of message.headers) {
    if (k.toString('utf8') === name) return v
  }
  return undefined
}

/** Spring Kafka's DLT header names and encodings (protocol/README.md), so existing tools read them. */
export function dltHeaders (message: KafkaMessage, groupId: string, reason: string, jobId?: string): Headers {
  const partition = Buffer.alloc(4)
  partition.writeInt32BE(message.partition)
  const offset = Buffer.alloc(8)
  offset.writeBigInt64BE(message.offset)
  const timestamp = Buffer.alloc(8)
  timestamp.writeBigInt64BE(message.timestamp)
  return headersOf({
    'kafka_dlt-original-topic': message.topic,
    'kafka_dlt-original-partition': partition,
    'kafka_dlt-original-offset': offset,
    'kafka_dlt-original-timestamp': timestamp,
    'kafka_dlt-original-consumer-group': groupId,
    'kafka_dlt-exception-fqcn': 'Undecodable',
    'kafka_dlt-exception-message': reason,
    'kafka_dlt-exception-stacktrace': '',
    'baton-dlt-reason': 'undecodable',
    'baton-job-id': jobId
  })
}

/** Best effort: the job id of a record that failed to decode, for the DLT header. */
export function salvageJobId (value: Buffer | undefined): string | undefined {
  try {
    const parsed: unknown = JSON.parse(value?.toString('utf8') ?? '')
    const id = (parsed as { job_id?: unknown } | null)?.job_id
    return typeof id === 'string' && id !== '' ? id : undefined
  } catch {
    return undefined
  }
}

/** Latest offsets (high watermarks) of every partition of `topics`. */
export async function endOffsets (consumer: Clients['consumer'], topics: string[]): Promise<Map<string, bigint[]>> {
  return await consumer.listOffsets({ topics })
}
