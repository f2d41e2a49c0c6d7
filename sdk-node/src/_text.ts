/**
 * Text that goes into a result must be bounded and valid UTF-8, whatever a handler threw: a 1 MB
 * message would make the result too large for its topic, a lone surrogate is not UTF-8, and a
 * value whose `toString` throws must not stop the job from being answered (docs/sdk-contract.md,
 * "Round 2 names and bounds").
 */

/** Error `message` bound, in UTF-8 bytes, suffix included. */
export const MAX_MESSAGE_BYTES = 4096
/** Error `stacktrace` bound, in UTF-8 bytes, suffix included. */
export const MAX_STACK_BYTES = 16_384

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g
// JSON.stringify writes a lone surrogate as a `\udXXX` escape and every valid pair as raw text, so
// an unescaped `\ud8..`-`\udf..` escape in its output means the value held a lone surrogate.
const ESCAPED_SURROGATE = /(?<!\\)(?:\\\\)*\\ud[89a-f][0-9a-f]{2}/

/** `text` with every lone surrogate replaced by U+FFFD. */
export function wellFormed (text: string): string {
  return text.replace(LONE_SURROGATE, '\ufffd')
}

/** True when `json` (output of JSON.stringify) encodes a string holding a lone surrogate. */
export function hasLoneSurrogate (json: string): boolean {
  return json.includes('\\ud') && ESCAPED_SURROGATE.test(json)
}

/**
 * `text` made well-formed and cut to at most `maxBytes` UTF-8 bytes at a character boundary,
 * ending in ` …[cut N bytes]` (N = bytes removed) when anything was cut.
 */
export function cutUtf8 (text: string, maxBytes: number): string {
  const clean = wellFormed(text)
  const total = Buffer.byteLength(clean, 'utf8')
  if (total <= maxBytes) return clean
  // The suffix for `total` is at least as long as the final one (N < total), so the kept part fits.
  const bytes = Buffer.from(clean, 'utf8')
  let keep = Math.max(0, maxBytes - Buffer.byteLength(suffix(total), 'utf8'))
  while (keep > 0 && ((bytes[keep] ?? 0) & 0xc0) === 0x80) keep-- // not inside a multi-byte character
  return bytes.subarray(0, keep).toString('utf8') + suffix(total - keep)
}

function suffix (cutBytes: number): string {
  return ` …[cut ${cutBytes} bytes]`
}

/**
 * A printable form of any value, never throwing: `String(value)`, else its JSON (an object with no
 * prototype), else its `[object Tag]`, else a fixed placeholder (a Proxy that throws on every trap).
 */
export function safeString (value: unknown): string {
  const attempts = [
    () => String(value),
    () => JSON.stringify(value),
    () => Object.prototype.toString.call(value)
  ]
  for (const attempt of attempts) {
    try {
      const text: unknown = attempt()
      if (typeof text === 'string') return text
    } catch {}
  }
  return '<unprintable value>'
}
