/**
 * `Client` against a real `baton server` process (its own schema, topic prefix, Redis prefix and
 * engine group) and a real Worker of this SDK on the same prefix. The HTTP edge cases (every status,
 * bodies that are not the envelope, keep-alive, timeouts) are in client-http.test.ts.
 */
import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import {
  ApiConnectionError,
  ApiError,
  BatonError,
  Client,
  Conflict,
  Forbidden,
  NonRetryableError,
  NotFound,
  RequestTooLarge,
  Unauthorized,
  ValidationFailed,
  WaitTimeout,
  Worker,
  type DeadLetter
} from '../src/index.js'
import { PAGING } from '../src/client.js'
import { BOOTSTRAP, memoryLogger } from './helpers.js'
import { Orchestrator, freePort } from './orchestrator.js'

let server: Orchestrator
let worker: Worker
let client: Client

// One server and one worker for the file (actions clt.echo, clt.picky); each test defines its own workflows.
before(async () => {
  server = await Orchestrator.start()
  worker = new Worker({ bootstrapServers: BOOTSTRAP, groupId: `${server.prefix}workers`, topicPrefix: server.prefix, topicPartitions: 2, handleSignals: false, logger: memoryLogger() })
  worker.register('clt.echo', (payload) => ({ echo: payload }))
  // Dead-letters anything but null or {fixed: true}: a redrive with a fixed input completes the run.
  worker.register('clt.picky', (payload: unknown) => {
    if (payload === null) return { picky: null }
    if (JSON.stringify(payload) === '{"fixed":true}') return { picky: 'fixed' }
    throw new NonRetryableError(`not fixed: ${JSON.stringify(payload)}`)
  })
  await worker.start()
  client = new Client({ baseUrl: server.url })
})

after(async () => {
  client?.close()
  await worker?.stop(5000)
  await server?.stop()
})

async function define (action: string): Promise<string> {
  const workflowId = `clt-${randomUUID().slice(0, 8)}`
  const stored = await client.define({ id: workflowId, retry: { max_retries: 0 }, steps: [{ name: 's', action }] })
  assert.deepEqual([stored.id, stored.version, stored.steps[0]?.action], [workflowId, 1, action])
  return workflowId
}

async function deadLetter (workflowId: string): Promise<DeadLetter> {
  const open = await client.listDeadLetters({ workflowId })
  assert.equal(open.length, 1)
  return open[0] as DeadLetter
}

test('trigger with a key returns the same run when replayed and Conflict when the body differs', async () => {
  const wf = await define('clt.echo')
  const first = await client.trigger(wf, 'a', { idempotencyKey: 'k-1' })
  assert.deepEqual([first.workflow_id, first.idempotency_key, first.links.run], [wf, 'k-1', `/workflow/run/${first.run_id}`])
  assert.deepEqual(await client.trigger(wf, 'a', { idempotencyKey: 'k-1' }), first)
  const err = await client.trigger(wf, 'b', { idempotencyKey: 'k-1' }).then(() => undefined, (e: unknown) => e)
  assert.ok(err instanceof Conflict && err instanceof ApiError && err instanceof BatonError)
  assert.deepEqual([err.status, err.errorCode, err.code, err.name, err.details], [409, 'idempotency_key_reused', 'BATON_API', 'Conflict', { run_id: first.run_id }])
  const run = await client.waitForRun(first.run_id, 30_000)
  assert.deepEqual([run.status, run.output], ['COMPLETED', { echo: 'a' }])
  assert.equal(run.steps[0]?.attempts[0]?.status, 'COMPLETED')
  assert.equal((await client.getRun(first.run_id)).version, run.version)
  const replayed = await client.trigger(wf, 'a', { idempotencyKey: 'k-1', waitMs: 30_000 }) // 200 with the finished run
  assert.deepEqual([replayed.run_id, replayed.status], [first.run_id, 'COMPLETED'])
})

test('trigger with waitMs answers with the finished run when a worker runs it', async () => {
  const run = await client.trigger(await define('clt.echo'), { n: 1 }, { waitMs: 30_000 })
  assert.deepEqual([run.status, run.output, run.steps.length], ['COMPLETED', { echo: { n: 1 } }, 1])
})

