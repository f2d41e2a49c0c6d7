/**
 * Two Node workers with different action sets in ONE consumer group (the polyglot deployment shape,
 * DESIGN §2): every job must run on a worker that registered its action, none may be dead-lettered,
 * whichever worker is the group leader (the leader computes the assignment).
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { Consumer } from '@platformatic/kafka'
import { Worker } from '../src/index.js'
import { BOOTSTRAP, KafkaScope, makeJob, memoryLogger } from './helpers.js'

const ACTIONS = { A: ['x', 'shared'], B: ['y', 'shared'] } as const

function worker (k: KafkaScope, actions: readonly string[]): Worker {
  const w = new Worker({ bootstrapServers: BOOTSTRAP, groupId: k.group, topicPrefix: k.prefix, logger: memoryLogger(), handleSignals: false, topicPartitions: 3 })
  for (const action of actions) w.register(action, (payload: unknown, ctx) => ({ action: ctx.action, payload }))
  return w
}

async function endOffsetSum (topic: string): Promise<bigint> {
  const consumer = new Consumer({ clientId: 'baton-test-offsets', groupId: `${topic}-offsets`, bootstrapBrokers: [BOOTSTRAP] })
  try {
    const offsets = await consumer.listOffsets({ topics: [topic] })
    return [...offsets.values()].flat().reduce((a, b) => a + b, 0n)
  } finally {
    await consumer.close(true)
  }
}

for (const first of ['A', 'B'] as const) {
  test(`runs every job on a worker that registered its action when worker ${first} joins first (leader)`, async (t) => {
    const k = await KafkaScope.open(t)
    const second = first === 'A' ? 'B' : 'A'
    const workers = { [first]: worker(k, ACTIONS[first]), [second]: worker(k, ACTIONS[second]) } as Record<'A' | 'B', Worker>
    // Stopped here, before the scope's after() hook deletes the topics under them.
    try {
      await check(k, first, second, workers)
    } finally {
      await Promise.all([workers.A.stop(2000), workers.B.stop(2000)])
    }
  })
}

async function check (k: KafkaScope, first: 'A' | 'B', second: 'A' | 'B', workers: Record<'A' | 'B', Worker>): Promise<void> {
  // start() resolves after the worker's first join; the second join completes only once the
  // first member has rejoined, so both hold their final assignment afterwards.
  await workers[first].start()
  await workers[second].start()

  const jobs = ['x', 'y', 'shared'].flatMap((action) => Array.from({ length: 6 }, (_, i) => makeJob(action, i)))
  // Two jobs on each partition: keyed by random run ids, all six shared jobs landed on one member's
  // partitions about one run in eleven, and the both-workers assertion below failed by chance.
  for (const action of ['x', 'y', 'shared']) {
    await k.produce(`jobs.${action}`, jobs.filter((j) => j.action === action), undefined, (i) => i % 3)
  }

  const results = await k.readJson('results', jobs.length, 30_000)
  const byJob = new Map<string, Array<{ status: string, worker: { id: string } }>>()
  for (const r of results) byJob.set(r.job_id, [...(byJob.get(r.job_id) ?? []), r])
  const owners = { [workers.A.id]: 'A', [workers.B.id]: 'B' } as Record<string, 'A' | 'B'>
  const ranShared = new Set<string>()
  for (const job of jobs) {
    const got = byJob.get(job.job_id) ?? []
    assert.equal(got.length, 1, `job ${job.action} has exactly one result`)
    const [result] = got
    assert.equal(result?.status, 'COMPLETED')
    const owner = owners[result?.worker.id ?? '']
    assert.ok(owner !== undefined, `job ${job.action} ran on an unknown worker ${result?.worker.id}`)
    assert.ok((ACTIONS[owner] as readonly string[]).includes(job.action), `job ${job.action} ran on worker ${owner}`)
    if (job.action === 'shared') ranShared.add(owner)
  }
  assert.equal(ranShared.size, 2, 'both workers consume the shared action (3 partitions over 2 members)')
  assert.equal(await endOffsetSum(k.topic('jobs.DLT')), 0n, 'nothing dead-lettered')
}
