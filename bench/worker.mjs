// Bench worker for the Node SDK: a no-op handler that records handler entry/exit times, same CSV as
// bench/worker.py (job_id,run_id,step,attempt,t_entry,t_exit,lang). Needs sdk-node built (npm run build).
// Kafka address, topic prefix, group and concurrency come from the usual BATON_* variables.
import fs from 'node:fs'
import { performance } from 'node:perf_hooks'
import { Worker } from '../sdk-node/dist/src/index.js'

const OUTPUT = { ok: true, pad: 'x'.repeat(180) }
const fd = fs.openSync(process.env.BENCH_RECORD_FILE, 'a')
let lines = []
const now = () => (performance.timeOrigin + performance.now()) / 1000
const flush = () => {
  if (lines.length) {
    fs.writeSync(fd, lines.join(''))
    lines = []
  }
}
setInterval(flush, 100).unref()
process.on('exit', flush)

const worker = new Worker()
for (const action of (process.env.BENCH_ACTIONS || 'bench.noop').split(',')) {
  worker.register(action, async (payload, ctx) => {
    const tEntry = now()
    lines.push(`${ctx.jobId},${ctx.runId},${ctx.step},${ctx.attempt},${tEntry.toFixed(6)},${now().toFixed(6)},node\n`)
    return OUTPUT
  })
}
await worker.start() // runs until SIGINT/SIGTERM, which drain in-flight jobs first