test('listRuns follows cursors and filters when given a workflow and a status', async (t) => {
  const wf = await define('clt.echo')
  const ids: string[] = []
  for (const i of [0, 1, 2]) ids.push((await client.trigger(wf, i, { waitMs: 30_000 })).run_id)
  await define('clt.echo') // another workflow's runs stay out
  PAGING.size = 2 // 3 runs: the second page comes from next_cursor
  t.after(() => { PAGING.size = 500 })
  assert.deepEqual((await client.listRuns({ workflowId: wf })).map((r) => r.run_id), ids.reverse())
  assert.equal((await client.listRuns({ workflowId: wf, status: 'COMPLETED', limit: 2 })).length, 2)
  assert.deepEqual(await client.listRuns({ workflowId: wf, status: 'FAILED' }), [])
})

test('redrive completes the run when given a fixed input, and keeps the input when given none', async () => {
  const wf = await define('clt.picky')
  const { run_id: runId } = await client.trigger(wf, { fixed: false })
  assert.equal((await client.waitForRun(runId, 30_000)).status, 'FAILED')
  const first = await deadLetter(wf)
  assert.deepEqual([first.run_id, first.step, first.input, first.error?.type], [runId, 's', { fixed: false }, 'NonRetryableError'])
  await client.redrive(first.id) // no input: the step runs again with its own input, and fails again
  assert.equal((await client.waitForRun(runId, 30_000)).status, 'FAILED')
  const second = await deadLetter(wf)
  assert.notEqual(second.id, first.id)
  assert.equal((await client.redrive(second.id, { fixed: true })).status, 'REDRIVEN')
  const run = await client.waitForRun(runId, 30_000)
  assert.deepEqual([run.status, run.output], ['COMPLETED', { picky: 'fixed' }])
  const redriven = await client.listDeadLetters({ status: 'REDRIVEN', workflowId: wf })
  assert.deepEqual(new Set(redriven.map((d) => d.id)), new Set([first.id, second.id]))
  const closed = await client.redrive(first.id).then(() => undefined, (e: unknown) => e)
  assert.ok(closed instanceof Conflict)
  assert.equal(closed.errorCode, 'dead_letter_closed')
})

test('redrive with null replaces the input with JSON null when asked', async () => {
  const wf = await define('clt.picky')
  const { run_id: runId } = await client.trigger(wf, ['bad'])
  assert.equal((await client.waitForRun(runId, 30_000)).status, 'FAILED')
  await client.redrive((await deadLetter(wf)).id, null)
  assert.deepEqual((await client.waitForRun(runId, 30_000)).output, { picky: null })
})

test('discard closes the dead letter when it is not wanted', async () => {
  const wf = await define('clt.picky')
  const { run_id: runId } = await client.trigger(wf, 'bad')
  assert.equal((await client.waitForRun(runId, 30_000)).status, 'FAILED')
  const dead = await deadLetter(wf)
  assert.equal(await client.discard(String(dead.id)), undefined)
  assert.deepEqual(await client.listDeadLetters({ workflowId: wf }), [])
  assert.deepEqual((await client.listDeadLetters({ status: 'DISCARDED', workflowId: wf })).map((d) => d.id), [dead.id])
})

test('cancel and retry when a run is running or failed', async () => {
  const { run_id: idle } = await client.trigger(await define('clt.nobody')) // no worker: stays RUNNING
  assert.equal((await client.cancel(idle)).status, 'CANCELLED')
  assert.equal((await client.waitForRun(idle, 5000)).status, 'CANCELLED')
  await assert.rejects(client.cancel(idle), (e: unknown) => e instanceof Conflict && e.errorCode === 'run_not_cancellable')
  const { run_id: failed } = await client.trigger(await define('clt.picky'), 'bad')
  assert.equal((await client.waitForRun(failed, 30_000)).status, 'FAILED')
  assert.deepEqual((await client.retry(failed)).reopened_steps, ['s'])
  assert.equal((await client.waitForRun(failed, 30_000)).status, 'FAILED') // still not fixed
})

