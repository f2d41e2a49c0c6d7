/** Public API of @baton/worker. Everything else under src/ is internal. */
export { Worker, type RunReport } from './worker.js'
export type { JobContext } from './context.js'
export type { Handler } from './execute.js'
export type { WorkerOptions } from './config.js'
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
  type ErrorCode
} from './errors.js'
export { VERSION } from './version.js'
