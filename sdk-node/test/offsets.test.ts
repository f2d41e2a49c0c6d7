/** R2.2 item 4: the offset tracker stays bounded under many jobs and every path a job can end by. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { OffsetTracker } from '../src/offsets.js'

const JOBS = 100_000
const CONCURRENCY = 8

test('holds at most the in-flight offsets and commits contiguously across 100k jobs through every path', () => {
  const t = new OffsetTracker()
  // Paths: completed, failed, dead-lettered, Timeout (all end in done() once acknowledged, in any
  // order within the window), refetched duplicates (begin() false) and a revocation mid-way.
  const window: bigint[] = []
  let peak = 0
  let committed = 0n
  for (let i = 0; i < JOBS; i++) {
    const offset = BigInt(i)
    assert.ok(t.begin('jobs.a', i % 3, offset))
    window.push(offset)
    if (i % 97 === 0) assert.equal(t.begin('jobs.a', i % 3, offset), false, 'a refetched record is skipped')
    if (window.length === CONCURRENCY) {
      // Finish in a scrambled order: the last started first, then the rest.
      const finished = [window.pop() as bigint, ...window.splice(0)]
      for (const o of finished) t.done('jobs.a', Number(o % 3n), o)
    }
    peak = Math.max(peak, t.size)
    if (i % 1000 === 0) {
      const pending = t.pending()
      for (const p of pending) assert.ok(p.offset <= offset + 1n)
      t.markCommitted(pending)
      committed += BigInt(pending.length)
    }
    if (i === JOBS / 2) t.retain(new Set(['jobs.a:0', 'jobs.a:1', 'jobs.a:2'])) // a rebalance that kept all
  }
  for (const o of window) t.done('jobs.a', Number(o % 3n), o)
  assert.ok(peak <= CONCURRENCY, `peak ${peak} offsets held`)
  assert.equal(t.size, 0)
  assert.equal(t.partitions, 3)
  assert.ok(committed > 0n)
  const positions = t.pending()
  assert.deepEqual(positions.map((p) => [p.partition, p.offset]).sort(), [[0, 99_999n + 1n], [1, 99_997n + 1n], [2, 99_998n + 1n]])
  t.retain(new Set())
  assert.deepEqual([t.size, t.partitions], [0, 0], 'revoked partitions are dropped whole')
})
