"""Bench worker: the Python SDK's `baton.Worker` with a no-op async handler that records timings.

For every handler call it appends one CSV line to $BENCH_RECORD_FILE:

    job_id,run_id,step,attempt,t_entry,t_exit,lang

`t_entry` is `time.time()` as the handler is entered, `t_exit` just before it returns (the SDK then
encodes, produces with acks=all and commits). A background thread writes the lines every 100 ms, so the
side channel costs the hot path one deque append. Kafka address, topic prefix, group and concurrency
come from the usual BATON_* variables; the actions from $BENCH_ACTIONS (default `bench.noop`).
"""

from __future__ import annotations

import collections
import os
import threading
import time
from typing import Any

from baton import JobContext, Worker

# ~200 bytes of JSON: the output of every step, so each job of a chain carries the same payload size.
OUTPUT = {"ok": True, "pad": "x" * 180}
_records: collections.deque[str] = collections.deque()


async def noop(payload: Any, ctx: JobContext) -> dict[str, Any]:
    t_entry = time.time()
    _records.append(f"{ctx.job_id},{ctx.run_id},{ctx.step},{ctx.attempt},{t_entry:.6f},{time.time():.6f},py\n")
    return OUTPUT


def _flusher(path: str, stop: threading.Event) -> None:
    with open(path, "a", buffering=1 << 16) as f:
        while True:
            stopping = stop.wait(0.1)
            while _records:
                f.write(_records.popleft())
            f.flush()
            if stopping:
                return


def main() -> None:
    path = os.environ["BENCH_RECORD_FILE"]
    stop = threading.Event()
    thread = threading.Thread(target=_flusher, args=(path, stop), daemon=True, name="bench-flusher")
    thread.start()
    worker = Worker()
    for action in os.environ.get("BENCH_ACTIONS", "bench.noop").split(","):
        worker.register(action, noop)
    try:
        worker.start(drain_timeout=10)  # SIGTERM/SIGINT drain gracefully
    finally:
        stop.set()
        thread.join(5)


if __name__ == "__main__":
    main()
