/**
 * The one place that reads BATON_* environment variables. Names, defaults and validation messages
 * follow docs/sdk-contract.md word for word, so the three SDKs reject the same input the same way.
 */
import type { Tracer, TracerProvider } from '@opentelemetry/api'
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
  /** Replication factor of the topics this worker creates. Env `BATON_TOPIC_REPLICATION_FACTOR` (default 1). */
  topicReplicationFactor?: number
  /** `min.insync.replicas` of the topics this worker creates. Env `BATON_TOPIC_MIN_INSYNC_REPLICAS` (default: the broker's). */
  topicMinInsyncReplicas?: number
  /** Presence heartbeat period in ms. Env `BATON_WORKER_PRESENCE_INTERVAL` (seconds, default 5). */
  presenceIntervalMs?: number
  /** How long stop(), SIGINT and SIGTERM wait for in-flight jobs. Env `BATON_WORKER_DRAIN_TIMEOUT` (seconds, default 30). */
  drainTimeoutMs?: number
  /** @deprecated use `drainTimeoutMs`. */
  shutdownTimeoutMs?: number
  /** How long past a job's deadline the worker waits for its handler. Env `BATON_WORKER_DEADLINE_GRACE` (seconds, default 10). */
  deadlineGraceMs?: number
  /** Most abandoned handlers whose slots are freed. Env `BATON_WORKER_MAX_ABANDONED` (default: concurrency). */
  maxAbandoned?: number
  /** Install SIGINT/SIGTERM handlers that drain the worker (default true). */
  handleSignals?: boolean
  /** Where the SDK logs; default: info and above to stderr, debug silent. */
  logger?: Logger
  /**
   * Makes the `baton.handle` spans. Default: `trace.getTracer('baton', VERSION)` from the global
   * provider, a no-op until the application registers an OpenTelemetry SDK.
   */
  tracer?: Tracer
  /** Used for the tracer (`getTracer('baton', VERSION)`) when `tracer` is not given. */
  tracerProvider?: TracerProvider
}

export interface WorkerConfig {
  bootstrapServers: string[]
  groupId: string
  concurrency: number
  topicPrefix: string
  maxPayloadBytes: number
  topicPartitions: number
  topicReplicationFactor: number
  topicMinInsyncReplicas: number | undefined
  presenceIntervalMs: number
  drainTimeoutMs: number
  deadlineGraceMs: number
  maxAbandoned: number
  handleSignals: boolean
}

type Env = Record<string, string | undefined>

/** Options of `new Client()`. */
export interface ClientOptions {
  /** `http://` or `https://` URL of the Baton API. Env `BATON_API_URL`, default `http://127.0.0.1:8080`. */
  baseUrl?: string
  /** Sent as `Authorization: Bearer <key>`; `''` sends none even when the env var is set. Env `BATON_API_KEY`. */
  apiKey?: string
  /** Per request, in ms (a long poll gets its wait on top). Default 30 000. */
  timeoutMs?: number
}

export interface ClientConfig {
  baseUrl: string
  apiKey: string | undefined
  timeoutMs: number
}

const HOST_PORT = /^[^\s:,]+:\d{1,5}$/
const PREFIX = /^[A-Za-z0-9._-]*$/
const ACTION = /^[A-Za-z0-9._-]{1,200}$/

/** `onDeprecated` is told each deprecated option or env var in use (the worker logs it once). */
export function resolveConfig (options: WorkerOptions = {}, env: Env = process.env, onDeprecated: (message: string) => void = () => {}): WorkerConfig {
  const concurrency = integer(options.concurrency ?? env.BATON_WORKER_CONCURRENCY ?? 8, 1, 1000,
    'concurrency must be an integer between 1 and 1000')
  return {
    bootstrapServers: bootstrapServers(options.bootstrapServers ?? env.BATON_KAFKA_BOOTSTRAP_SERVERS ?? 'localhost:9092'),
    groupId: groupId(options.groupId ?? env.BATON_WORKER_GROUP ?? 'workflow-workers'),
    concurrency,
    topicPrefix: topicPrefix(options.topicPrefix ?? env.BATON_TOPIC_PREFIX ?? 'workflow-'),
    maxPayloadBytes: positive(options.maxPayloadBytes ?? env.BATON_MAX_PAYLOAD_BYTES ?? 1048576, 'max_payload_bytes'),
    topicPartitions: integer(options.topicPartitions ?? env.BATON_TOPIC_PARTITIONS ?? 6, 1, 1_000_000,
      'topic_partitions must be a positive integer'),
    topicReplicationFactor: integer(options.topicReplicationFactor ?? env.BATON_TOPIC_REPLICATION_FACTOR ?? 1, 1, 32_767,
      'topic_replication_factor must be a positive integer'),
    topicMinInsyncReplicas: optionalPositive(options.topicMinInsyncReplicas ?? env.BATON_TOPIC_MIN_INSYNC_REPLICAS, 'topic_min_insync_replicas'),
    presenceIntervalMs: presenceInterval(options, env, onDeprecated),
    drainTimeoutMs: drainTimeout(options, env, onDeprecated),
    deadlineGraceMs: milliseconds(options.deadlineGraceMs, env.BATON_WORKER_DEADLINE_GRACE, 10_000, false,
      'deadline_grace must be a non-negative number of seconds'),
    maxAbandoned: integer(options.maxAbandoned ?? env.BATON_WORKER_MAX_ABANDONED ?? concurrency, 0, 1_000_000,
      'max_abandoned must be a non-negative integer'),
    handleSignals: options.handleSignals ?? true
  }
}

