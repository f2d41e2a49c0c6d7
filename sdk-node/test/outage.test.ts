/**
 * R2.2 item 2 against a Kafka outage longer than the producer's delivery limit (@platformatic/kafka
 * gives up a send after 3 retries 1 s apart): jobs that finish while the broker is down are answered
 * once it is back, and no partition's commits stay frozen. Runs on a private broker (test/broker.ts),
 * never the shared one; skipped, saying why, when the broker jars are not on this machine.
 */
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import assert from 'node:assert/strict'
import { Worker } from '../src/index.js'
import { kafkaLib, PrivateBroker } from './broker.js'
import { KafkaScope, eventually, makeJob, memoryLogger } from './helpers.js'

const lib = kafkaLib()
const OUTAGE_MS = 10_000

test('answers jobs that finished during a Kafka outage and commits past them once it is back', { skip: lib === undefined ? 'no Kafka jars (BATON_KAFKA_LIB or <main checkout>/.stack/kafka-lib)' : false }, async (t) => {
  const broker = new PrivateBroker(lib as string)
  t.after(async () => { await broker.close() })
  await broker.start()
  const k = await KafkaScope.open(t, broker.bootstrap)
  await k.createTopics(['jobs.slow'], 2)
  const logger = memoryLogger()
  const w = new Worker({ bootstrapServers: broker.bootstrap, groupId: k.group, topicPrefix: k.prefix, logger, handleSignals: false, topicPartitions: 2, concurrency: 4 })
  t.after(async () => { await w.stop(1000) })
  let release: () => void = () => {}
  const released = new Promise<void>((resolve) => { release = resolve })
  const started = new Set<string>()
  w.register('slow', async (_payload, ctx) => {
    started.add(ctx.jobId)
    await released
    return 'after the outage'
  })
  await w.start()
  const during = Array.from({ length: 4 }, (_, i) => makeJob('slow', i))
  await k.produce('jobs.slow', during, undefined, (i) => i % 2)
  await eventually(() => started.size === 4, 20_000, '4 jobs running')

  await broker.kill()
  release() // the jobs finish while Kafka is down
  // The outage itself, not a wait for a condition: longer than the client's ~4 s delivery limit.
  await sleep(OUTAGE_MS)
  await broker.start()

  await eventually(async () => await k.committed('jobs.slow').catch(() => -1n) === 4n, 90_000, 'the 4 jobs committed after the outage')
  const after = Array.from({ length: 4 }, (_, i) => makeJob('slow', i))
  await k.produce('jobs.slow', after, undefined, (i) => i % 2)
  await eventually(async () => await k.committed('jobs.slow') === 8n, 30_000, 'commits keep moving on both partitions')
  const results = await k.readJson('results', 8, 30_000)
  assert.deepEqual(new Set(results.map((r) => r.job_id)), new Set([...during, ...after].map((j) => j.job_id)))
  await w.stop(1000)
})
