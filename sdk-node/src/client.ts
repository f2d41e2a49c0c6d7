/**
 * `Client`: the orchestrator's HTTP API from Node, with the same methods as the Python SDK's
 * `baton.Client` and Java's `BatonClient`, on the built-in `fetch`. Answers are the API's JSON values
 * (typed in ./api.ts); failures reject with the `ApiError` subclasses of ./errors.ts.
 *
 *     const client = new Client()   // BATON_API_URL, BATON_API_KEY
 *     const run = await client.trigger('order', { id: 42 }, { idempotencyKey: 'order-42', waitMs: 30_000 })
 */
import type {
  CancelResult,
  DeadLetter,
  DeadLetterStatus,
  RedriveResult,
  RetryResult,
  Run,
  RunStatus,
  RunSummary,
  StoredWorkflow,
  TriggerResult,
  WorkflowDefinition
} from './api.js'
import { resolveClientConfig, type ClientOptions } from './config.js'
import { ApiError, WaitTimeout } from './errors.js'
import { Transport, expect, segment, type ApiRequest } from './_http.js'

export interface TriggerOptions {
  /** A replay with the same key (and body) answers with the same run; another body is a `Conflict`. */
  idempotencyKey?: string
  /** Wait up to this long for the run to finish: the answer is then the run's detail (check `status`). */
  waitMs?: number
}

export interface RunFilters {
  workflowId?: string
  status?: RunStatus
  /** Most items returned (default 50); pages are followed until then. */
  limit?: number
}

export interface DeadLetterFilters {
  /** Default `OPEN`. */
  status?: DeadLetterStatus
  workflowId?: string
  /** Most items returned (default 50); pages are followed until then. */
  limit?: number
}

const TERMINAL: ReadonlySet<string> = new Set(['COMPLETED', 'FAILED', 'CANCELLED'])
// Per GET ?wait=: below the server's cap (300 s) and most proxies' idle timeouts.
const LONG_POLL_MAX_MS = 60_000
/** The API's largest page; tests lower `size` to cross page boundaries with few items. */
export const PAGING = { size: 500 }

/** A client of the Baton HTTP API; `close()` it to abort what is in flight. Invalid options throw `ConfigError`. */
export class Client {
  readonly #http: Transport

  constructor (options: ClientOptions = {}) {
    this.#http = new Transport(resolveClientConfig(options))
  }

  get baseUrl (): string {
    return this.#http.config.baseUrl
  }

  get timeoutMs (): number {
    return this.#http.config.timeoutMs
  }

