/**
 * The one place that reads BATON_* environment variables. Names, defaults and validation messages
 * follow docs/sdk-contract.md word for word, so the three SDKs reject the same input the same way.
 */
import { ConfigError } from './errors.js'
import type { Logger } from './logger.js'

export interface WorkerOptions {
  /** `host:port` list, comma-separated string or array. Env `BATON_KAFKA_BOOTSTRAP_SERVERS`. */
  bootstrapServers?: string | string[]
  /** Consumer group shared by every worker of the same actions. Env `BATON_WORKER_GROUP`. */
  groupId?: string
  /** Maximum jobs in flight (1-1000). Env `BATON_WORKER_CONCURRENCY`. */
  concurrency?: number
  /** Prefix of every topic name. Env `BATON_TOPIC_PREFIX`. */
  topicPrefix?: string
  /** Largest encoded output a handler may return. Env `BATON_MAX_PAYLOAD_BYTES`. */
  maxPayloadBytes?: number
  /** Partitions of the topics this worker creates when missing. Env `BATON_TOPIC_PARTITIONS`. */
  topicPartitions?: number
  /** Presence heartbeat period in ms. Env `BATON_WORKER_HEARTBEAT_INTERVAL` (seconds). */
  presenceIntervalMs?: number
  /** How long SIGINT/SIGTERM wait for in-flight jobs before giving up on them (default 30 s). */
  shutdownTimeoutMs?: number
  /** Install SIGINT/SIGTERM handlers that drain the worker (default true). */
  handleSignals?: boolean
  /** Where the SDK logs; default: info and above to stderr, debug silent. */
  logger?: Logger
}

export interface WorkerConfig {
  bootstrapServers: string[]
  groupId: string
  concurrency: number
  topicPrefix: string
  maxPayloadBytes: number
  topicPartitions: number
  presenceIntervalMs: number
  shutdownTimeoutMs: number
  handleSignals: boolean
}

type Env = Record<string, string | undefined>

const HOST_PORT = /^[^\s:,]+:\d{1,5}$/
const PREFIX = /^[A-Za-z0-9._-]*$/
const ACTION = /^[A-Za-z0-9._-]{1,200}$/

export function resolveConfig (options: WorkerOptions = {}, env: Env = process.env): WorkerConfig {
  return {
    bootstrapServers: bootstrapServers(options.bootstrapServers ?? env.BATON_KAFKA_BOOTSTRAP_SERVERS ?? 'localhost:9092'),
    groupId: groupId(options.groupId ?? env.BATON_WORKER_GROUP ?? 'workflow-workers'),
    concurrency: integer(options.concurrency ?? env.BATON_WORKER_CONCURRENCY ?? 8, 1, 1000,
      'concurrency must be an integer between 1 and 1000'),
    topicPrefix: topicPrefix(options.topicPrefix ?? env.BATON_TOPIC_PREFIX ?? 'workflow-'),
    maxPayloadBytes: integer(options.maxPayloadBytes ?? env.BATON_MAX_PAYLOAD_BYTES ?? 1048576, 1, Number.MAX_SAFE_INTEGER,
      'max_payload_bytes must be a positive integer'),
    topicPartitions: integer(options.topicPartitions ?? env.BATON_TOPIC_PARTITIONS ?? 6, 1, 1_000_000,
      'topic_partitions must be a positive integer'),
    presenceIntervalMs: presenceInterval(options.presenceIntervalMs, env.BATON_WORKER_HEARTBEAT_INTERVAL),
    shutdownTimeoutMs: integer(options.shutdownTimeoutMs ?? 30_000, 0, Number.MAX_SAFE_INTEGER,
      'shutdown_timeout_ms must be an integer >= 0'),
    handleSignals: options.handleSignals ?? true
  }
}

/** Throws ConfigError with the contract's message when `action` is not a valid action name. */
export function validateAction (action: unknown): asserts action is string {
  if (typeof action !== 'string' || !ACTION.test(action) || action === 'DLT') {
    throw new ConfigError(`invalid action name '${String(action)}': use 1-200 of [A-Za-z0-9._-], not 'DLT'`)
  }
}

function bootstrapServers (value: unknown): string[] {
  const list = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : []
  const servers = list.map((s) => (typeof s === 'string' ? s.trim() : '')).filter((s) => s !== '')
  if (servers.length === 0 || !servers.every((s) => HOST_PORT.test(s))) {
    throw new ConfigError('bootstrap_servers must be a non-empty host:port list')
  }
  return servers
}

function groupId (value: unknown): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ConfigError('group_id must be a non-empty string')
  }
  return value
}

function topicPrefix (value: unknown): string {
  if (typeof value !== 'string' || !PREFIX.test(value)) {
    throw new ConfigError('topic_prefix may contain only [A-Za-z0-9._-]')
  }
  return value
}

// Env values arrive as strings; "8" is fine, "8.5", "8x" and "" are not.
function integer (value: unknown, min: number, max: number, message: string): number {
  const n = typeof value === 'string' && /^\s*-?\d+\s*$/.test(value) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new ConfigError(message)
  }
  return n
}

function presenceInterval (optionMs: number | undefined, envSeconds: string | undefined): number {
  const message = 'heartbeat_interval must be a positive number of seconds'
  if (optionMs !== undefined) {
    if (typeof optionMs !== 'number' || !Number.isFinite(optionMs) || optionMs <= 0) throw new ConfigError(message)
    return optionMs
  }
  if (envSeconds === undefined || envSeconds.trim() === '') return 5000
  const seconds = Number(envSeconds)
  if (!Number.isFinite(seconds) || seconds <= 0) throw new ConfigError(message)
  return seconds * 1000
}
