import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { resolveConfig } from '../src/config.js'
import { OffsetTracker } from '../src/offsets.js'
import { BatonError, ConfigError, IdleTimeout, NonRetryableError, RetryLater, VERSION, Worker, WorkerStateError } from '../src/index.js'

test('uses the contract defaults when no option or env is set', () => {
  assert.deepEqual(resolveConfig({}, {}), {
    bootstrapServers: ['localhost:9092'],
    groupId: 'workflow-workers',
    concurrency: 8,
    topicPrefix: 'workflow-',
    maxPayloadBytes: 1048576,
    topicPartitions: 6,
    topicReplicationFactor: 1,
    topicMinInsyncReplicas: undefined,
    presenceIntervalMs: 5000,
    drainTimeoutMs: 30000,
    deadlineGraceMs: 10000,
    maxAbandoned: 8,
    handleSignals: true
  })
})

test('reads the round-2 options from BATON_* env vars (seconds) and defaults maxAbandoned to concurrency', () => {
  const c = resolveConfig({ concurrency: 3 }, {
    BATON_WORKER_DRAIN_TIMEOUT: '2.5',
    BATON_WORKER_PRESENCE_INTERVAL: '0.5',
    BATON_WORKER_DEADLINE_GRACE: '0',
    BATON_TOPIC_REPLICATION_FACTOR: '3',
    BATON_TOPIC_MIN_INSYNC_REPLICAS: '2'
  })
  assert.deepEqual([c.drainTimeoutMs, c.presenceIntervalMs, c.deadlineGraceMs, c.topicReplicationFactor, c.topicMinInsyncReplicas, c.maxAbandoned],
    [2500, 500, 0, 3, 2, 3])
  assert.equal(resolveConfig({}, { BATON_WORKER_MAX_ABANDONED: '0' }).maxAbandoned, 0)
})

test('accepts the deprecated names and says so once each', () => {
  const said: string[] = []
  const c = resolveConfig({ shutdownTimeoutMs: 1234 }, { BATON_WORKER_HEARTBEAT_INTERVAL: '2' }, (m) => said.push(m))
  assert.deepEqual([c.drainTimeoutMs, c.presenceIntervalMs], [1234, 2000])
  assert.deepEqual(said, [
    'BATON_WORKER_HEARTBEAT_INTERVAL is deprecated: use BATON_WORKER_PRESENCE_INTERVAL',
    'the shutdownTimeoutMs option is deprecated: use drainTimeoutMs'
  ])
  const newer = resolveConfig({ drainTimeoutMs: 5, shutdownTimeoutMs: 9 }, { BATON_WORKER_PRESENCE_INTERVAL: '1', BATON_WORKER_HEARTBEAT_INTERVAL: '2' }, (m) => said.push(m))
  assert.deepEqual([newer.drainTimeoutMs, newer.presenceIntervalMs, said.length], [5, 1000, 2], 'the new names win, silently')
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
  ['partitions env -1', {}, { BATON_TOPIC_PARTITIONS: '-1' }, 'topic_partitions must be a positive integer'],
  ['presence 0', { presenceIntervalMs: 0 }, {}, 'presence_interval must be a positive number of seconds'],
  ['old presence env text', {}, { BATON_WORKER_HEARTBEAT_INTERVAL: 'x' }, 'heartbeat_interval must be a positive number of seconds'],
  ['drain -1', { drainTimeoutMs: -1 }, {}, 'drain_timeout must be a non-negative number of seconds'],
  ['grace env text', {}, { BATON_WORKER_DEADLINE_GRACE: 'soon' }, 'deadline_grace must be a non-negative number of seconds'],
  ['max abandoned -1', { maxAbandoned: -1 }, {}, 'max_abandoned must be a non-negative integer'],
  ['replication 0', { topicReplicationFactor: 0 }, {}, 'topic_replication_factor must be a positive integer'],
  ['min isr env 0', {}, { BATON_TOPIC_MIN_INSYNC_REPLICAS: '0' }, 'topic_min_insync_replicas must be a positive integer']
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
  const i = new IdleTimeout('late')
  assert.ok(i instanceof BatonError)
  assert.deepEqual([i.name, i.code, new WorkerStateError('x').code], ['IdleTimeout', 'BATON_IDLE_TIMEOUT', 'BATON_WORKER_STATE'])
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
  await assert.rejects(disposed.start(), (err: unknown) =>
    err instanceof WorkerStateError && err.message === 'a Worker can be started only once' && err.code === 'BATON_WORKER_STATE')
  assert.throws(() => disposed.register('late', () => null), WorkerStateError)
})
