// Jobs/s of one Node worker with a no-op handler against the local Kafka.
// Pre-produces N jobs, then times runUntilIdle() draining them (results acknowledged, offsets
// committed). Usage: npm run bench [-- N CONCURRENCY]   (defaults 20000 jobs, concurrency 8)
import { randomUUID } from 'node:crypto'
import { Admin, Producer, compatibilityPartitioner } from '@platformatic/kafka'
import { Worker } from '../dist/src/index.js'

const n = Number(process.argv[2] ?? 20_000)
const concurrency = Number(process.argv[3] ?? 8)
const bootstrap = process.env.BATON_KAFKA_BOOTSTRAP_SERVERS ?? '127.0.0.1:9092'
const prefix = `bench-${randomUUID()}-`
const topic = `${prefix}jobs.noop`
const admin = new Admin({ clientId: 'baton-bench', bootstrapBrokers: [bootstrap] })
const producer = new Producer({ clientId: 'baton-bench', bootstrapBrokers: [bootstrap], idempotent: true, partitioner: compatibilityPartitioner })
const silent = { debug () {}, info () {}, warn () {}, error (m, f) { process.stderr.write(`${m} ${JSON.stringify(f)}\n`) } }

try {
  await admin.createTopics({ topics: [topic], partitions: 6, replicas: 1 })
  const now = new Date()
  for (let i = 0; i < n; i += 1000) {
    const messages = []
    for (let j = i; j < Math.min(n, i + 1000); j++) {
      const runId = randomUUID()
      const job = { v: 1, job_id: randomUUID(), run_id: runId, workflow_id: 'bench', workflow_version: 1, step: 'noop', action: 'noop', attempt: 1, max_attempts: 4, input: { i: j }, deadline: new Date(now.getTime() + 300_000).toISOString(), timeout_ms: 300_000, created_at: now.toISOString() }
      messages.push({ topic, key: Buffer.from(runId), value: Buffer.from(JSON.stringify(job)) })
    }
    await producer.send({ messages }) // sequential: see src/_publisher.ts
  }
  const worker = new Worker({ bootstrapServers: bootstrap, groupId: `${prefix}group`, topicPrefix: prefix, concurrency, logger: silent, handleSignals: false })
  worker.register('noop', () => null)
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const report = await worker.runUntilIdle({ timeoutMs: 600_000 })
  const seconds = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  const cpuPerJobUs = (cpu.user + cpu.system) / report.completed
  console.log(JSON.stringify({ jobs: n, concurrency, completed: report.completed, seconds: +seconds.toFixed(2), jobs_per_s: Math.round(report.completed / seconds), cpu_us_per_job: Math.round(cpuPerJobUs) }))
  if (report.completed !== n) process.exitCode = 1
} finally {
  const mine = (await admin.listTopics()).filter((t) => t.startsWith(prefix))
  if (mine.length > 0) await admin.deleteTopics({ topics: mine })
  await producer.close()
  await admin.close()
}
