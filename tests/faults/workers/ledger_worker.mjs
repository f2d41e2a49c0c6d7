// Node ledger worker for the fault suite: every action in LEDGER_ACTIONS appends
// "start|done,node,job_id,attempt,run_id,step" to LEDGER_FILE, sleeping LEDGER_SLEEP_MS in between.
import { appendFileSync } from 'node:fs'
import { Worker } from '../../../sdk-node/dist/src/index.js'

const ledger = process.env.LEDGER_FILE
const sleepMs = Number(process.env.LEDGER_SLEEP_MS ?? '0')
const record = (phase, ctx) =>
  appendFileSync(ledger, `${phase},node,${ctx.jobId},${ctx.attempt},${ctx.runId},${ctx.step}\n`)

const worker = new Worker()
for (const action of process.env.LEDGER_ACTIONS.split(',')) {
  worker.register(action, async (payload, ctx) => {
    record('start', ctx)
    if (sleepMs > 0) await new Promise((resolve) => setTimeout(resolve, sleepMs))
    record('done', ctx)
    return payload
  })
}
await worker.start()
