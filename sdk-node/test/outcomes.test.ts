/**
 * R2.2 "workers never freeze": whatever a handler throws or returns, its job ends in exactly one
 * result, its offset is committed, and the jobs behind it on the same partitions still run. A
 * restarted worker in the same group then runs nothing again (the commits moved past every job).
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Worker, type WorkerOptions } from '../src/index.js'
import { bookkeepingOf } from '../src/worker.js'
import { BOOTSTRAP, KafkaScope, headerMap, makeJob, memoryLogger, schemaErrors, type Record_ } from './helpers.js'

// Kafka's default topic limit (message.max.bytes); the shared broker allows more, the SDK must not rely on that.
const KAFKA_DEFAULT_LIMIT = { 'max.message.bytes': '1048588' }

function worker (t: TestContext, k: KafkaScope, options: WorkerOptions = {}): Worker {
  const w = new Worker({ bootstrapServers: BOOTSTRAP, groupId: k.group, topicPrefix: k.prefix, logger: memoryLogger(), handleSignals: false, topicPartitions: 2, ...options })
  t.after(async () => { await w.stop(1000) })
  return w
}

class ToStringThrows {
  toString (): string { throw new Error('toString exploded') }
}

// Each kind is one odd outcome; `ok` jobs follow them on the same partitions.
const BEHAVIOURS: Record<string, () => unknown> = {
  hugeMessage: () => { throw new Error('m'.repeat(1_200_000)) },
  nullProto: () => { throw Object.create(null) },
  toStringThrows: () => { throw new ToStringThrows() },
  rejectsUndefined: async () => { throw undefined }, // eslint-disable-line no-throw-literal
  bigint: () => ({ n: 1n }),
  loneSurrogate: () => ({ text: 'bad \ud800 half' }),
  overLimit: () => 'x'.repeat(1_100_000),
  // Under maxPayloadBytes (1 MiB) but, with the envelope around it, over the topic's limit.
  overTopicLimit: () => 'y'.repeat(1_048_570),
  ok: () => 'fine'
}

const EXPECTED_TYPE: Record<string, string> = {
  hugeMessage: 'Error',
  nullProto: 'Error',
  toStringThrows: 'Error',
  rejectsUndefined: 'Error',
  bigint: 'SerializationError',
  loneSurrogate: 'SerializationError',
  overLimit: 'PayloadTooLarge',
  overTopicLimit: 'PayloadTooLarge'
}

test('answers every odd outcome with one result and commits past it when handlers throw or return anything', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.odd'], 2)
  await k.createTopics(['results'], 2, KAFKA_DEFAULT_LIMIT)
  const odd = Object.keys(EXPECTED_TYPE).map((kind) => makeJob('odd', { kind }))
  const normal = Array.from({ length: 10 }, () => makeJob('odd', { kind: 'ok' }))
  const jobs = [...odd, ...normal]
  await k.produce('jobs.odd', jobs, undefined, (i) => i % 2)
  const ran: string[] = []
  const first = worker(t, k, { concurrency: 4 })
  first.register('odd', (payload: { kind: string }, ctx) => {
    ran.push(ctx.jobId)
    return BEHAVIOURS[payload.kind]?.()
  })
  const report = await first.runUntilIdle({ timeoutMs: 30_000 })
  assert.deepEqual(report, { completed: normal.length, failed: odd.length, deadLettered: 0 })

  const results = await k.readJson('results', jobs.length)
  assert.equal(results.length, jobs.length, 'exactly one result per job')
  const byJob = new Map(results.map((r) => [r.job_id, r]))
  for (const job of odd) {
    const r = byJob.get(job.job_id)
    const kind = (job.input as { kind: string }).kind
    assert.equal(schemaErrors('result', r), '', kind)
    assert.deepEqual([r.status, r.error.type], ['FAILED', EXPECTED_TYPE[kind]], kind)
    assert.ok(Buffer.byteLength(r.error.message) <= 4096, `${kind}: message within 4,096 bytes`)
    assert.ok(Buffer.byteLength(r.error.stacktrace ?? '') <= 16_384, `${kind}: stack within 16,384 bytes`)
  }
  const huge = byJob.get(odd[0]?.job_id ?? '').error
  assert.match(huge.message, /^m+ …\[cut \d+ bytes\]$/)
  assert.match(huge.stacktrace, / …\[cut \d+ bytes\]$/)
  for (const job of normal) assert.deepEqual([byJob.get(job.job_id).status, byJob.get(job.job_id).output], ['COMPLETED', 'fine'])
  assert.equal(await k.committed('jobs.odd'), BigInt(jobs.length), 'commits moved past every job')

  const second = worker(t, k)
  second.register('odd', (_payload, ctx) => { ran.push(ctx.jobId) })
  assert.deepEqual(await second.runUntilIdle({ timeoutMs: 20_000 }), { completed: 0, failed: 0, deadLettered: 0 })
  assert.equal(new Set(ran).size, ran.length, 'no job ran twice')
})

test('keeps its per-job bookkeeping bounded over 3,000 jobs of every outcome', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.mix'], 2)
  const kinds = ['ok', 'throws', 'nullProto', 'bigint', 'undecodable']
  const values = Array.from({ length: 3000 }, (_, i) => {
    if (i % 50 === 0) return makeJob('mix', { kind: 'timeout' }, { deadline: new Date(Date.now() - 1000).toISOString() })
    const kind = kinds[i % kinds.length] as string
    return kind === 'undecodable' ? '{"v":1,"broken":' : makeJob('mix', { kind })
  })
  await k.produce('jobs.mix', values, undefined, (i) => i % 2)
  const concurrency = 8
  const w = worker(t, k, { concurrency, deadlineGraceMs: 20 })
  w.register('mix', async (payload: { kind: string }, ctx) => {
    if (payload.kind === 'timeout') return await new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason)))
    if (payload.kind === 'throws') throw new Error('no')
    if (payload.kind === 'nullProto') throw Object.create(null)
    return payload.kind === 'bigint' ? 1n : 'ok'
  })
  let peak = 0
  const sampler = setInterval(() => { peak = Math.max(peak, bookkeepingOf(w).offsets ?? 0) }, 5)
  t.after(() => clearInterval(sampler))
  const report = await w.runUntilIdle({ timeoutMs: 60_000 })
  clearInterval(sampler)
  assert.equal(report.completed + report.failed + report.deadLettered, values.length)
  assert.equal(report.deadLettered, values.filter((v) => typeof v === 'string').length)
  assert.equal(await k.committed('jobs.mix'), BigInt(values.length))
  assert.ok(peak <= 2 * concurrency, `at most ${peak} offsets held at once`)
  assert.deepEqual(bookkeepingOf(w), { offsets: 0, partitions: 2, contexts: 0, stuck: 0, heartbeats: 0 })
})

test('completes results that fit one by one when their batch is too large, and dead-letters an oversize poison job by its headers', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.fit'], 1)
  await k.createTopics(['results'], 1, { 'max.message.bytes': '100000' })
  await k.createTopics(['jobs.DLT'], 1, { 'max.message.bytes': '2000' })
  const jobs = Array.from({ length: 6 }, (_, i) => makeJob('fit', i))
  const poison = `{"v":1,"junk":"${'j'.repeat(5000)}"`
  await k.produce('jobs.fit', [...jobs, poison])
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => { release = resolve })
  let started = 0
  const w = worker(t, k, { concurrency: 6 })
  w.register('fit', async () => {
    if (++started === 6) release()
    await released // all six finish together, so their results queue into one batch
    return 'r'.repeat(60_000)
  })
  assert.deepEqual(await w.runUntilIdle({ timeoutMs: 30_000 }), { completed: 6, failed: 0, deadLettered: 1 })
  const results = await k.readJson('results', 6)
  assert.deepEqual(results.map((r) => r.status), Array(6).fill('COMPLETED'))
  const [dlt] = await k.read('jobs.DLT', 1)
  assert.equal(dlt?.value?.length ?? 0, 0, 'the value is dropped, the headers kept')
  assert.match(headerMap(dlt as Record_).get('kafka_dlt-exception-message')?.toString() ?? '', /original value dropped: too large/)
  assert.ok(headerMap(dlt as Record_).has('baton-dlt-value-dropped'), 'the same header as the other SDKs')
  assert.equal(await k.committed('jobs.fit'), 7n)
})