test('waitForRun rejects with WaitTimeout carrying the run when it does not finish in time', async () => {
  // A 1 s request timeout: each long poll (2 s) still gets its answer, since its HTTP timeout adds the wait.
  const short = new Client({ baseUrl: server.url, timeoutMs: 1000 })
  try {
    const { run_id: runId } = await short.trigger(await define('clt.nobody'))
    const started = performance.now()
    const err = await short.waitForRun(runId, 2000).then(() => undefined, (e: unknown) => e)
    const elapsed = performance.now() - started
    assert.ok(elapsed >= 2000 && elapsed < 6000, `${elapsed} ms`)
    assert.ok(err instanceof WaitTimeout && err instanceof ApiError)
    assert.deepEqual([err.code, err.status, err.run.run_id], ['BATON_WAIT_TIMEOUT', undefined, runId])
    assert.ok(['PENDING', 'RUNNING'].includes(err.run.status), err.run.status)
    // Trigger-and-wait ends too (202): the run as it stands.
    const pending = await short.trigger(await define('clt.nobody'), null, { waitMs: 500 })
    assert.ok(['PENDING', 'RUNNING'].includes(pending.status), pending.status)
    await short.cancel(runId)
  } finally {
    short.close()
  }
})

test('typed errors when ids are unknown or requests invalid', async () => {
  const missing = await client.getRun(randomUUID()).then(() => undefined, (e: unknown) => e)
  assert.ok(missing instanceof NotFound)
  assert.deepEqual([missing.status, missing.errorCode, missing.code], [404, 'run_not_found', 'BATON_API'])
  await assert.rejects(client.trigger('clt-no-such-workflow'), NotFound)
  await assert.rejects(client.redrive(10 ** 9, { fixed: true }), NotFound)
  await assert.rejects(client.discard(10 ** 9), NotFound)
  const invalid = await client.define({ id: 'clt-bad', steps: [{ name: 'a', action: 'x', depends_on: ['a'] }] }).then(() => undefined, (e: unknown) => e)
  assert.ok(invalid instanceof ValidationFailed)
  assert.deepEqual([invalid.status, invalid.errorCode, invalid.message], [422, 'invalid_definition', "step 'a' depends on itself"])
  const big = await client.trigger(await define('clt.echo'), 'x'.repeat(1_100_000)).then(() => undefined, (e: unknown) => e)
  assert.ok(big instanceof RequestTooLarge && big.status === 413)
})

test('an unreachable URL rejects with ApiConnectionError', async () => {
  const nowhere = new Client({ baseUrl: `http://127.0.0.1:${await freePort()}` }) // nothing listens there
  const err = await nowhere.listRuns().then(() => undefined, (e: unknown) => e)
  assert.ok(err instanceof ApiConnectionError && err instanceof ApiError)
  assert.deepEqual([err.code, err.status], ['BATON_API_CONNECTION', undefined])
  assert.match(err.message, /^GET http:\/\/127\.0\.0\.1:\d+\/workflow\/runs: cannot reach the Baton API \(ECONNREFUSED/)
  nowhere.close()
})

test('the bearer token is sent when the server requires API keys', async (t) => {
  const locked = await Orchestrator.start({ BATON_API_KEYS: 'secret' }, 'api')
  t.after(async () => { await locked.stop() })
  const env = { url: process.env.BATON_API_URL, key: process.env.BATON_API_KEY }
  t.after(() => { restore('BATON_API_URL', env.url); restore('BATON_API_KEY', env.key) })
  delete process.env.BATON_API_KEY
  const anonymous = await new Client({ baseUrl: locked.url }).listRuns().then(() => undefined, (e: unknown) => e)
  assert.ok(anonymous instanceof Unauthorized)
  assert.deepEqual([anonymous.status, anonymous.errorCode], [401, 'unauthorized'])
  const wrong = await new Client({ baseUrl: locked.url, apiKey: 'wrong' }).listRuns().then(() => undefined, (e: unknown) => e)
  assert.ok(wrong instanceof Forbidden)
  assert.deepEqual([wrong.status, wrong.errorCode], [403, 'forbidden'])
  assert.deepEqual(await new Client({ baseUrl: locked.url, apiKey: 'secret' }).listRuns(), [])
  process.env.BATON_API_URL = locked.url
  process.env.BATON_API_KEY = 'secret'
  assert.deepEqual(await new Client().listDeadLetters(), [])
})

function restore (name: string, value: string | undefined): void {
  if (value === undefined) delete process.env[name]
  else process.env[name] = value
}
