import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { NonRetryableError, RetryLater, Worker, type JobContext, type WorkerOptions } from '../src/index.js'
import { BOOTSTRAP, KafkaScope, headerMap, makeJob, memoryLogger, schemaErrors } from './helpers.js'

function worker (t: TestContext, k: KafkaScope, options: WorkerOptions = {}): Worker {
  const w = new Worker({ bootstrapServers: BOOTSTRAP, groupId: k.group, topicPrefix: k.prefix, logger: memoryLogger(), handleSignals: false, topicPartitions: 2, ...options })
  t.after(async () => { await w.stop(1000) })
  return w
}

test('completes a job with the original example when a string job arrives', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.step1'], 2)
  const job = makeJob('step1', 'Hello World')
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'
  await k.produce('jobs.step1', [job], { traceparent })
  const w = worker(t, k)
  w.register('step1', (payload) => `Node processed: ${payload}`)
  assert.deepEqual(await w.runUntilIdle({ timeoutMs: 20_000 }), { completed: 1, failed: 0, deadLettered: 0 })

  const [record] = await k.read('results', 1)
  assert.ok(record !== undefined)
  const result = JSON.parse(record.value.toString('utf8'))
  assert.equal(schemaErrors('result', result), '')
  assert.equal(record.key.toString('utf8'), job.run_id)
  assert.equal(headerMap(record).get('baton-job-id')?.toString('utf8'), job.job_id)
  assert.equal(headerMap(record).get('traceparent')?.toString('utf8'), traceparent)
  assert.deepEqual({ ...result, worker: undefined, started_at: undefined, finished_at: undefined }, {
    v: 1, job_id: job.job_id, run_id: job.run_id, step: 'step-a', attempt: 1, status: 'COMPLETED',
    output: 'Node processed: Hello World', error: null, worker: undefined, started_at: undefined, finished_at: undefined
  })
  assert.match(result.worker.id, /^node-.+-\d+-[0-9a-f]{4}$/)
  assert.deepEqual([result.worker.language, result.worker.sdk_version], ['node', '0.1.0'])
  assert.match(result.finished_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
  assert.equal(await k.committed('jobs.step1'), 1n, 'offset committed after the result')
})

test('awaits sync and async handlers and passes a populated ctx', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.sync', 'jobs.async'])
  const a = makeJob('sync', { n: 1 })
  const b = makeJob('async', { n: 2 }, { attempt: 2, step: 'enrich' })
  await k.produce('jobs.sync', [a])
  await k.produce('jobs.async', [b])
  const seen: JobContext[] = []
  const w = worker(t, k)
  w.register('sync', (payload: { n: number }) => ({ doubled: payload.n * 2 }))
  w.register('async', async (payload: { n: number }, ctx) => {
    seen.push(ctx)
    await sleep(20)
    return { doubled: payload.n * 2 }
  })
  assert.equal((await w.runUntilIdle({ timeoutMs: 20_000 })).completed, 2)
  const results = await k.readJson('results', 2)
  const outputs = new Map(results.map((r) => [r.job_id, r.output]))
  assert.deepEqual(outputs.get(a.job_id), { doubled: 2 })
  assert.deepEqual(outputs.get(b.job_id), { doubled: 4 })
  const ctx = seen[0]
  assert.ok(ctx !== undefined)
  assert.deepEqual([ctx.jobId, ctx.runId, ctx.step, ctx.action, ctx.attempt, ctx.maxAttempts, ctx.workflowId],
    [b.job_id, b.run_id, 'enrich', 'async', 2, 4, 'wf-test'])
  assert.equal(ctx.idempotencyKey, `${b.run_id}:enrich`)
  assert.equal(ctx.deadline.toISOString(), b.deadline)
  assert.equal(ctx.signal.aborted, false)
})

test('overlaps jobs up to concurrency and never beyond it', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.slow'], 2)
  await k.produce('jobs.slow', Array.from({ length: 9 }, (_, i) => makeJob('slow', i)))
  let running = 0
  let peak = 0
  const w = worker(t, k, { concurrency: 3 })
  w.register('slow', async () => {
    peak = Math.max(peak, ++running)
    await sleep(150)
    running--
  })
  assert.equal((await w.runUntilIdle({ timeoutMs: 20_000 })).completed, 9)
  assert.equal(peak, 3)
})

test('reports RetryLater, NonRetryableError and plain throws as FAILED results', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.later', 'jobs.never', 'jobs.oops', 'jobs.big'])
  const jobs = { later: makeJob('later', null), never: makeJob('never', null), oops: makeJob('oops', null), big: makeJob('big', null) }
  for (const [action, job] of Object.entries(jobs)) await k.produce(`jobs.${action}`, [job])
  const w = worker(t, k, { maxPayloadBytes: 64 })
  w.register('later', () => { throw new RetryLater(1500) })
  w.register('never', async () => { throw new NonRetryableError('card declined') })
  w.register('oops', () => { throw new TypeError('boom') })
  w.register('big', () => 'x'.repeat(100))
  assert.deepEqual(await w.runUntilIdle({ timeoutMs: 20_000 }), { completed: 0, failed: 4, deadLettered: 0 })
  const byJob = new Map((await k.readJson('results', 4)).map((r) => [r.job_id, r]))
  const error = (job: { job_id: string }): Record<string, unknown> => {
    const r = byJob.get(job.job_id)
    assert.equal(r.status, 'FAILED')
    assert.equal(schemaErrors('result', r), '')
    return r.error
  }
  assert.deepEqual([error(jobs.later).type, error(jobs.later).retryable, error(jobs.later).retry_after_ms], ['RetryLater', true, 1500])
  assert.deepEqual([error(jobs.never).type, error(jobs.never).retryable, error(jobs.never).message], ['NonRetryableError', false, 'card declined'])
  assert.deepEqual([error(jobs.oops).type, error(jobs.oops).retryable], ['TypeError', true])
  assert.match(String(error(jobs.oops).stacktrace), /TypeError: boom/)
  assert.deepEqual([error(jobs.big).type, error(jobs.big).retryable], ['PayloadTooLarge', false])
  assert.equal(await k.committed('jobs.later') + await k.committed('jobs.never'), 2n)
})

