// The Restate side of the peer benchmark: Baton's W1 (10 sequential no-op steps, each a job dispatched to a
// worker) written as a Restate service. `Chain.run` calls `Step.run` 10 times in sequence, each as its own
// durable service-to-service call (ctx.serviceClient): Restate journals the call, invokes Step.run as a new
// invocation on this endpoint, journals its result and resumes Chain.run with it. That is the closest
// analogue of Baton's engine dispatching a job to a worker and recording its result.
//
// Started by bench/peers/restate.py with the SDK installed in a temporary directory:
//   NODE_PATH is not used by ESM, so the harness passes the SDK's entry file as RESTATE_SDK (a file URL).
//   BENCH_PORT = the port to listen on (127.0.0.1 only).
import http2 from "node:http2";

// The SDK uses Promise.withResolvers (Node 22+); on Node 20 it is added here, as the standard defines it.
if (typeof Promise.withResolvers !== "function") {
  Promise.withResolvers = function withResolvers() {
    let resolve, reject;
    const promise = new this((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

const restate = await import(process.env.RESTATE_SDK ?? "@restatedev/restate-sdk");
const STEPS = 10;

// The no-op step: returns its input with the step number, like bench/worker.py's handler (~200 B JSON).
const step = restate.service({
  name: "Step",
  handlers: {
    run: async (_ctx, input) => ({ ...input, step: input.step + 1 }),
  },
});

const chain = restate.service({
  name: "Chain",
  handlers: {
    run: async (ctx, input) => {
      let out = { ...input, step: 0 };
      for (let i = 0; i < STEPS; i++) {
        out = await ctx.serviceClient(step).run(out);
      }
      return out;
    },
  },
});

const port = Number(process.env.BENCH_PORT);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error(`BENCH_PORT must be a TCP port, got ${JSON.stringify(process.env.BENCH_PORT)}`);
  process.exit(2);
}
// The SDK's own listen() binds every interface; the bench binds loopback only. Restate talks HTTP/2 (h2c)
// to a deployment, so this is an http2 server.
const server = http2.createServer(restate.createEndpointHandler({ services: [step, chain] }));
server.listen(port, "127.0.0.1", () => console.error(`restate chain service listening on 127.0.0.1:${port}`));
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
