import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { resolveConfig } from '../src/config.js'
import { OffsetTracker } from '../src/offsets.js'
import { BatonError, ConfigError, NonRetryableError, RetryLater, VERSION, Worker } from '../src/index.js'

test('uses the contract defaults when no option or env is set', () => {
  assert.deepEqual(resolveConfig({}, {}), {
    bootstrapServers: ['localhost:9092'],
    groupId: 'workflow-workers',
    concurrency: 8,
    topicPrefix: 'workflow-',
    maxPayloadBytes: 1048576,
    topicPartitions: 6,
    presenceIntervalMs: 5000,
    shutdownTimeoutMs: 30000,
    handleSignals: true
  })
})

test('falls back to BATON_* env vars when options are absent', () => {
  const c = resolveConfig({}, {
    BATON_KAFKA_BOOTSTRAP_SERVERS: 'a:1, b:2',
    BATON_WORKER_GROUP: 'g',
    BATON_WORKER_CONCURRENCY: '3',
    BATON_TOPIC_PREFIX: 'p.',
    BATON_MAX_PAYLOAD_BYTES: '100',
    BATON_TOPIC_PARTITIONS: '2',
    BATON_WORKER_HEARTBEAT_INTERVAL: '0.5'
  })
  assert.deepEqual([c.bootstrapServers, c.groupId, c.concurrency, c.topicPrefix, c.maxPayloadBytes, c.topicPartitions, c.presenceIntervalMs],
    [['a:1', 'b:2'], 'g', 3, 'p.', 100, 2, 500])
})

test('prefers explicit options over env vars', () => {
  const c = resolveConfig({ bootstrapServers: ['x:9'], groupId: 'mine', concurrency: 2 },
    { BATON_KAFKA_BOOTSTRAP_SERVERS: 'a:1', BATON_WORKER_GROUP: 'g', BATON_WORKER_CONCURRENCY: '3' })
  assert.deepEqual([c.bootstrapServers, c.groupId, c.concurrency], [['x:9'], 'mine', 2])
})

const invalid: Array<[string, object, Record<string, string>, string]> = [
  ['empty bootstrap', { bootstrapServers: '' }, {}, 'bootstrap_servers must be a non-empty host:port list'],
  ['bootstrap without port', {}, { BATON_KAFKA_BOOTSTRAP_SERVERS: 'localhost' }, 'bootstrap_servers must be a non-empty host:port list'],
  ['empty group', { groupId: '' }, {}, 'group_id must be a non-empty string'],
  ['concurrency 0', { concurrency: 0 }, {}, 'concurrency must be an integer between 1 and 1000'],
  ['concurrency 1001', { concurrency: 1001 }, {}, 'concurrency must be an integer between 1 and 1000'],
  ['concurrency 2.5', { concurrency: 2.5 }, {}, 'concurrency must be an integer between 1 and 1000'],
  ['concurrency env text', {}, { BATON_WORKER_CONCURRENCY: 'eight' }, 'concurrency must be an integer between 1 and 1000'],
  ['prefix with slash', { topicPrefix: 'a/b' }, {}, 'topic_prefix may contain only [A-Za-z0-9._-]'],
  ['payload 0', { maxPayloadBytes: 0 }, {}, 'max_payload_bytes must be a positive integer'],
  ['partitions env -1', {}, { BATON_TOPIC_PARTITIONS: '-1' }, 'topic_partitions must be a positive integer']
]
for (const [name, options, env, message] of invalid) {
  test(`rejects config with the contract message when ${name}`, () => {
    assert.throws(() => resolveConfig(options, env), (err: unknown) =>
      err instanceof ConfigError && err.message === message && err.code === 'BATON_CONFIG')
  })
}

test('rejects invalid and duplicate registrations with the contract messages', () => {
  const w = new Worker({ bootstrapServers: '127.0.0.1:9092', handleSignals: false })
  for (const bad of ['', 'DLT', 'a b', 'x'.repeat(201), 'ü']) {
    assert.throws(() => w.register(bad, () => null),
      { message: `invalid action name '${bad}': use 1-200 of [A-Za-z0-9._-], not 'DLT'` })
  }
  w.register('step1', (payload) => `Node processed: ${payload}`)
  assert.throws(() => w.register('step1', () => null), { message: "action 'step1' is already registered" })
  assert.throws(() => w.register('x', 'nope' as never), { message: "handler for 'x' must be callable" })
  assert.deepEqual(w.actions, ['step1'])
})

test('exposes errors with stable codes and names', () => {
  const n = new NonRetryableError('no')
  assert.ok(n instanceof BatonError)
  assert.deepEqual([n.name, n.code, n.retryable], ['NonRetryableError', 'BATON_NON_RETRYABLE', false])
  const r = new RetryLater(250)
  assert.deepEqual([r.name, r.code, r.delayMs, r.retryable], ['RetryLater', 'BATON_RETRY_LATER', 250, true])
  assert.throws(() => new RetryLater(-1), RangeError)
})

test('exported version matches package.json', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
  assert.equal(VERSION, pkg.version)
})

test('commits only contiguous finished offsets per partition', () => {
  const t = new OffsetTracker()
  for (const o of [5n, 6n, 7n]) assert.ok(t.begin('a', 0, o))
  assert.deepEqual(t.pending(), [{ topic: 'a', partition: 0, offset: 5n }])
  t.done('a', 0, 6n)
  assert.equal(t.position('a', 0), 5n, 'never past the unfinished job at 5')
  t.done('a', 0, 5n)
  assert.equal(t.position('a', 0), 7n)
  t.markCommitted(t.pending())
  assert.deepEqual(t.pending(), [])
  t.done('a', 0, 7n)
  assert.deepEqual(t.pending(), [{ topic: 'a', partition: 0, offset: 8n }])
  assert.equal(t.begin('a', 0, 6n), false, 'a refetched record is a duplicate')
  t.retain(new Set())
  assert.deepEqual(t.pending(), [], 'revoked partitions are never committed')
})

test('disposes an unstarted worker with await using', async () => {
  let disposed: Worker | undefined
  {
    await using w = new Worker({ bootstrapServers: '127.0.0.1:9092', handleSignals: false })
    disposed = w
  }
  assert.equal(disposed.inFlight, 0)
  await assert.rejects(disposed.start(), { message: 'a Worker can be started only once' })
})
