import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { decodeJob, decodeResult, decodeWorkerHeartbeat, encodeResult, encodeWorkerHeartbeat, UndecodableError } from '../src/protocol.js'
import { encodeOutput, errorFor } from '../src/execute.js'
import { NonRetryableError, PayloadTooLarge, RetryLater, SerializationError } from '../src/index.js'
import { REPO_ROOT, schemaErrors } from './helpers.js'

interface Valid { name: string, raw: string, expect: Record<string, unknown> }
interface Invalid { name: string, raw: string, reason: string }
interface Section { valid: Valid[], invalid: Invalid[] }
const vectors = JSON.parse(readFileSync(new URL('protocol/vectors/vectors.json', REPO_ROOT), 'utf8')) as
  { jobs: Section, results: Section, worker_heartbeats: Section }

const decoders = { jobs: decodeJob, results: decodeResult, worker_heartbeats: decodeWorkerHeartbeat }

for (const [section, decode] of Object.entries(decoders) as Array<[keyof typeof decoders, (raw: string) => unknown]>) {
  for (const v of vectors[section].valid) {
    test(`decodes ${section} vector '${v.name}' when valid`, () => {
      assert.deepEqual(decode(v.raw), v.expect)
    })
  }
  for (const v of vectors[section].invalid) {
    test(`rejects ${section} vector '${v.name}' as undecodable`, () => {
      assert.throws(() => decode(v.raw), UndecodableError)
    })
  }
}

test('decodes a job from a Buffer with non-ASCII input', () => {
  const v = vectors.jobs.valid[1]
  assert.ok(v !== undefined)
  assert.deepEqual(decodeJob(Buffer.from(v.raw, 'utf8')), v.expect)
})

test('re-encoded result vectors validate against result.schema.json', () => {
  for (const v of vectors.results.valid) {
    const { output, ...rest } = decodeResult(v.raw)
    const encoded = JSON.parse(encodeResult(rest, JSON.stringify(output))) as unknown
    assert.equal(schemaErrors('result', encoded), '', v.name)
    assert.deepEqual(encoded, decodeResult(v.raw), v.name)
  }
})

const base = {
  v: 1 as const,
  job_id: 'j1',
  run_id: 'r1',
  step: 's',
  attempt: 1,
  worker: { id: 'node-h-1-abcd', language: 'node', sdk_version: '0.1.0' },
  started_at: '2026-11-23T15:00:00.010Z',
  finished_at: '2026-11-23T15:00:00.012Z'
}

test('encoded results validate against the schema for every outcome', () => {
  const outcomes = [
    encodeOutput({ a: [1, 'ü'] }, 1024),
    encodeOutput(undefined, 1024),
    encodeOutput(10n, 1024),
    encodeOutput('x'.repeat(100), 10),
    { status: 'FAILED' as const, error: errorFor(new NonRetryableError('no')) },
    { status: 'FAILED' as const, error: errorFor(new RetryLater(1500)) },
    { status: 'FAILED' as const, error: errorFor(new TypeError('boom')) },
    { status: 'FAILED' as const, error: errorFor('a string') }
  ]
  for (const o of outcomes) {
    const json = o.status === 'COMPLETED' ? encodeResult({ ...base, status: 'COMPLETED', error: null }, o.outputJson)
      : encodeResult({ ...base, status: 'FAILED', error: o.error })
    assert.equal(schemaErrors('result', JSON.parse(json)), '', json)
    decodeResult(json)
  }
  const heartbeat = encodeResult({ ...base, status: 'HEARTBEAT', error: null, started_at: null })
  assert.equal(schemaErrors('result', JSON.parse(heartbeat)), '')
})

test('encoded worker heartbeats validate against worker-heartbeat.schema.json', () => {
  const hb = {
    v: 1 as const, worker_id: 'node-h-1-abcd', language: 'node', sdk_version: '0.1.0', hostname: 'h', pid: 1,
    group_id: 'g', actions: ['a'], concurrency: 8, in_flight: 0, status: 'STOPPED' as const,
    started_at: '2026-11-23T15:00:00.000Z', sent_at: '2026-11-23T15:00:05.000Z'
  }
  assert.equal(schemaErrors('worker-heartbeat', JSON.parse(encodeWorkerHeartbeat(hb))), '')
})

test('maps handler errors to error.type, retryable and retry_after_ms', () => {
  assert.deepEqual({ ...errorFor(new NonRetryableError('bad')), stacktrace: null },
    { type: 'NonRetryableError', message: 'bad', stacktrace: null, retryable: false })
  const later = errorFor(new RetryLater(1500))
  assert.equal(later.type, 'RetryLater')
  assert.equal(later.retryable, true)
  assert.equal(later.retry_after_ms, 1500)
  const type = errorFor(new TypeError('boom'))
  assert.equal(type.type, 'TypeError')
  assert.equal(type.retryable, true)
  assert.match(type.stacktrace ?? '', /TypeError: boom/)
  assert.deepEqual(errorFor(42), { type: 'Error', message: '42', stacktrace: null, retryable: true })
})

test('fails unserialisable and oversize outputs with non-retryable SDK errors', () => {
  const big = encodeOutput('x'.repeat(100), 50)
  assert.equal(big.status, 'FAILED')
  assert.equal(big.status === 'FAILED' && big.error.type, 'PayloadTooLarge')
  assert.equal(big.status === 'FAILED' && big.error.retryable, false)
  const cyclic: Record<string, unknown> = {}
  cyclic.self = cyclic
  for (const bad of [10n, cyclic, () => 1, Symbol('s')]) {
    const o = encodeOutput(bad, 1024)
    assert.equal(o.status === 'FAILED' && o.error.type, 'SerializationError')
  }
  assert.deepEqual(encodeOutput(undefined, 10), { status: 'COMPLETED', outputJson: 'null' })
  assert.equal(new PayloadTooLarge('x').code, 'BATON_PAYLOAD_TOO_LARGE')
  assert.equal(new SerializationError('x').code, 'BATON_SERIALIZATION')
})
