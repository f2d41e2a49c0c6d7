// Baton Node worker with the demo actions. Run from the repository root after `make setup`:
//   node examples/node/worker.mjs
// Kafka address, group and concurrency come from BATON_* env vars (see sdk-node/README.md).
// Tracing (R2.8): with BATON_TRACE_DIR or OTEL_EXPORTER_OTLP_ENDPOINT set, tracing.mjs registers an
// OpenTelemetry SDK first; otherwise nothing is loaded and the SDK's tracing stays a no-op.
import { Worker } from '../../sdk-node/dist/src/index.js'
import { enrich, uppercase } from './actions.mjs'

const wanted = ['BATON_TRACE_DIR', 'OTEL_EXPORTER_OTLP_ENDPOINT'].some((name) => (process.env[name] ?? '').trim() !== '')
const tracing = wanted ? await loadTracing() : undefined

const worker = new Worker()
worker.register('step1', (payload) => `Node processed: ${payload}`)
worker.register('node.enrich', enrich)
worker.register('node.uppercase', uppercase)
if (tracing !== undefined) {
  // The worker drains on SIGINT/SIGTERM (stop() is shared, so this waits for that same drain);
  // the spans of the last jobs are then flushed before the process ends.
  const flush = () => { worker.stop().finally(() => tracing.shutdown()).catch(() => {}) }
  process.once('SIGINT', flush)
  process.once('SIGTERM', flush)
}
await worker.start() // runs until SIGINT/SIGTERM, which drain in-flight jobs first

async function loadTracing () {
  try {
    return await (await import('./tracing.mjs')).setupTracing()
  } catch (err) {
    // One clear line instead of a stack: a checkout without `make setup`, or a BATON_TRACE_DIR that cannot be created.
    const hint = err?.code === 'ERR_MODULE_NOT_FOUND' ? "the example's packages are missing: run `npm ci` in examples/node (or `make setup`): " : ''
    process.stderr.write(`baton-worker-node: tracing setup failed: ${hint}${err?.message ?? err}\n`)
    process.exit(2)
  }
}
