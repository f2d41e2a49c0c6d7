"""Jobs/s of one worker process with a no-op handler against Kafka (no orchestrator).

Pre-produces N jobs on a fresh topic prefix, then times ``run_until_idle``: every job fetched, its
handler run, its result acknowledged by Kafka (acks=all) and its offset committed. Topics are deleted
afterwards. Usage (from the repository root):

    eval "$(infra/stack.sh env)"
    .venv/bin/python sdk-python/bench/noop_throughput.py --jobs 20000 --concurrency 8 --kind async
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from baton import Worker, WorkerSettings


async def produce(bootstrap: str, topic: str, jobs: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        template = {
            "v": 1, "workflow_id": "bench", "workflow_version": 1, "step": "noop", "action": "noop",
            "attempt": 1, "max_attempts": 4, "input": {"n": 0, "pad": "x" * 100},
            "deadline": "2030-01-01T00:00:00.000Z", "timeout_ms": 300000, "created_at": "2026-01-01T00:00:00.000Z",
        }  # fmt: skip
        futures = []
        for n in range(jobs):
            run_id = uuid.uuid4().hex
            job = template | {"job_id": uuid.uuid4().hex, "run_id": run_id, "input": {"n": n, "pad": "x" * 100}}
            futures.append(await producer.send(topic, json.dumps(job).encode(), key=run_id.encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    bootstrap = os.environ.get("BATON_KAFKA_BOOTSTRAP_SERVERS", "localhost:9092")
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    settings = WorkerSettings(bootstrap, f"{prefix}group", args.concurrency, prefix, topic_partitions=args.partitions)
    first_call: list[float] = []

    async def noop_async(payload: Any) -> None:
        if not first_call:
            first_call.append(time.perf_counter())

    def noop_sync(payload: Any) -> None:
        if not first_call:
            first_call.append(time.perf_counter())

    worker = Worker(settings=settings)
    worker.register("noop", noop_async if args.kind == "async" else noop_sync)
    # Create the topics with a throwaway burst, so the timed run measures jobs, not topic creation.
    await worker.run_until_idle(timeout=60)
    await produce(bootstrap, settings.jobs_topic("noop"), args.jobs)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    report = await worker.run_until_idle(timeout=600)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.delete_topics([t for t in await admin.list_topics() if t.startswith(prefix)])
    await admin.close()
    steady = wall - (first_call[0] - wall0)
    return {
        "jobs": args.jobs, "kind": args.kind, "concurrency": args.concurrency, "partitions": args.partitions,
        "completed": report.completed, "wall_s": round(wall, 2), "jobs_per_s": round(args.jobs / wall),
        "jobs_per_s_after_first_job": round(args.jobs / steady), "cpu_us_per_job": round(cpu / args.jobs * 1e6),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--kind", choices=("async", "sync"), default="async")
    print(json.dumps(asyncio.run(bench(parser.parse_args()))))


if __name__ == "__main__":
    main()
