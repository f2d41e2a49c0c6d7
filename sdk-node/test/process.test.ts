import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, type AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { Worker } from '../src/index.js'
import { BOOTSTRAP, KafkaScope, eventually, makeJob, memoryLogger } from './helpers.js'

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/ledger-worker.mjs', import.meta.url))

interface Child { proc: ChildProcess, ledger: string, exit: Promise<{ code: number | null, signal: string | null }>, stderr: () => string }

/** Starts the fixture worker in its own process and waits for it to print `waitFor` (default: consuming). */
async function spawnWorker (t: TestContext, k: KafkaScope, delayMs: number, env: Record<string, string> = {}, waitFor = 'ready'): Promise<Child> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-node-'))
  const ledger = join(dir, 'ledger.txt')
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const proc = spawn(process.execPath, [FIXTURE], {
    env: { ...process.env, LEDGER: ledger, DELAY_MS: String(delayMs), BATON_KAFKA_BOOTSTRAP_SERVERS: BOOTSTRAP, BATON_WORKER_GROUP: k.group, BATON_TOPIC_PREFIX: k.prefix, BATON_TOPIC_PARTITIONS: '2', BATON_WORKER_DRAIN_TIMEOUT: '20', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  proc.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const exit = new Promise<{ code: number | null, signal: string | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })))
  t.after(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL') })
  await eventually(() => out.includes(waitFor) || proc.exitCode !== null, 30_000, `child worker printed ${waitFor}`)
  assert.ok(out.includes(waitFor), `child failed to start: ${err}`)
  return { proc, ledger, exit, stderr: () => err }
}

/** Resolves with the child's exit, or fails after `ms`. */
async function exitWithin (child: Child, ms: number, what: string): Promise<{ code: number | null, signal: string | null }> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`child did not exit within ${ms} ms ${what}: ${child.stderr()}`)), ms) })
  try {
    return await Promise.race([child.exit, late])
  } finally {
    clearTimeout(timer)
  }
}

async function closedPort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

function ledgerLines (path: string, kind: 'start' | 'end'): string[] {
  if (!existsSync(path)) return []
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.startsWith(`${kind} `)).map((l) => l.slice(kind.length + 1))
}

test('drains 3 in-flight jobs on SIGTERM: 3 results, none lost, offsets committed', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.slow'], 2)
  const child = await spawnWorker(t, k, 1500)
  const jobs = [makeJob('slow', 1), makeJob('slow', 2), makeJob('slow', 3)]
  await k.produce('jobs.slow', jobs)
  await eventually(() => ledgerLines(child.ledger, 'start').length === 3, 20_000, '3 jobs started')
  assert.equal(ledgerLines(child.ledger, 'end').length, 0, 'SIGTERM arrives while all 3 are in flight')
  child.proc.kill('SIGTERM')
  const exit = await Promise.race([child.exit, eventually(() => false, 30_000, 'child exit after SIGTERM')])
  assert.deepEqual(exit, { code: 0, signal: null }, child.stderr())

  const results = await k.readJson('results', 3)
  assert.deepEqual(results.map((r) => r.job_id).sort(), jobs.map((j) => j.job_id).sort())
  assert.ok(results.every((r) => r.status === 'COMPLETED'))
  assert.equal(await k.committed('jobs.slow'), 3n)
  const beats = await k.readJson('workers', 2)
  assert.equal(beats.at(-1)?.status, 'STOPPED')
})

test('redelivers a job to a second worker (same job_id) after SIGKILL mid-job', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.slow'], 2)
  const child = await spawnWorker(t, k, 60_000)
  const job = makeJob('slow', 'survive me')
  await k.produce('jobs.slow', [job])
  await eventually(() => ledgerLines(child.ledger, 'start').includes(job.job_id), 20_000, 'job started in child')
  child.proc.kill('SIGKILL')
  assert.equal((await child.exit).signal, 'SIGKILL')

  const seen: string[] = []
  const second = new Worker({ bootstrapServers: BOOTSTRAP, groupId: k.group, topicPrefix: k.prefix, logger: memoryLogger(), handleSignals: false })
  t.after(async () => { await second.stop(1000) })
  second.register('slow', (_payload, ctx) => { seen.push(ctx.jobId); return 'second' })
  // The dead member holds its partitions until its session times out (10 s), then they move here.
  const report = await second.runUntilIdle({ timeoutMs: 45_000 })
  assert.deepEqual(seen, [job.job_id])
  assert.equal(report.completed, 1)
  const [result] = await k.readJson('results', 1)
  assert.deepEqual([result.job_id, result.output], [job.job_id, 'second'])
})

