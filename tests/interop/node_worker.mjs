// Interop fixture: a Node worker registering the actions named on the command line; each handler
// returns "node:<payload>". Kafka address, group and topic prefix come from BATON_* env vars.
// Run from the repository root after `npm run build` in sdk-node:
//   node tests/interop/node_worker.mjs interop.node interop.shared
import { Worker } from '../../sdk-node/dist/src/index.js'

const worker = new Worker()
for (const action of process.argv.slice(2)) worker.register(action, (payload) => `node:${payload}`)
await worker.start() // until SIGTERM, which drains in-flight jobs first
console.log(`READY ${worker.id}`)
