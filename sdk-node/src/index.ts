/** Public API of @baton/worker. Everything else under src/ is internal. */
export { Worker, type RunReport } from './worker.js'
export type { JobContext } from './context.js'
export type { Handler } from './execute.js'
export type { WorkerOptions, ClientOptions } from './config.js'
export { Client, type TriggerOptions, type RunFilters, type DeadLetterFilters } from './client.js'
export type {
  Run,
  RunStatus,
  RunSummary,
  Step,
  StepStatus,
  Attempt,
  ErrorInfo,
  TriggerResult,
  DeadLetter,
  DeadLetterStatus,
  WorkflowDefinition,
  StoredWorkflow,
  CancelResult,
  RetryResult,
  RedriveResult
} from './api.js'
export type { Logger, LogFields } from './logger.js'
export {
  BatonError,
  NonRetryableError,
  RetryLater,
  PayloadTooLarge,
  SerializationError,
  ConfigError,
  IdleTimeout,
  WorkerStateError,
  ApiError,
  BadRequest,
  Unauthorized,
  Forbidden,
  NotFound,
  Conflict,
  RequestTooLarge,
  ValidationFailed,
  ServiceUnavailable,
  ApiConnectionError,
  WaitTimeout,
  type ErrorCode
} from './errors.js'
export { VERSION } from './version.js'
