import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from '../src/index.js'
import { BOOTSTRAP, KafkaScope, eventually, makeJob, memoryLogger } from './helpers.js'

const FIXTURE = fileURLToPath(new URL('../../test/fixtures/ledger-worker.mjs', import.meta.url))

interface Child { proc: ChildProcess, ledger: string, exit: Promise<{ code: number | null, signal: string | null }>, stderr: () => string }

/** Starts the fixture worker in its own process and waits for it to be consuming. */
async function spawnWorker (t: TestContext, k: KafkaScope, delayMs: number): Promise<Child> {
  const dir = mkdtempSync(join(tmpdir(), 'baton-node-'))
  const ledger = join(dir, 'ledger.txt')
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const proc = spawn(process.execPath, [FIXTURE], {
    env: { ...process.env, LEDGER: ledger, DELAY_MS: String(delayMs), BATON_KAFKA_BOOTSTRAP_SERVERS: BOOTSTRAP, BATON_WORKER_GROUP: k.group, BATON_TOPIC_PREFIX: k.prefix, BATON_TOPIC_PARTITIONS: '2' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let out = ''
  let err = ''
  proc.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  proc.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const exit = new Promise<{ code: number | null, signal: string | null }>((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })))
  t.after(() => { if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL') })
  await eventually(() => out.includes('ready') || proc.exitCode !== null, 30_000, 'child worker ready')
  assert.ok(out.includes('ready'), `child failed to start: ${err}`)
  return { proc, ledger, exit, stderr: () => err }
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
