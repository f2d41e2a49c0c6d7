/**
 * Deadlines in the worker (R2.2 item 3): past a job's deadline plus the grace, the worker answers
 * the job `Timeout`, commits past it and (up to `maxAbandoned`) frees the slot, so handlers that
 * never return cannot freeze a worker that "looks healthy but does nothing".
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Worker, type WorkerOptions } from '../src/index.js'
import { BOOTSTRAP, KafkaScope, eventually, makeJob, memoryLogger, schemaErrors } from './helpers.js'

const STEP_TIMEOUT_MS = 1000
const GRACE_MS = 300
const TIMEOUT_MESSAGE = /^handler still running \d+ ms after the job's deadline \(grace 300 ms\); abandoned$/

function worker (t: TestContext, k: KafkaScope, options: WorkerOptions = {}): Worker {
  const w = new Worker({ bootstrapServers: BOOTSTRAP, groupId: k.group, topicPrefix: k.prefix, logger: memoryLogger(), handleSignals: false, topicPartitions: 2, deadlineGraceMs: GRACE_MS, presenceIntervalMs: 200, ...options } as WorkerOptions)
  t.after(async () => { await w.stop(1000) })
  return w
}

function hangingJob (): ReturnType<typeof makeJob> {
  return makeJob('work', { hang: true }, { deadline: new Date(Date.now() + STEP_TIMEOUT_MS).toISOString(), timeout_ms: STEP_TIMEOUT_MS })
}

async function runHangThenNormal (t: TestContext, options: WorkerOptions, cooperative = true): Promise<{ k: KafkaScope, w: Worker, hung: string[], aborted: unknown[], elapsedMs: number }> {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.work'], 2)
  const hanging = [hangingJob(), hangingJob()]
  const normal = Array.from({ length: 20 }, (_, i) => makeJob('work', { i }))
  // The two hanging jobs first, one per partition, so every normal job queues behind one.
  await k.produce('jobs.work', [...hanging, ...normal], undefined, (i) => i % 2)
  const hung: string[] = []
  const aborted: unknown[] = []
  const w = worker(t, k, options)
  w.register('work', async (payload: { hang?: boolean }, ctx) => {
    if (payload.hang !== true) return 'done'
    hung.push(ctx.jobId)
    // One cooperates with ctx.signal (and settles when it fires), the other never returns.
    if (cooperative && hung.length === 1) await new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => { aborted.push(ctx.signal.reason); reject(ctx.signal.reason) }))
    else await new Promise(() => {})
  })
  const started = Date.now()
  await w.start()
  await eventually(async () => await k.committed('jobs.work') === 22n, 15_000, 'all 22 offsets committed')
  return { k, w, hung, aborted, elapsedMs: Date.now() - started }
}

test('answers Timeout and frees the slots of two handlers that never return so 20 jobs behind them complete', async (t) => {
  const { k, w, hung, aborted, elapsedMs } = await runHangThenNormal(t, { concurrency: 2 })
  assert.equal(hung.length, 2)
  assert.ok(elapsedMs < 4 * (STEP_TIMEOUT_MS + GRACE_MS) + 5000, `finished in ${elapsedMs} ms`)
  const results = await k.readJson('results', 22)
  const timeouts = results.filter((r) => r.status === 'FAILED')
  assert.equal(results.filter((r) => r.status === 'COMPLETED').length, 20)
  assert.deepEqual(timeouts.map((r) => r.job_id).sort(), [...hung].sort())
  for (const r of timeouts) {
    assert.equal(schemaErrors('result', r), '')
    assert.deepEqual([r.error.type, r.error.retryable], ['Timeout', true])
    assert.match(r.error.message, TIMEOUT_MESSAGE)
  }
  assert.equal((aborted[0] as Error).name, 'TimeoutError', 'ctx.signal fired with a Timeout reason')
  assert.deepEqual(w.report, { completed: 20, failed: 2, deadLettered: 0 })
  // The cooperative handler settled; the other still runs and shows up as a stuck slot.
  const beats = await k.readJson('workers', 1)
  await eventually(async () => (await k.readJson('workers', beats.length + 3)).some((b) => b.stuck_slots === 1), 10_000, 'a heartbeat with stuck_slots 1')
  await w.stop(1000) // before the scope deletes the topics
})

test('answers Timeout but keeps the slot taken past maxAbandoned', async (t) => {
  const { k, w } = await runHangThenNormal(t, { concurrency: 3, maxAbandoned: 1 } as WorkerOptions, false)
  const timeouts = (await k.readJson('results', 22)).filter((r) => r.status === 'FAILED')
  assert.deepEqual(timeouts.map((r) => r.error.type), ['Timeout', 'Timeout'])
  assert.equal(w.inFlight, 1, 'the handler past the cap still holds its slot')
  const beats = await k.readJson('workers', 1)
  await eventually(async () => (await k.readJson('workers', beats.length + 3)).some((b) => b.stuck_slots === 2), 10_000, 'a heartbeat with stuck_slots 2')
  await w.stop(1000) // before the scope deletes the topics
})
