/**
 * The JSON values the Baton HTTP API answers with, as types (see the server's `/openapi.json`). They
 * describe the fields clients read most; the server may add fields, which arrive untouched.
 * Timestamps are RFC 3339 strings, as on the wire.
 */

export type RunStatus = 'PENDING' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'CANCELLED'
export type StepStatus = 'PENDING' | 'QUEUED' | 'RUNNING' | 'COMPLETED' | 'FAILED' | 'DEAD_LETTERED' | 'CANCELLED' | 'SKIPPED'
export type DeadLetterStatus = 'OPEN' | 'REDRIVEN' | 'DISCARDED'

/** A failed attempt's, step's or run's error, as the worker reported it. */
export interface ErrorInfo {
  type: string
  message: string
  stacktrace?: string | null
  retryable?: boolean
  retry_after_ms?: number | null
  [field: string]: unknown
}

/** One attempt of a step: `GET /workflow/run/{id}` → `steps[].attempts[]`. */
export interface Attempt {
  attempt: number
  job_id: string
  status: string
  worker: { id: string, language: string, sdk_version: string, [field: string]: unknown } | null
  queued_at: string | null
  started_at: string | null
  finished_at: string | null
  output: unknown
  error: ErrorInfo | null
  [field: string]: unknown
}

export interface Step {
  name: string
  action: string
  status: StepStatus
  attempt: number
  max_attempts: number
  input: unknown
  output: unknown
  error: ErrorInfo | null
  deadline: string | null
  next_attempt_at: string | null
  attempts: Attempt[]
  [field: string]: unknown
}

/** A run with every step and attempt: `getRun()`, `waitForRun()`, `trigger()` with `waitMs`. */
export interface Run {
  run_id: string
  workflow_id: string
  workflow_version: number
  status: RunStatus
  idempotency_key: string | null
  created_at: string
  updated_at: string
  finished_at: string | null
  input: unknown
  output: unknown
  error: ErrorInfo | null
  steps: Step[]
  /** Changes whenever the run does. */
  version: string
  [field: string]: unknown
}

/** An item of `listRuns()`: a run without its steps. */
export interface RunSummary {
  run_id: string
  workflow_id: string
  workflow_version: number
  status: RunStatus
  idempotency_key: string | null
  created_at: string
  updated_at: string
  finished_at: string | null
  [field: string]: unknown
}

/** What `trigger()` answers without `waitMs`; a replay of its key answers the same body. */
export interface TriggerResult {
  run_id: string
  workflow_id: string
  workflow_version: number
  idempotency_key: string | null
  created_at: string
  links: { run: string, [link: string]: string }
  [field: string]: unknown
}

export interface DeadLetter {
  id: number
  run_id: string
  workflow_id: string
  step: string
  action: string
  job_id: string
  attempt: number
  reason: string
  error: ErrorInfo | null
  input: unknown
  status: DeadLetterStatus
  created_at: string
  resolved_at: string | null
  [field: string]: unknown
}

/** A definition to `define()`: `id` and `steps` (see the README's "Workflows"); more fields allowed. */
export interface WorkflowDefinition {
  id: string
  steps: Array<{ action: string, name?: string, depends_on?: string[], [field: string]: unknown }>
  [field: string]: unknown
}

/** The stored definition `define()` answers with: names and edges explicit, the new `version`. */
export interface StoredWorkflow extends WorkflowDefinition {
  version: number
  created_at: string
}

export interface CancelResult { run_id: string, status: 'CANCELLED', [field: string]: unknown }
export interface RetryResult { run_id: string, status: RunStatus, reopened_steps: string[], [field: string]: unknown }
export interface RedriveResult { id: number, run_id: string, step: string, status: 'REDRIVEN', [field: string]: unknown }
