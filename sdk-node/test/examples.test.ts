import { test } from 'node:test'
import assert from 'node:assert/strict'
import { REPO_ROOT } from './helpers.js'

// Imported by URL at run time: the example is plain JS outside this package.
const actions = await import(new URL('examples/node/actions.mjs', REPO_ROOT).href) as {
  step1: (p: unknown) => string
  enrich: (p: unknown) => Record<string, unknown>
  uppercase: (p: unknown) => string
}

test('example step1 is the original example', () => {
  assert.equal(actions.step1('Hello World'), 'Node processed: Hello World')
})

test('example node.enrich tags objects and wraps other inputs', () => {
  const out = actions.enrich({ order: 42 })
  assert.deepEqual({ ...out, at: undefined }, { order: 42, enriched_by: 'node', at: undefined })
  assert.match(String(out.at), /^\d{4}-\d\d-\d\dT.*Z$/)
  assert.deepEqual({ ...actions.enrich('x'), at: undefined }, { value: 'x', enriched_by: 'node', at: undefined })
  assert.deepEqual({ ...actions.enrich([1]), at: undefined }, { value: [1], enriched_by: 'node', at: undefined })
})

test('example node.uppercase uppercases strings and JSON text of objects', () => {
  assert.equal(actions.uppercase('abc'), 'ABC')
  assert.equal(actions.uppercase({ a: 'b' }), '{"A":"B"}')
})
