import { test } from 'node:test'
import assert from 'node:assert/strict'
import { roundRobinAssign, type MemberSubscription } from '../src/_assignor.js'

function members (subscriptions: Record<string, string[]>): Map<string, MemberSubscription> {
  return new Map(Object.entries(subscriptions).map(([id, topics]) => [id, { topics }]))
}

function metadata (partitions: Record<string, number>): { topics: Map<string, { partitionsCount: number }> } {
  return { topics: new Map(Object.entries(partitions).map(([t, n]) => [t, { partitionsCount: n }])) }
}

/** memberId → sorted "topic:partition" strings, for readable comparisons. */
function flat (result: ReturnType<typeof roundRobinAssign>): Record<string, string[]> {
  return Object.fromEntries(result.map((m) => [
    m.memberId,
    [...m.assignments.values()].flatMap((a) => a.partitions.map((p) => `${a.topic}:${p}`)).sort()
  ]))
}

test('assigns like Java/aiokafka RoundRobinAssignor when subscriptions differ (their documented example)', () => {
  const result = roundRobinAssign(
    members({ C0: ['t0'], C1: ['t0', 't1'], C2: ['t0', 't1', 't2'] }),
    metadata({ t0: 1, t1: 2, t2: 3 })
  )
  assert.deepEqual(flat(result), {
    C0: ['t0:0'],
    C1: ['t1:0'],
    C2: ['t1:1', 't2:0', 't2:1', 't2:2']
  })
})

test('spreads evenly when every member subscribes to the same topics', () => {
  const result = roundRobinAssign(members({ C1: ['t0', 't1'], C0: ['t0', 't1'] }), metadata({ t0: 3, t1: 3 }))
  assert.deepEqual(flat(result), { C0: ['t0:0', 't0:2', 't1:1'], C1: ['t0:1', 't1:0', 't1:2'] })
})

test('assigns topics only other members subscribe to and never a topic a member did not subscribe to', () => {
  // The leader (whichever member computes this) is irrelevant: the union of all subscriptions counts.
  const subs = {
    'node-1': ['jobs.node.a', 'jobs.shared'],
    'python-1': ['jobs.python.b', 'jobs.shared'],
    'java-1': ['jobs.java.score', 'jobs.java.sum', 'jobs.shared']
  }
  const counts = { 'jobs.node.a': 2, 'jobs.python.b': 2, 'jobs.java.score': 2, 'jobs.java.sum': 2, 'jobs.shared': 3 }
  const result = roundRobinAssign(members(subs), metadata(counts))

  const owners = new Map<string, string[]>()
  for (const m of result) {
    for (const [topic, a] of m.assignments) {
      assert.equal(a.topic, topic)
      assert.ok((subs as Record<string, string[]>)[m.memberId]?.includes(a.topic), `${m.memberId} got ${a.topic}`)
      for (const p of a.partitions) owners.set(`${a.topic}:${p}`, [...(owners.get(`${a.topic}:${p}`) ?? []), m.memberId])
    }
  }
  const expected = Object.entries(counts).flatMap(([t, n]) => Array.from({ length: n }, (_, p) => `${t}:${p}`)).sort()
  assert.deepEqual([...owners.keys()].sort(), expected, 'every partition assigned')
  for (const [tp, who] of owners) assert.equal(who.length, 1, `${tp} assigned once`)
  // The shared topic is spread over all three members.
  const sharedOwners = new Set(result.filter((m) => m.assignments.has('jobs.shared')).map((m) => m.memberId))
  assert.equal(sharedOwners.size, 3)
})

test('includes members that get nothing, and skips topics missing from the metadata', () => {
  const result = roundRobinAssign(
    members({ a: ['t0'], b: ['t0'], c: ['t0', 'not-yet-created'] }),
    metadata({ t0: 1 })
  )
  assert.deepEqual(result.map((m) => m.memberId), ['a', 'b', 'c'])
  assert.deepEqual(flat(result), { a: ['t0:0'], b: [], c: [] })
  for (const m of result) assert.ok(m.assignments instanceof Map)
})

test('returns the shape the client encodes: Map topic → { topic, partitions }', () => {
  const [only] = roundRobinAssign(members({ m: ['x', 'y'] }), metadata({ x: 2, y: 1 }))
  assert.ok(only !== undefined)
  assert.deepEqual([...only.assignments.entries()], [['x', { topic: 'x', partitions: [0, 1] }], ['y', { topic: 'y', partitions: [0] }]])
})