  /** `POST /workflow`: store a definition (a new version when the id exists); the stored definition. */
  async define (definition: WorkflowDefinition): Promise<StoredWorkflow> {
    return expect(await this.#http.send({ method: 'POST', path: '/workflow', body: definition }), 'id')
  }

  /**
   * `POST /workflow/{id}/trigger`: start a run with `input` (default `null`). Without `waitMs`: the
   * trigger answer (`run_id`, `links`, ...). With it: the run's detail once it is terminal, or as it
   * stands when the wait ends.
   */
  trigger (workflowId: string, input?: unknown, options?: TriggerOptions & { waitMs?: undefined }): Promise<TriggerResult>
  trigger (workflowId: string, input: unknown, options: TriggerOptions & { waitMs: number }): Promise<Run>
  trigger (workflowId: string, input?: unknown, options?: TriggerOptions): Promise<TriggerResult | Run>
  async trigger (workflowId: string, input: unknown = null, options: TriggerOptions = {}): Promise<TriggerResult | Run> {
    const request: ApiRequest = { method: 'POST', path: `/workflow/${segment('workflow_id', workflowId)}/trigger`, body: { input } }
    const key = options.idempotencyKey
    if (key !== undefined) {
      if (typeof key !== 'string' || key === '') throw new TypeError('idempotency_key must be a non-empty string')
      request.headers = { 'Idempotency-Key': key }
    }
    if (options.waitMs !== undefined) {
      request.waitMs = milliseconds('wait', options.waitMs)
      request.query = { wait: seconds(request.waitMs) }
    }
    return expect(await this.#http.send(request), 'run_id')
  }

  /** `GET /workflow/run/{id}`: `status`, `output`, `version`, `steps[].attempts[]`, ... */
  async getRun (runId: string): Promise<Run> {
    return expect(await this.#http.send({ method: 'GET', path: runPath(runId) }), 'status')
  }

  /**
   * The run once COMPLETED, FAILED or CANCELLED, by long polls of at most 60 s each. Rejects with
   * `WaitTimeout` (`.run`: the run as it stood) when `timeoutMs` passes first.
   */
  async waitForRun (runId: string, timeoutMs: number): Promise<Run> {
    const path = runPath(runId)
    const deadline = performance.now() + milliseconds('timeout', timeoutMs)
    for (;;) {
      const waitMs = Math.max(0, Math.min(LONG_POLL_MAX_MS, deadline - performance.now()))
      const run: Run = expect(await this.#http.send({ method: 'GET', path, query: { wait: seconds(waitMs) }, waitMs }), 'status')
      if (TERMINAL.has(run.status)) return run
      if (performance.now() >= deadline) throw new WaitTimeout(`run ${runId} is still ${run.status} after ${timeoutMs} ms`, run)
    }
  }

  /** `GET /workflow/runs`: up to `limit` runs (default 50), newest first, following `next_cursor`. */
  async listRuns (filters: RunFilters = {}): Promise<RunSummary[]> {
    const { workflowId, status, limit = 50 } = filters
    return await this.#pages('/workflow/runs', limit, { workflow_id: workflowId, status })
  }

  /** `POST /workflow/run/{id}/cancel`: stop a running run (`Conflict` when it is not running). */
  async cancel (runId: string): Promise<CancelResult> {
    return expect(await this.#http.send({ method: 'POST', path: `${runPath(runId)}/cancel` }), 'status')
  }

  /** `POST /workflow/run/{id}/retry`: re-open a FAILED run's dead-lettered steps. */
  async retry (runId: string): Promise<RetryResult> {
    return expect(await this.#http.send({ method: 'POST', path: `${runPath(runId)}/retry` }), 'status')
  }

  /** `GET /dlq`: up to `limit` dead letters (default 50) of `status` (default `OPEN`), newest first. */
  async listDeadLetters (filters: DeadLetterFilters = {}): Promise<DeadLetter[]> {
    const { status = 'OPEN', workflowId, limit = 50 } = filters
    return await this.#pages('/dlq', limit, { status, workflow_id: workflowId })
  }

  /**
   * `POST /dlq/{id}/redrive`: a fresh attempt budget for the step, with `input` as its new input when
   * given (`null` is an input; `undefined` or leaving it out keeps the step's own).
   */
  async redrive (deadLetterId: number | string, input?: unknown): Promise<RedriveResult> {
    const path = `/dlq/${segment('dead_letter_id', deadLetterId)}/redrive`
    const body = input === undefined ? undefined : { input }
    return expect(await this.#http.send({ method: 'POST', path, body }), 'status')
  }

  /** `DELETE /dlq/{id}`: close the dead letter without running the step again. */
  async discard (deadLetterId: number | string): Promise<void> {
    await this.#http.send({ method: 'DELETE', path: `/dlq/${segment('dead_letter_id', deadLetterId)}` })
  }

  /** Aborts the requests in flight (they reject with `ApiConnectionError`); later calls reject likewise. */
  close (): void {
    this.#http.close()
  }

  [Symbol.dispose] (): void {
    this.close()
  }

  async #pages<T> (path: string, limit: number, filters: Record<string, string | undefined>): Promise<T[]> {
    if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError('limit must be a positive integer')
    const items: T[] = []
    let cursor: string | undefined
    while (items.length < limit) {
      const query = { ...filters, limit: Math.min(PAGING.size, limit - items.length), cursor }
      const answer = await this.#http.send({ method: 'GET', path, query })
      const page: { items: unknown, next_cursor?: unknown } = expect(answer, 'items')
      if (!Array.isArray(page.items)) throw new ApiError('the answer\'s items are not a list: is the URL a Baton API?', { status: answer.status })
      items.push(...page.items as T[])
      if (typeof page.next_cursor !== 'string' || page.next_cursor === '') break
      cursor = page.next_cursor
    }
    return items.slice(0, limit)
  }
}

function runPath (runId: string): string {
  return `/workflow/run/${segment('run_id', runId)}`
}

function milliseconds (name: string, value: unknown): number {
  if (typeof value !== 'number' || !(value >= 0 && value < Infinity)) {
    throw new RangeError(`${name} must be a non-negative number of milliseconds`)
  }
  return value
}

/** Milliseconds as the API's seconds, in plain decimals (never `1e-7`). */
function seconds (ms: number): string {
  return String(Math.round(ms) / 1000)
}