test('stops promptly on SIGTERM while waiting for an unreachable Kafka at start-up', async (t) => {
  const k = await KafkaScope.open(t)
  const port = await closedPort()
  const child = await spawnWorker(t, k, 0, { BATON_KAFKA_BOOTSTRAP_SERVERS: `127.0.0.1:${port}` }, 'starting')
  await eventually(() => child.stderr().includes('waiting for Kafka'), 20_000, 'the worker waits for Kafka')
  const signalled = Date.now()
  child.proc.kill('SIGTERM')
  assert.deepEqual(await exitWithin(child, 5_000, 'after SIGTERM'), { code: 0, signal: null }, child.stderr())
  assert.ok(Date.now() - signalled < 5_000)
})

test('stops within the drain timeout on SIGTERM when a handler outlives it, leaving its job uncommitted', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.slow'], 2)
  const child = await spawnWorker(t, k, 60_000, { BATON_WORKER_DRAIN_TIMEOUT: '1' })
  await k.produce('jobs.slow', [makeJob('slow', 'never ends')])
  await eventually(() => ledgerLines(child.ledger, 'start').length === 1, 20_000, 'job started')
  child.proc.kill('SIGTERM')
  // 143: the signal's own exit code, since a handler was still running (it would keep the process alive).
  assert.deepEqual(await exitWithin(child, 1_000 + 10_000, 'within the 1 s drain timeout'), { code: 143, signal: null }, child.stderr())
  assert.match(child.stderr(), /drain timed out[^]*handlers still running after the drain; exiting/)
  assert.equal(await k.committed('jobs.slow'), 0n, 'the abandoned job stays uncommitted')
})

test('exits at once on a second SIGTERM while draining', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.slow'], 2)
  const child = await spawnWorker(t, k, 60_000)
  await k.produce('jobs.slow', [makeJob('slow', 'never ends')])
  await eventually(() => ledgerLines(child.ledger, 'start').length === 1, 20_000, 'job started')
  child.proc.kill('SIGTERM')
  await eventually(() => child.stderr().includes('draining'), 5_000, 'drain started')
  child.proc.kill('SIGTERM')
  assert.deepEqual(await exitWithin(child, 3_000, 'after the second SIGTERM'), { code: 143, signal: null })
})

test('stops promptly on SIGTERM during a rebalance and its partitions move to the other worker', async (t) => {
  const k = await KafkaScope.open(t)
  await k.createTopics(['jobs.slow'], 2)
  const child = await spawnWorker(t, k, 10)
  const seen: string[] = []
  const other = new Worker({ bootstrapServers: BOOTSTRAP, groupId: k.group, topicPrefix: k.prefix, logger: memoryLogger(), handleSignals: false })
  t.after(async () => { await other.stop(1000) })
  other.register('slow', (_payload, ctx) => { seen.push(ctx.jobId); return 'other' })
  // Joining makes the child rebalance; the signal lands while that is under way.
  const joined = other.start()
  await eventually(() => child.stderr().includes('rebalance started'), 15_000, 'the child is rebalancing')
  child.proc.kill('SIGTERM')
  assert.deepEqual(await exitWithin(child, 10_000, 'after SIGTERM during a rebalance'), { code: 0, signal: null }, child.stderr())
  await joined
  const job = makeJob('slow', 'after the rebalance')
  await k.produce('jobs.slow', [job])
  await eventually(() => seen.includes(job.job_id), 20_000, 'the remaining worker runs new jobs')
  await other.stop(1000)
})
