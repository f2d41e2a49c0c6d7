/**
 * Envelope v1 codec (protocol/README.md). Decoders are strict about what the schemas require and
 * ignore unknown fields, so a newer orchestrator can add fields without breaking old workers.
 * Checked against protocol/vectors/vectors.json by test/protocol.test.ts.
 */

export const ENVELOPE_VERSION = 1
export const LANGUAGE = 'node'

export interface Job {
  v: 1
  job_id: string
  run_id: string
  workflow_id: string
  workflow_version: number
  step: string
  action: string
  attempt: number
  max_attempts: number
  input: unknown
  deadline: string
  timeout_ms?: number
  created_at: string
  [unknown: string]: unknown
}

export type ResultStatus = 'COMPLETED' | 'FAILED' | 'HEARTBEAT'

export interface ResultError {
  type: string
  message: string
  stacktrace: string | null
  retryable: boolean
  retry_after_ms?: number
}

export interface WorkerIdentity {
  id: string
  language: string
  sdk_version: string
}

export interface Result {
  v: 1
  job_id: string
  run_id: string
  step: string
  attempt: number
  status: ResultStatus
  output: unknown
  error: ResultError | null
  worker: WorkerIdentity
  started_at: string | null
  finished_at: string | null
}

export interface WorkerHeartbeat {
  v: 1
  worker_id: string
  language: string
  sdk_version: string
  hostname: string
  pid: number
  group_id: string
  actions: string[]
  concurrency: number
  in_flight: number
  /** Abandoned handlers (answered `Timeout`) still running. */
  stuck_slots?: number
  status: 'RUNNING' | 'STOPPING' | 'STOPPED'
  started_at: string
  sent_at: string
}

/** The record cannot be decoded as an envelope v1; `reason` goes into the DLT headers. */
export class UndecodableError extends Error {
  constructor (readonly reason: string) {
    super(reason)
    this.name = 'Undecodable'
  }
}

type Obj = Record<string, unknown>

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/
const ACTION = /^[A-Za-z0-9._-]{1,200}$/

export function decodeJob (raw: Buffer | string | undefined | null): Job {
  const o = parseEnvelope(raw)
  str(o, 'job_id', 200)
  str(o, 'run_id', 200)
  str(o, 'workflow_id')
  int(o, 'workflow_version', 1)
  str(o, 'step')
  str(o, 'action')
  if (!ACTION.test(o.action as string)) throw new UndecodableError('invalid action')
  int(o, 'attempt', 1)
  int(o, 'max_attempts', 1)
  if (!('input' in o)) throw new UndecodableError('missing field input')
  timestamp(o, 'deadline')
  timestamp(o, 'created_at')
  if (o.timeout_ms !== undefined && o.timeout_ms !== null) int(o, 'timeout_ms', 1)
  return o as Job
}

export function decodeResult (raw: Buffer | string | undefined | null): Result {
  const o = parseEnvelope(raw)
  str(o, 'job_id')
  str(o, 'run_id')
  str(o, 'step')
  int(o, 'attempt', 1)
  if (o.status !== 'COMPLETED' && o.status !== 'FAILED' && o.status !== 'HEARTBEAT') {
    throw new UndecodableError('bad status')
  }
  const error = o.error ?? null
  if (error !== null && !isResultError(error)) throw new UndecodableError('bad error')
  if (o.status === 'FAILED' && error === null) throw new UndecodableError('FAILED needs error')
  const worker = o.worker
  if (!isObj(worker) || !nonEmpty(worker.id) || typeof worker.language !== 'string' || typeof worker.sdk_version !== 'string') {
    throw new UndecodableError('bad worker')
  }
  return { ...o, output: o.output ?? null, error, started_at: optTs(o, 'started_at'), finished_at: optTs(o, 'finished_at') } as Result
}

export function decodeWorkerHeartbeat (raw: Buffer | string | undefined | null): WorkerHeartbeat {
  const o = parseEnvelope(raw)
  str(o, 'worker_id')
  for (const k of ['language', 'sdk_version', 'status']) {
    if (typeof o[k] !== 'string') throw new UndecodableError(`wrong type ${k}`)
  }
  if (!Array.isArray(o.actions) || !o.actions.every((a) => typeof a === 'string')) throw new UndecodableError('wrong type actions')
  int(o, 'in_flight', 0)
  timestamp(o, 'sent_at')
  return o as unknown as WorkerHeartbeat
}

/**
 * Encodes a result. `outputJson` is the handler output already encoded (the size check needed it),
 * spliced in as-is so a large output is serialised exactly once.
 */
export function encodeResult (result: Omit<Result, 'output'>, outputJson = 'null'): string {
  const rest = JSON.stringify(result) // a non-empty object: "{...}"
  return `{"output":${outputJson},${rest.slice(1)}`
}

export function encodeWorkerHeartbeat (heartbeat: WorkerHeartbeat): string {
  return JSON.stringify(heartbeat)
}

/** RFC 3339 UTC with milliseconds and `Z`, as every SDK writes timestamps. */
export function timestampNow (date: Date = new Date()): string {
  return date.toISOString()
}

function parseEnvelope (raw: Buffer | string | undefined | null): Obj {
  const text = raw === undefined || raw === null ? '' : typeof raw === 'string' ? raw : raw.toString('utf8')
  if (text.length === 0) throw new UndecodableError('empty')
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    throw new UndecodableError('malformed JSON')
  }
  if (!isObj(parsed)) throw new UndecodableError('not an object')
  if (!('v' in parsed)) throw new UndecodableError('missing field v')
  if (parsed.v !== ENVELOPE_VERSION) throw new UndecodableError('unsupported envelope version')
  return parsed
}

function isObj (value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function nonEmpty (value: unknown): value is string {
  return typeof value === 'string' && value.length > 0
}

function str (o: Obj, key: string, maxLength = Infinity): void {
  if (!(key in o)) throw new UndecodableError(`missing field ${key}`)
  const v = o[key]
  if (!nonEmpty(v) || v.length > maxLength) throw new UndecodableError(`wrong type ${key}`)
}

function int (o: Obj, key: string, min: number): void {
  if (!(key in o)) throw new UndecodableError(`missing field ${key}`)
  const v = o[key]
  if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new UndecodableError(`wrong type ${key}`)
  if (v < min) throw new UndecodableError(`${key} < ${min}`)
}

function timestamp (o: Obj, key: string): void {
  if (!(key in o)) throw new UndecodableError(`missing field ${key}`)
  const v = o[key]
  if (typeof v !== 'string' || !RFC3339.test(v) || Number.isNaN(Date.parse(v))) {
    throw new UndecodableError(`bad ${key}`)
  }
}

function optTs (o: Obj, key: string): string | null {
  if (o[key] === undefined || o[key] === null) return null
  timestamp(o, key)
  return o[key] as string
}

function isResultError (e: unknown): e is ResultError {
  return isObj(e) && nonEmpty(e.type) && typeof e.message === 'string' && typeof e.retryable === 'boolean'
}
