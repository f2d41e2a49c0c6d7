/**
 * SIGINT/SIGTERM for a worker that owns them (`handleSignals`, the default): the first signal drains,
 * a second one exits at once. Installing a handler replaces the signal's default (terminate), so
 * once the drain is over the process must still end: handlers the drain gave up on, or abandoned
 * after their deadline, may keep the event loop alive for ever, and then it exits as the signal
 * would have (143 for SIGTERM, 130 for SIGINT).
 */
import type { Logger } from './logger.js'
import { describe } from './_runner.js'

export interface SignalTarget {
  stop: () => Promise<void>
  /** Handlers that have not settled, abandoned or not. */
  handlersRunning: () => number
  logger: Logger
}

/** Installs the handlers; returns the function that removes them. */
export function installSignalHandlers (target: SignalTarget): () => void {
  let signalled = false
  const onSignal = (signal: NodeJS.Signals): void => {
    const code = signal === 'SIGINT' ? 130 : 143
    // A second signal means "now": the operator gave up waiting for the drain.
    if (signalled) process.exit(code)
    signalled = true
    target.logger.info(`received ${signal}: draining`)
    target.stop()
      .then(() => exitIfHandlersLinger(target, code))
      .catch((err: unknown) => target.logger.error('stop failed', { error: describe(err) }))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  return () => {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
}

function exitIfHandlersLinger (target: SignalTarget, code: number): void {
  const running = target.handlersRunning()
  if (running === 0) return
  target.logger.warn('handlers still running after the drain; exiting', { handlers: running, exit_code: code })
  process.exit(code)
}
