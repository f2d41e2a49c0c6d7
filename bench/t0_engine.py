"""T0, the transport floor: W1's produce -> consume -> reply -> consume loop over Kafka, with no database.

A stand-in engine built from the same client library and settings as the orchestrator (aiokafka; the
producer idempotent, acks=all, linger 2 ms; the results consumer with manual commits, getmany of up to
1000 records) drives the real bench worker (`bench/worker.py`, the Python SDK). For each run it produces
step s0's job; every COMPLETED result of step k is decoded and step k+1's job is produced (the same job
envelope, ~200 B input); after the last step the run is done. Offsets are committed after the batch's
jobs were acknowledged, like the engine. No HTTP, no PostgreSQL, no Redis: what is left is the floor
that Kafka + the Python clients + the worker SDK put under any Baton number.

Arrivals are generated in this process (open loop, evenly spaced). Control protocol on stdin/stdout, one
JSON object per line:
  -> {"cmd": "point", "rate": R, "t_start": T, "duration": D, "steps": 10, "drain": S, "out": PATH}
  <- {"done": true, "sent": n, "completed": m}
  -> {"cmd": "quit"}
PATH receives `run_id,t_sched,t_done` lines, PATH.recv `run_id,step_index,t_polled` (when the engine
got each result, to split a hop into result-in and job-out).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

BOOTSTRAP = os.environ.get("BATON_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
PREFIX = os.environ["BATON_TOPIC_PREFIX"]
ACTION = "bench.noop"
JOBS, RESULTS = f"{PREFIX}jobs.{ACTION}", f"{PREFIX}results"
INPUT = {"n": 0, "pad": "x" * 180}


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def job(run_id: str, step: int, payload: object) -> tuple[bytes, bytes]:
    now = datetime.now(UTC)
    job_id = uuid.uuid4().hex
    value = orjson.dumps(
        {
            "v": 1, "job_id": job_id, "run_id": run_id, "workflow_id": "bench-t0", "workflow_version": 1,
            "step": f"s{step}", "action": ACTION, "attempt": 1, "max_attempts": 4, "input": payload,
            "deadline": iso(now + timedelta(minutes=5)), "timeout_ms": 300_000, "created_at": iso(now),
        }
    )  # fmt: skip
    return value, job_id.encode()


class Engine:
    def __init__(self) -> None:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True, linger_ms=2, max_batch_size=256 * 1024
        )
        self.consumer = AIOKafkaConsumer(
            RESULTS,
            bootstrap_servers=BOOTSTRAP,
            group_id=f"{PREFIX}t0-engine",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
        )
        self.steps = 10
        self.open: dict[str, float] = {}  # run_id -> t_sched
        self.done: list[tuple[str, float, float]] = []
        self.received: list[tuple[str, int, float]] = []  # run_id, step index, when its result was polled

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        await admin.start()
        try:
            resp = await admin.create_topics([NewTopic(t, 6, 1) for t in (JOBS, RESULTS)])
            for err in resp.topic_errors:
                if err[1] not in (0, TopicAlreadyExistsError.errno):
                    raise RuntimeError(f"create topic {err[0]}: error {err[1]}")
        finally:
            await admin.close()
        await self.producer.start()
        await self.consumer.start()

    async def send(self, run_id: str, step: int, payload: object) -> asyncio.Future:  # type: ignore[type-arg]
        value, job_id = job(run_id, step, payload)
        return await self.producer.send(JOBS, value, key=run_id.encode(), headers=[("baton-job-id", job_id)])

    async def results_loop(self) -> None:
        while True:
            polled = await self.consumer.getmany(timeout_ms=500, max_records=1000)
            records = [r for batch in polled.values() for r in batch]
            if not records:
                continue
            futures = []
            now = time.time()
            for rec in records:
                res = orjson.loads(rec.value)
                if res.get("status") != "COMPLETED":
                    continue
                run_id = res["run_id"]
                k = int(res["step"][1:])
                self.received.append((run_id, k, now))
                if k + 1 < self.steps:
                    futures.append(await self.send(run_id, k + 1, res["output"]))
                elif run_id in self.open:
                    self.done.append((run_id, self.open.pop(run_id), now))
            if futures:
                await asyncio.gather(*futures)
            await self.consumer.commit()

    async def point(self, rate: float, t_start: float, duration: float, drain: float, out: str) -> dict[str, int]:
        self.done, self.received = [], []
        n = int(rate * duration)
        sent = 0
        for i in range(n):
            sched = t_start + i / rate
            delay = sched - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            run_id = str(uuid.uuid4())
            self.open[run_id] = sched
            await self.send(run_id, 0, INPUT)  # not awaited for the ack: open loop
            sent += 1
        deadline = time.time() + drain
        while self.open and time.time() < deadline:  # noqa: ASYNC110 - polled, bounded drain
            await asyncio.sleep(0.1)
        with open(out, "w") as f:
            for run_id, t_sched, t_done in self.done:
                f.write(f"{run_id},{t_sched:.6f},{t_done:.6f}\n")
            for run_id, t_sched in self.open.items():
                f.write(f"{run_id},{t_sched:.6f},\n")
        with open(out + ".recv", "w") as f:
            for run_id, k, t in self.received:
                f.write(f"{run_id},{k},{t:.6f}\n")
        self.open.clear()
        return {"sent": sent, "completed": len(self.done)}


async def main() -> None:
    engine = Engine()
    await engine.start()
    loop_task = asyncio.create_task(engine.results_loop())
    reader = asyncio.StreamReader()
    await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    try:
        while line := await reader.readline():
            cmd = json.loads(line)
            if cmd["cmd"] == "quit":
                break
            engine.steps = int(cmd.get("steps", 10))
            res = await engine.point(cmd["rate"], cmd["t_start"], cmd["duration"], cmd["drain"], cmd["out"])
            print(json.dumps({"done": True, **res}), flush=True)
    finally:
        loop_task.cancel()
        await asyncio.gather(loop_task, return_exceptions=True)
        await engine.consumer.stop()
        await engine.producer.stop()


if __name__ == "__main__":
    asyncio.run(main())
