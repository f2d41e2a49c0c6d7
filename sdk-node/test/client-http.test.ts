/**
 * `Client` at the HTTP level, against a small local HTTP server that answers what a test sets: every
 * status mapped to its error class, bodies that are not the error envelope, what goes on the wire,
 * keep-alive, timeouts, close(); and the client's options. The API itself is in client.test.ts.
 */
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import {
  ApiConnectionError,
  ApiError,
  BadRequest,
  Client,
  ConfigError,
  Conflict,
  Forbidden,
  NotFound,
  RequestTooLarge,
  ServiceUnavailable,
  Unauthorized,
  ValidationFailed,
  VERSION,
  type TriggerOptions
} from '../src/index.js'

interface Seen { method: string, url: string, headers: IncomingMessage['headers'], body: string, port: number }
interface Answer { status: number, body: string, type?: string, headers?: Record<string, string> }

class Stub {
  readonly seen: Seen[] = []
  answers: Answer[] = [] // one per request in order; the last one repeats
  hold = false // true: answers wait until the test ends
  readonly #server: Server

  private constructor () {
    this.#server = createServer((req, res) => {
      let body = ''
      req.on('data', (d: Buffer) => { body += d.toString('utf8') })
      req.on('end', () => {
        this.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, port: req.socket.remotePort ?? 0 })
        if (this.hold) return
        const answer = (this.answers.length > 1 ? this.answers.shift() : this.answers[0]) ?? { status: 200, body: '{"status": "COMPLETED"}' }
        res.writeHead(answer.status, { 'Content-Type': answer.type ?? 'application/json', ...answer.headers })
        res.end(answer.body)
      })
    })
  }

  static async open (t: TestContext): Promise<Stub> {
    const stub = new Stub()
    await new Promise<void>((resolve) => stub.#server.listen(0, '127.0.0.1', resolve))
    t.after(async () => {
      stub.#server.closeAllConnections()
      await new Promise((resolve) => stub.#server.close(resolve))
    })
    return stub
  }

  get url (): string {
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`
  }

  answer (status: number, body: unknown, type?: string): void {
    this.answers = [{ status, body: typeof body === 'string' ? body : JSON.stringify(body), type }]
  }
}

function envelope (code = 'some_code', message = 'what went wrong', details: unknown = null): object {
  return { error: { code, message, details } }
}

async function rejection (promise: Promise<unknown>): Promise<unknown> {
  return await promise.then(() => assert.fail('resolved'), (e: unknown) => e)
}

test('each status maps to its error class when the body is the envelope', async (t) => {
  const stub = await Stub.open(t)
  const client = new Client({ baseUrl: stub.url })
  const cases: Array<[number, typeof ApiError]> = [[400, BadRequest], [401, Unauthorized], [403, Forbidden], [404, NotFound],
    [409, Conflict], [413, RequestTooLarge], [422, ValidationFailed], [503, ServiceUnavailable], [500, ApiError], [418, ApiError]]
  for (const [status, Class] of cases) {
    stub.answer(status, envelope('some_code', 'what went wrong', { field: 'x' }))
    const err = await rejection(client.getRun('r1'))
    assert.ok(err instanceof ApiError)
    assert.equal(err.constructor, Class, `status ${status}`)
    assert.deepEqual([err.name, err.status, err.errorCode, err.message, err.details, err.code, err.retryable],
      [Class.name, status, 'some_code', 'what went wrong', { field: 'x' }, 'BATON_API', true])
  }
})

test('the HTTP reason is the message when the body is HTML or not an envelope', async (t) => {
  const stub = await Stub.open(t)
  const client = new Client({ baseUrl: stub.url })
  stub.answer(502, '<html><body><h1>502 Bad Gateway</h1>nginx</body></html>', 'text/html')
  const html = await rejection(client.cancel('r1'))
  assert.ok(html instanceof ApiError)
  assert.deepEqual([html.status, html.errorCode, html.message], [502, undefined, 'Bad Gateway'])
  stub.answer(404, { detail: 'Not Found' })
  const plain = await rejection(client.getRun('r1'))
  assert.ok(plain instanceof NotFound && plain.message === 'Not Found')
  stub.answer(200, '<html>a captive portal</html>', 'text/html')
  const odd = await rejection(client.getRun('r1'))
  assert.ok(odd instanceof ApiError && odd.status === 200 && !odd.message.includes('<'))
  assert.equal(odd.message, 'the API answered with a body that is not JSON')
  stub.answer(200, { hello: 'world' }) // some other JSON service
  await assert.rejects(client.listDeadLetters(), { message: "the answer has no 'items' field: is the URL a Baton API?" })
  stub.answers = [{ status: 307, body: '', headers: { Location: '/elsewhere' } }] // a redirect is not followed
  const moved = await rejection(client.getRun('r1'))
  assert.ok(moved instanceof ApiError && moved.status === 307)
  assert.equal(stub.seen.at(-1)?.url, '/workflow/run/r1')
})

test('requests carry the token, JSON bodies and the wait when sent', async (t) => {
  const stub = await Stub.open(t)
  const client = new Client({ baseUrl: `${stub.url}/`, apiKey: 'k1' })
  stub.answer(200, { run_id: 'r', status: 'COMPLETED' })
  const options: TriggerOptions = { idempotencyKey: 'key-1', waitMs: 2500 } // either answer type, by the type
  await client.trigger('wf', undefined, options)
  await client.redrive(7)
  await client.redrive(8, null)
  stub.answer(200, { items: [], next_cursor: null })
  await client.listRuns({ workflowId: 'wf', status: 'FAILED', limit: 3 })
  stub.answer(204, '')
  assert.equal(await client.discard('9'), undefined)
  const [trigger, keep, nulled, runs, discard] = stub.seen
  assert.deepEqual([trigger?.method, trigger?.url, trigger?.body], ['POST', '/workflow/wf/trigger?wait=2.5', '{"input":null}'])
  assert.deepEqual([trigger?.headers['idempotency-key'], trigger?.headers['content-type'], trigger?.headers.authorization],
    ['key-1', 'application/json', 'Bearer k1'])
  assert.equal(trigger?.headers['user-agent'], `baton-node/${VERSION}`)
  assert.deepEqual([keep?.url, keep?.body, keep?.headers['content-type']], ['/dlq/7/redrive', '', undefined]) // the step keeps its input
  assert.deepEqual([nulled?.url, nulled?.body], ['/dlq/8/redrive', '{"input":null}'])
  assert.equal(runs?.url, '/workflow/runs?workflow_id=wf&status=FAILED&limit=3')
  assert.deepEqual([discard?.method, discard?.url], ['DELETE', '/dlq/9'])
})

test('paging follows next_cursor until the limit when pages are smaller', async (t) => {
  const stub = await Stub.open(t)
  const client = new Client({ baseUrl: stub.url })
  const page = (ids: number[], next: string | null): Answer => ({ status: 200, body: JSON.stringify({ items: ids.map((id) => ({ id })), next_cursor: next }) })
  stub.answers = [page([1, 2], 'c1'), page([3, 4], 'c2'), page([5], null)]
  assert.deepEqual((await client.listDeadLetters({ limit: 4 })).map((d) => d.id), [1, 2, 3, 4])
  assert.deepEqual(stub.seen.map((s) => s.url), ['/dlq?status=OPEN&limit=4', '/dlq?status=OPEN&limit=2&cursor=c1'])
  stub.answers = [page([6], null)]
  assert.deepEqual((await client.listRuns()).map((r) => r.id), [6]) // no cursor: done
  stub.answer(200, { items: 'nope' })
  await assert.rejects(client.listRuns(), ApiError)
})

test('waitForRun long-polls with ?wait= until the run is terminal', async (t) => {
  const stub = await Stub.open(t)
  const client = new Client({ baseUrl: stub.url })
  stub.answers = [{ status: 200, body: '{"status": "RUNNING"}' }, { status: 200, body: '{"status": "FAILED", "run_id": "r"}' }]
  assert.equal((await client.waitForRun('r', 120_000)).status, 'FAILED')
  const waits = stub.seen.map((s) => Number(new URL(s.url, stub.url).searchParams.get('wait')))
  assert.equal(waits.length, 2)
  assert.ok(waits.every((w) => w > 59 && w <= 60), String(waits)) // at most 60 s per poll
})

test('ids are one escaped path segment, and dot segments are refused before sending', async (t) => {
  const stub = await Stub.open(t)
  const client = new Client({ baseUrl: stub.url })
  await client.getRun('../dlq/1')
  await client.getRun('a b?c#d')
  assert.deepEqual(stub.seen.map((s) => s.url), ['/workflow/run/..%2Fdlq%2F1', '/workflow/run/a%20b%3Fc%23d'])
  // fetch's URL parser resolves '.' and '..' even as %2E: GET /workflow/run/.. would be GET /workflow/.
  await assert.rejects(client.getRun('..'), { name: 'TypeError', message: "run_id '..' cannot be sent: URLs resolve '.' and '..' away" })
  await assert.rejects(client.trigger('.'), TypeError)
  assert.equal(stub.seen.length, 2)
})

test('one connection is reused when a client makes many requests', async (t) => {
  const stub = await Stub.open(t)
  const client = new Client({ baseUrl: stub.url })
  for (let i = 0; i < 5; i++) await client.getRun('r1')
  assert.equal(new Set(stub.seen.map((s) => s.port)).size, 1)
})

test('a slow answer rejects with ApiConnectionError when the timeout passes', async (t) => {
  const stub = await Stub.open(t)
  stub.hold = true
  const started = performance.now()
  const err = await rejection(new Client({ baseUrl: stub.url, timeoutMs: 300 }).getRun('r1'))
  assert.ok(performance.now() - started < 3000)
  assert.ok(err instanceof ApiConnectionError)
  assert.deepEqual([err.message, err.status, err.code], [`GET ${stub.url}/workflow/run/r1: no answer within 300 ms`, undefined, 'BATON_API_CONNECTION'])
})

test('close() aborts the requests in flight and refuses new ones', async (t) => {
  const stub = await Stub.open(t)
  stub.hold = true
  const client = new Client({ baseUrl: stub.url })
  const pending = rejection(client.getRun('r1'))
  while (stub.seen.length === 0) await new Promise((resolve) => setImmediate(resolve))
  client.close()
  const aborted = await pending
  assert.ok(aborted instanceof ApiConnectionError && aborted.message.endsWith('the client was closed before the answer'))
  await assert.rejects(client.listRuns(), { name: 'ApiConnectionError', message: `GET ${stub.url}/workflow/runs: the client is closed` })
  assert.equal(stub.seen.length, 1)
})

test('options fall back to the environment and throw ConfigError when invalid', (t) => {
  const saved = { url: process.env.BATON_API_URL, key: process.env.BATON_API_KEY }
  t.after(() => {
    for (const [name, value] of [['BATON_API_URL', saved.url], ['BATON_API_KEY', saved.key]] as const) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  })
  delete process.env.BATON_API_URL
  assert.deepEqual([new Client().baseUrl, new Client().timeoutMs], ['http://127.0.0.1:8080', 30_000])
  process.env.BATON_API_URL = 'https://baton.example:8443/api/'
  assert.equal(new Client().baseUrl, 'https://baton.example:8443/api')
  assert.equal(new Client({ baseUrl: 'http://h:1' }).baseUrl, 'http://h:1') // explicit wins
  process.env.BATON_API_KEY = 'bad key'
  assert.throws(() => new Client(), { name: 'ConfigError', message: 'api_key must be printable ASCII without spaces' })
  assert.ok(new Client({ apiKey: '' }) instanceof Client) // '' sends no token whatever the env says
  const bad: Array<[object, string]> = [
    [{ baseUrl: 'ftp://h' }, 'base_url must be an http:// or https:// URL'],
    [{ baseUrl: 'h:8080' }, 'base_url must be an http:// or https:// URL'],
    [{ apiKey: 'a\nb' }, 'api_key must be printable ASCII without spaces'],
    [{ timeoutMs: 0 }, 'timeout must be a positive number of seconds'],
    [{ timeoutMs: Number.NaN }, 'timeout must be a positive number of seconds']
  ]
  for (const [options, message] of bad) {
    assert.throws(() => new Client({ apiKey: '', ...options }), (e: unknown) => e instanceof ConfigError && e.message === message && e.code === 'BATON_CONFIG')
  }
})

test('bad arguments reject before any request when given', async (t) => {
  const stub = await Stub.open(t)
  const client = new Client({ baseUrl: stub.url })
  const cases: Array<[() => Promise<unknown>, string, string]> = [
    [async () => await client.getRun(''), 'TypeError', 'run_id must be a non-empty string'],
    [async () => await client.trigger('wf', null, { waitMs: -1 }), 'RangeError', 'wait must be a non-negative number of milliseconds'],
    [async () => await client.trigger('wf', null, { idempotencyKey: '' }), 'TypeError', 'idempotency_key must be a non-empty string'],
    [async () => await client.waitForRun('r', Infinity), 'RangeError', 'timeout must be a non-negative number of milliseconds'],
    [async () => await client.listRuns({ limit: 0 }), 'RangeError', 'limit must be a positive integer'],
    [async () => await client.getRun('\ud800'), 'TypeError', 'run_id must be a well-formed string'],
    [async () => await client.trigger('wf', { n: 1n }), 'TypeError', 'Do not know how to serialize a BigInt']
  ]
  for (const [call, name, message] of cases) await assert.rejects(call(), { name, message })
  assert.equal(stub.seen.length, 0)
})

test('a using declaration closes the client when its block ends', async (t) => {
  const stub = await Stub.open(t)
  let escaped: Client | undefined
  {
    using client = new Client({ baseUrl: stub.url })
    escaped = client
    assert.equal((await client.getRun('r1')).status, 'COMPLETED')
  }
  await assert.rejects(escaped.getRun('r1'), ApiConnectionError)
})