test('sends a poison job to the DLT with headers and still runs the next job', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.step1'])
  const good = makeJob('step1', 'after poison')
  await k.produce('jobs.step1', ['{not json', good])
  const w = worker(t, k)
  w.register('step1', (payload) => `Node processed: ${payload}`)
  assert.deepEqual(await w.runUntilIdle({ timeoutMs: 20_000 }), { completed: 1, failed: 0, deadLettered: 1 })

  const [dlt] = await k.read('jobs.DLT', 1)
  assert.ok(dlt !== undefined)
  assert.equal(dlt.value.toString('utf8'), '{not json', 'original bytes, unchanged')
  const h = headerMap(dlt)
  assert.equal(h.get('kafka_dlt-original-topic')?.toString(), k.topic('jobs.step1'))
  assert.equal(h.get('kafka_dlt-original-partition')?.readInt32BE(), 0)
  assert.equal(h.get('kafka_dlt-original-offset')?.readBigInt64BE(), 0n)
  assert.ok((h.get('kafka_dlt-original-timestamp')?.readBigInt64BE() ?? 0n) > 0n)
  assert.equal(h.get('kafka_dlt-original-consumer-group')?.toString(), k.group)
  assert.equal(h.get('kafka_dlt-exception-fqcn')?.toString(), 'Undecodable')
  assert.equal(h.get('kafka_dlt-exception-message')?.toString(), 'malformed JSON')
  assert.equal(h.get('baton-dlt-reason')?.toString(), 'undecodable')
  const [result] = await k.readJson('results', 1)
  assert.equal(result.output, 'Node processed: after poison')
  assert.equal(await k.committed('jobs.step1'), 2n)
})

test('publishes HEARTBEAT results and moves the deadline when a handler heartbeats', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.long'])
  const job = makeJob('long', null, { timeout_ms: 600_000 })
  await k.produce('jobs.long', [job])
  let deadlines: Date[] = []
  const w = worker(t, k)
  w.register('long', (_payload, ctx) => {
    deadlines = [ctx.deadline]
    ctx.heartbeat()
    deadlines.push(ctx.deadline)
    return 'done'
  })
  await w.runUntilIdle({ timeoutMs: 20_000 })
  const results = await k.readJson('results', 2)
  assert.deepEqual(results.map((r) => r.status).sort(), ['COMPLETED', 'HEARTBEAT'])
  for (const r of results) assert.equal(schemaErrors('result', r), '')
  assert.ok((deadlines[1]?.getTime() ?? 0) > Date.now() + 500_000, 'deadline moved to now + timeout_ms')
})

test('creates its topics and announces RUNNING then STOPPED presence', async (t) => {
  const k = await KafkaScope.open(t)
  const w = worker(t, k, { topicPartitions: 3 })
  w.register('a.b', () => null)
  await w.start()
  const topics = await k.admin.listTopics()
  for (const s of ['jobs.a.b', 'results', 'jobs.DLT', 'workers']) assert.ok(topics.includes(k.topic(s)), s)
  const meta = await k.admin.metadata({ topics: [k.topic('jobs.a.b')] })
  assert.equal(meta.topics.get(k.topic('jobs.a.b'))?.partitionsCount, 3)
  await w.stop()
  const beats = await k.readJson('workers', 2)
  assert.deepEqual(beats.map((b) => b.status), ['RUNNING', 'STOPPED'])
  for (const b of beats) {
    assert.equal(schemaErrors('worker-heartbeat', b), '')
    assert.equal(b.worker_id, w.id)
    assert.deepEqual(b.actions, ['a.b'])
  }
})

test('creates its topics with the configured replication factor and min in-sync replicas', async (t) => {
  const k = await KafkaScope.open(t)
  const w = worker(t, k, { topicReplicationFactor: 1, topicMinInsyncReplicas: 1 })
  w.register('isr', () => null)
  await w.start()
  const [described] = await k.admin.describeConfigs({ resources: [{ resourceType: 2, resourceName: k.topic('jobs.isr'), configurationKeys: ['min.insync.replicas'] }] })
  const isr = described?.configs.find((c) => c.name === 'min.insync.replicas')
  assert.deepEqual([isr?.value, isr?.configSource], ['1', 1], 'set on the topic (source TOPIC_CONFIG), not the broker default')
  await w.stop()
})

test('rejects start() when the broker refuses the replication factor (no waiting for it)', async (t) => {
  const k = await KafkaScope.open(t)
  const w = worker(t, k, { topicReplicationFactor: 3 })
  w.register('rf', () => null)
  await assert.rejects(w.start(), (err: unknown) => /INVALID_REPLICATION_FACTOR|replication factor/i.test(JSON.stringify(err, Object.getOwnPropertyNames(err)) + String(err)))
})

test('does not run a job twice in the same group once its offset is committed', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.once'], 2)
  await k.produce('jobs.once', [makeJob('once', 1), makeJob('once', 2)])
  const first = worker(t, k)
  first.register('once', () => 'ok')
  assert.equal((await first.runUntilIdle({ timeoutMs: 20_000 })).completed, 2)
  const second = worker(t, k)
  second.register('once', () => 'again')
  assert.equal((await second.runUntilIdle({ timeoutMs: 20_000 })).completed, 0)
})
