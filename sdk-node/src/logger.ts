/**
 * The SDK never writes to the console directly: everything goes through a Logger, which an
 * application replaces with its own (pino, winston, a test spy) via `new Worker({ logger })`.
 */
export type LogFields = Record<string, unknown>

export interface Logger {
  debug: (message: string, fields?: LogFields) => void
  info: (message: string, fields?: LogFields) => void
  warn: (message: string, fields?: LogFields) => void
  error: (message: string, fields?: LogFields) => void
}

/** Info and above to stderr as one line each; debug is silent. */
export function defaultLogger (): Logger {
  const write = (level: string, message: string, fields?: LogFields): void => {
    const extra = fields === undefined ? '' : ' ' + safeJson(fields)
    process.stderr.write(`${new Date().toISOString()} ${level} baton: ${message}${extra}\n`)
  }
  return {
    debug: () => {},
    info: (m, f) => write('INFO', m, f),
    warn: (m, f) => write('WARN', m, f),
    error: (m, f) => write('ERROR', m, f)
  }
}

/** A logger that adds fixed fields (job id, action) to every line of a child. */
export function childLogger (parent: Logger, bound: LogFields): Logger {
  const merge = (f?: LogFields): LogFields => (f === undefined ? bound : { ...bound, ...f })
  return {
    debug: (m, f) => parent.debug(m, merge(f)),
    info: (m, f) => parent.info(m, merge(f)),
    warn: (m, f) => parent.warn(m, merge(f)),
    error: (m, f) => parent.error(m, merge(f))
  }
}

// A log line must never throw (cyclic objects, BigInt), or logging would fail the job.
function safeJson (fields: LogFields): string {
  try {
    return JSON.stringify(fields, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v instanceof Error ? v.message : v))
  } catch {
    return '{"fields":"<unserialisable>"}'
  }
}