const API_URL = /^https?:\/\/[^\s/?#]+(\/[^\s?#]*)?$/
const API_KEY = /^[\x21-\x7e]+$/ // a header value: a newline would split the request
// setTimeout's largest delay; a longer one fires at once.
const MAX_TIMER_MS = 2_147_483_647

/** Explicit options, then `BATON_API_URL` / `BATON_API_KEY`, then the defaults (messages as the Python SDK's). */
export function resolveClientConfig (options: ClientOptions = {}, env: Env = process.env): ClientConfig {
  const url = options.baseUrl ?? (blank(env.BATON_API_URL) ? 'http://127.0.0.1:8080' : env.BATON_API_URL.trim())
  if (typeof url !== 'string' || !API_URL.test(url)) throw new ConfigError('base_url must be an http:// or https:// URL')
  const key = options.apiKey ?? env.BATON_API_KEY?.trim() ?? ''
  if (typeof key !== 'string' || (key !== '' && !API_KEY.test(key))) {
    throw new ConfigError('api_key must be printable ASCII without spaces')
  }
  const timeoutMs = options.timeoutMs ?? 30_000
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0 && timeoutMs <= MAX_TIMER_MS)) {
    throw new ConfigError('timeout must be a positive number of seconds')
  }
  return { baseUrl: url.replace(/\/+$/, ''), apiKey: key === '' ? undefined : key, timeoutMs }
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

function positive (value: unknown, name: string): number {
  return integer(value, 1, Number.MAX_SAFE_INTEGER, `${name} must be a positive integer`)
}

function optionalPositive (value: unknown, name: string): number | undefined {
  return value === undefined || value === '' ? undefined : positive(value, name)
}

function presenceInterval (options: WorkerOptions, env: Env, onDeprecated: (message: string) => void): number {
  if (options.presenceIntervalMs === undefined && blank(env.BATON_WORKER_PRESENCE_INTERVAL) && !blank(env.BATON_WORKER_HEARTBEAT_INTERVAL)) {
    onDeprecated('BATON_WORKER_HEARTBEAT_INTERVAL is deprecated: use BATON_WORKER_PRESENCE_INTERVAL')
    return milliseconds(undefined, env.BATON_WORKER_HEARTBEAT_INTERVAL, 5000, true, 'heartbeat_interval must be a positive number of seconds')
  }
  return milliseconds(options.presenceIntervalMs, env.BATON_WORKER_PRESENCE_INTERVAL, 5000, true,
    'presence_interval must be a positive number of seconds')
}

function drainTimeout (options: WorkerOptions, env: Env, onDeprecated: (message: string) => void): number {
  const message = 'drain_timeout must be a non-negative number of seconds'
  if (options.drainTimeoutMs === undefined && options.shutdownTimeoutMs !== undefined) {
    onDeprecated('the shutdownTimeoutMs option is deprecated: use drainTimeoutMs')
    return milliseconds(options.shutdownTimeoutMs, undefined, 30_000, false, message)
  }
  return milliseconds(options.drainTimeoutMs, env.BATON_WORKER_DRAIN_TIMEOUT, 30_000, false, message)
}

/** An option in ms, else an env var in seconds, else `fallbackMs`; > 0 when `positiveOnly`, else >= 0. */
function milliseconds (optionMs: unknown, envSeconds: string | undefined, fallbackMs: number, positiveOnly: boolean, message: string): number {
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isFinite(n) && (positiveOnly ? n > 0 : n >= 0)
  if (optionMs !== undefined) {
    if (!ok(optionMs)) throw new ConfigError(message)
    return optionMs
  }
  if (blank(envSeconds)) return fallbackMs
  const seconds = Number(envSeconds)
  if (!ok(seconds)) throw new ConfigError(message)
  return Math.round(seconds * 1000)
}

function blank (value: string | undefined): value is undefined {
  return value === undefined || value.trim() === ''
}
