/**
 * The wire side of `Client` (private): one built-in `fetch` per request, bounded in time, the answer
 * decoded as JSON and every failure turned into its `ApiError` subclass. Node's fetch keeps
 * connections alive (undici's pool), so consecutive requests reuse one socket.
 */
import type { ClientConfig } from './config.js'
import {
  ApiConnectionError,
  ApiError,
  BadRequest,
  Conflict,
  Forbidden,
  NotFound,
  RequestTooLarge,
  ServiceUnavailable,
  Unauthorized,
  ValidationFailed,
  type ApiErrorOptions
} from './errors.js'
import { VERSION } from './version.js'

export interface ApiRequest {
  method: 'GET' | 'POST' | 'DELETE'
  /** Already escaped (see `segment`). */
  path: string
  query?: Record<string, string | number | undefined>
  /** JSON-encoded when given; `undefined`: no body. */
  body?: unknown
  headers?: Record<string, string>
  /** The server-side wait of a long poll: the request may take this long on top of the timeout. */
  waitMs?: number
}

export interface Reply {
  status: number
  /** Decoded JSON; `null` for an empty body (204). */
  body: unknown
}

const BY_STATUS = new Map<number, new (message: string, options: ApiErrorOptions) => ApiError>([
  [400, BadRequest],
  [401, Unauthorized],
  [403, Forbidden],
  [404, NotFound],
  [409, Conflict],
  [413, RequestTooLarge],
  [422, ValidationFailed],
  [503, ServiceUnavailable]
])
const MAX_TIMER_MS = 2_147_483_647
const TIMED_OUT = Symbol('timed out')
const CLOSED = Symbol('closed')

export class Transport {
  readonly #headers: Record<string, string>
  // Aborted by close(), so no request outlives its client.
  readonly #inFlight = new Set<AbortController>()
  #closed = false

  constructor (readonly config: ClientConfig) {
    this.#headers = { Accept: 'application/json', 'User-Agent': `baton-node/${VERSION}` }
    if (config.apiKey !== undefined) this.#headers.Authorization = `Bearer ${config.apiKey}`
  }

  async send (request: ApiRequest): Promise<Reply> {
    const where = `${request.method} ${this.config.baseUrl}${request.path}`
    if (this.#closed) throw new ApiConnectionError(`${where}: the client is closed`)
    const limitMs = Math.min(MAX_TIMER_MS, this.config.timeoutMs + (request.waitMs ?? 0))
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(TIMED_OUT), limitMs)
    this.#inFlight.add(controller)
    try {
      const response = await fetch(this.#url(request), this.#init(request, controller.signal))
      // Read whole even when unused: undici reuses a connection only once its body is consumed.
      const content = new Uint8Array(await response.arrayBuffer())
      // undici frees the socket a turn after the body ends: a request sent sooner (the next page, the
      // next long poll) would open a second connection (measured: 6 sequential calls used 2 sockets).
      await new Promise((resolve) => setImmediate(resolve))
      return reply(response.status, response.statusText, content)
    } catch (err) {
      throw unreachable(where, limitMs, controller.signal, err)
    } finally {
      clearTimeout(timer)
      this.#inFlight.delete(controller)
    }
  }

  close (): void {
    this.#closed = true
    for (const controller of this.#inFlight) controller.abort(CLOSED)
  }

  #url (request: ApiRequest): string {
    const query = new URLSearchParams()
    for (const [name, value] of Object.entries(request.query ?? {})) {
      if (value !== undefined) query.append(name, String(value))
    }
    const search = query.toString()
    return `${this.config.baseUrl}${request.path}${search === '' ? '' : `?${search}`}`
  }

  #init (request: ApiRequest, signal: AbortSignal): RequestInit {
    const headers = { ...this.#headers, ...request.headers }
    // A redirect is answered as the error it is, as in the Python client: following it could send
    // a POST (and the token) somewhere the caller did not name.
    const init: RequestInit = { method: request.method, headers, signal, redirect: 'manual' }
    if (request.body === undefined) return init
    return { ...init, headers: { ...headers, 'Content-Type': 'application/json' }, body: JSON.stringify(request.body) }
  }
}

function unreachable (where: string, limitMs: number, signal: AbortSignal, err: unknown): unknown {
  if (err instanceof ApiError) return err
  if (signal.aborted && signal.reason === TIMED_OUT) {
    return new ApiConnectionError(`${where}: no answer within ${limitMs} ms`)
  }
  if (signal.aborted && signal.reason === CLOSED) {
    return new ApiConnectionError(`${where}: the client was closed before the answer`)
  }
  // undici reports every network failure as TypeError('fetch failed') with the socket error as cause;
  // other throws (an invalid header value, say) are the caller's and pass through unchanged.
  if (err instanceof TypeError && err.cause !== undefined) {
    return new ApiConnectionError(`${where}: cannot reach the Baton API (${describe(err.cause)})`, { cause: err.cause })
  }
  return err
}

function describe (cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause)
  const code = (cause as { code?: unknown }).code
  return `${typeof code === 'string' ? code : cause.name}: ${cause.message}`
}

/** The decoded body of a 2xx answer; any other status throws its `ApiError` subclass. */
export function reply (status: number, reason: string, content: Uint8Array): Reply {
  if (status < 200 || status >= 300) throw apiError(status, reason, content)
  if (content.length === 0) return { status, body: null }
  try {
    return { status, body: JSON.parse(new TextDecoder().decode(content)) }
  } catch {
    throw new ApiError('the API answered with a body that is not JSON', { status })
  }
}

/** The typed error of an error answer, from its `{"error": {...}}` envelope when it has one. */
export function apiError (status: number, reason: string, content: Uint8Array): ApiError {
  const envelope = errorEnvelope(content)
  const message = typeof envelope.message === 'string' && envelope.message !== '' ? envelope.message : reason || `HTTP ${status}`
  const errorCode = typeof envelope.code === 'string' ? envelope.code : undefined
  const Class = BY_STATUS.get(status) ?? ApiError
  return new Class(message, { status, errorCode, details: envelope.details })
}

function errorEnvelope (content: Uint8Array): Record<string, unknown> {
  try {
    const envelope: unknown = JSON.parse(new TextDecoder().decode(content))?.error
    return typeof envelope === 'object' && envelope !== null && !Array.isArray(envelope) ? envelope as Record<string, unknown> : {}
  } catch {
    return {} // an HTML page from a proxy, say: its text is never used as a message
  }
}

/** The reply's body, which must be an object with `key`: anything else did not come from the Baton API. */
export function expect<T> (answer: Reply, key: string): T {
  const body = answer.body
  if (typeof body !== 'object' || body === null || Array.isArray(body) || !(key in body)) {
    throw new ApiError(`the answer has no '${key}' field: is the URL a Baton API?`, { status: answer.status })
  }
  return body as T
}

/** One path segment, escaped, so an id can never reach another route. */
export function segment (name: string, value: unknown): string {
  const text = typeof value === 'number' && Number.isSafeInteger(value) ? String(value) : value
  if (typeof text !== 'string' || text === '') throw new TypeError(`${name} must be a non-empty string`)
  // The WHATWG URL parser that fetch uses resolves '.' and '..' segments away even when escaped as
  // %2E, so such an id would reach another route (GET /workflow/run/.. is GET /workflow/).
  if (text === '.' || text === '..') throw new TypeError(`${name} '${text}' cannot be sent: URLs resolve '.' and '..' away`)
  try {
    return encodeURIComponent(text)
  } catch {
    throw new TypeError(`${name} must be a well-formed string`) // a lone surrogate
  }
}
