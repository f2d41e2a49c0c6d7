/**
 * Waits for a running handler, its job's deadline plus the grace, or the job's abort, whichever
 * comes first. The deadline is read again whenever the timer fires, because `ctx.heartbeat()`
 * moves it; a job that arrives already past its deadline still gets the grace (worker and
 * orchestrator clocks may differ by a little, and the orchestrator times the attempt out anyway).
 */
import type { JobContext } from './context.js'

export type Race<T> =
  | { kind: 'done', value: T }
  | { kind: 'late', lateMs: number }
  | { kind: 'aborted' }

// setTimeout fires at once for delays over 2^31-1 ms; far deadlines are re-armed instead.
const MAX_TIMER_MS = 3_600_000

export async function raceDeadline<T> (running: Promise<T>, ctx: JobContext, graceMs: number): Promise<Race<T>> {
  const floor = Date.now() + graceMs
  return await new Promise<Race<T>>((resolve) => {
    let timer: NodeJS.Timeout | undefined
    const finish = (race: Race<T>): void => {
      clearTimeout(timer)
      ctx.signal.removeEventListener('abort', onAbort)
      resolve(race)
    }
    const onAbort = (): void => finish({ kind: 'aborted' })
    const arm = (): void => {
      const expiry = Math.max(ctx.deadline.getTime() + graceMs, floor)
      const wait = expiry - Date.now()
      if (wait <= 0) {
        finish({ kind: 'late', lateMs: Math.max(0, Date.now() - ctx.deadline.getTime()) })
        return
      }
      timer = setTimeout(arm, Math.min(wait, MAX_TIMER_MS))
      timer.unref()
    }
    ctx.signal.addEventListener('abort', onAbort, { once: true })
    running.then((value) => finish({ kind: 'done', value }), () => finish({ kind: 'aborted' }))
    arm()
  })
}
