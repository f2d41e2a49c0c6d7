// Baton Node worker with the demo actions. Run from the repository root after `make setup`:
//   node examples/node/worker.mjs
// Kafka address, group and concurrency come from BATON_* env vars (see sdk-node/README.md).
import { Worker } from '../../sdk-node/dist/src/index.js'
import { enrich, uppercase } from './actions.mjs'

const worker = new Worker()
worker.register('step1', (payload) => `Node processed: ${payload}`)
worker.register('node.enrich', enrich)
worker.register('node.uppercase', uppercase)
await worker.start() // runs until SIGINT/SIGTERM, which drain in-flight jobs first
