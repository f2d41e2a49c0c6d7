/** Pure logic of R2.2's bounds: cut messages and stacks, lone surrogates, values that cannot be printed. */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeOutput, errorFor } from '../src/execute.js'
import { cutUtf8, MAX_MESSAGE_BYTES, MAX_STACK_BYTES, safeString } from '../src/_text.js'

test('cuts text at a character boundary inside the bound and says how much was cut', () => {
  assert.equal(cutUtf8('short', 10), 'short')
  for (const unit of ['a', 'é', '€', '😀']) {
    const text = unit.repeat(5000)
    const cut = cutUtf8(text, MAX_MESSAGE_BYTES)
    const bytes = Buffer.byteLength(cut)
    assert.ok(bytes <= MAX_MESSAGE_BYTES && bytes > MAX_MESSAGE_BYTES - 30, `${unit}: ${bytes} bytes`)
    const match = / …\[cut (\d+) bytes\]$/.exec(cut)
    assert.ok(match !== null, unit)
    const kept = cut.slice(0, match.index)
    assert.equal(kept, unit.repeat(kept.length / unit.length), `${unit}: whole characters only`)
    assert.equal(Buffer.byteLength(kept) + Number(match[1]), Buffer.byteLength(text), `${unit}: N is what was cut`)
  }
})

test('replaces lone surrogates in messages and fails outputs that hold one', () => {
  assert.equal(cutUtf8('a\ud800b\udc00c\ud83d\ude00', 100), 'a\ufffdb\ufffdc\ud83d\ude00')
  const e = errorFor(new Error('half \udfff'))
  assert.equal(e.message, 'half \ufffd')
  assert.ok(!/[\ud800-\udfff]/.test((e.stacktrace ?? '').replace(/\ud83d[\ude00-\ude4f]/g, '')))
  const bad = encodeOutput({ ['key \ud800']: 1 }, 1000)
  assert.deepEqual(bad.status === 'FAILED' && [bad.error.type, bad.error.retryable], ['SerializationError', false])
  assert.equal(encodeOutput({ ok: '😀', escaped: '\\ud800 is text' }, 1000).status, 'COMPLETED')
})

test('maps any thrown value to a bounded error without throwing', () => {
  class Loud { toString (): string { throw new Error('no') } }
  const nasty = new Error('x')
  Object.defineProperty(nasty, 'message', { get () { throw new Error('getter') } })
  const revoked = Proxy.revocable({}, {})
  revoked.revoke()
  const cases: Array<[unknown, string, string]> = [
    [Object.create(null), 'Error', '{}'],
    [new Loud(), 'Error', '{}'],
    [undefined, 'Error', 'undefined'],
    [42, 'Error', '42'],
    [Symbol('s'), 'Error', 'Symbol(s)'],
    [nasty, 'Error', ''],
    [revoked.proxy, 'Error', '<unprintable value>'],
    [new TypeError('t'), 'TypeError', 't']
  ]
  for (const [value, type, message] of cases) {
    const error = errorFor(value)
    assert.deepEqual([error.type, error.message, error.retryable], [type, message, true], safeString(message))
  }
  const huge = errorFor(new RangeError('m'.repeat(1_200_000)))
  assert.ok(Buffer.byteLength(huge.message) <= MAX_MESSAGE_BYTES)
  assert.ok(Buffer.byteLength(huge.stacktrace ?? '') <= MAX_STACK_BYTES)
  assert.match(huge.stacktrace ?? '', /^RangeError: m+ …\[cut \d+ bytes\]$/)
})
