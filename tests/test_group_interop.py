"""Python, Node and Java workers in ONE consumer group (DESIGN §2), each subscribed only to the job
topics of its own actions plus one shared action: every job must get exactly one COMPLETED result from
a worker whose language registered the action, and nothing may be dead-lettered, whichever language
joined first and so leads the group (the leader computes the assignment for everyone).

Python runs in-process; Node (tests/interop/node_worker.mjs, needs `npm run build` in sdk-node) and
Java (tests/interop/InteropWorker.java on sdk-java's class path, built here with Maven) run as
subprocesses. All traffic goes to the stack's Kafka; every process started here is stopped in finally.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CoordinatorLoadInProgressError,
    GroupCoordinatorNotAvailableError,
    NotCoordinatorError,
)

from baton import Worker

ROOT = Path(__file__).resolve().parents[1]
SHARED = "interop.shared"
ACTIONS = {
    "python": ["interop.python", SHARED],
    "node": ["interop.node", SHARED],
    "java": ["interop.java", SHARED],
}
PARTITIONS = 3
JOBS_PER_ACTION = 6
START_TIMEOUT = 90.0  # Java: Maven builds the class path first
RESULT_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def java_classpath() -> str:
    """sdk-java's classes and dependencies, compiled by Maven if needed (once per module)."""
    out = ROOT / "sdk-java" / "target" / "interop-classpath.txt"
    cmd = [
        "mvn",
        "-q",
        "-B",
        "-f",
        "sdk-java/pom.xml",
        "compile",
        "dependency:build-classpath",
        f"-Dmdep.outputFile={out}",
        "-Dmdep.includeScope=test",
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, f"maven failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return f"{ROOT / 'sdk-java' / 'target' / 'classes'}{os.pathsep}{out.read_text().strip()}"


def _job(action: str, payload: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    iso = lambda t: t.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # noqa: E731
    return {
        "v": 1,
        "job_id": str(uuid.uuid4()),
        "run_id": str(uuid.uuid4()),
        "workflow_id": "wf-interop",
        "workflow_version": 1,
        "step": f"step-{action}",
        "action": action,
        "attempt": 1,
        "max_attempts": 3,
        "input": payload,
        "deadline": iso(now + timedelta(minutes=5)),
        "timeout_ms": 300_000,
        "created_at": iso(now),
    }


async def _group_members(admin: AIOKafkaAdminClient, group: str) -> int | None:
    """Member count once the group is Stable with every member holding partitions, else None."""
    try:
        [response] = await admin.describe_consumer_groups([group])
    except (GroupCoordinatorNotAvailableError, CoordinatorLoadInProgressError, NotCoordinatorError):
        # A fresh broker creates __consumer_offsets on the first group: its coordinator is briefly unknown.
        return None
    for g in response.groups:
        # (error_code, group_id, state, protocol_type, protocol, members, ...); a member's last field,
        # its assignment, is a ConsumerProtocolAssignment: int16 version, then an int32 topic count.
        _error, _gid, state, _ptype, _protocol, members = g[:6]
        if state == "Stable" and all(len(m[-1]) >= 6 and int.from_bytes(m[-1][2:6], "big") > 0 for m in members):
            return len(members)
    return None


async def _await_members(admin: AIOKafkaAdminClient, group: str, count: int, procs: Any) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while await _group_members(admin, group) != count:
        procs.check_alive()
        assert time.monotonic() < deadline, f"group never had {count} stable members\n{procs.logs()}"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("leader", ["python", "node", "java"])
async def test_python_node_and_java_workers_share_one_group(
    services: Any, unique: str, processes: Any, java_classpath: str, leader: str
) -> None:
    prefix, group = f"t-{unique}-", f"t-{unique}-g"
    topic = lambda suffix: f"{prefix}{suffix}"  # noqa: E731
    env = {
        **os.environ,
        "BATON_KAFKA_BOOTSTRAP_SERVERS": services.kafka,
        "BATON_TOPIC_PREFIX": prefix,
        "BATON_WORKER_GROUP": group,
        "BATON_TOPIC_PARTITIONS": str(PARTITIONS),
    }
    admin = AIOKafkaAdminClient(bootstrap_servers=services.kafka)
    await admin.start()
    all_actions = sorted({a for actions in ACTIONS.values() for a in actions})
    await admin.create_topics(
        [NewTopic(topic(s), PARTITIONS, 1) for s in [*(f"jobs.{a}" for a in all_actions), "results", "jobs.DLT"]]
    )
    procs = processes
    py_worker = Worker(services.kafka, group, topic_prefix=prefix)
    for action in ACTIONS["python"]:
        py_worker.register(action, lambda payload: f"python:{payload}")
    py_task: asyncio.Task[Any] | None = None
    producer = AIOKafkaProducer(bootstrap_servers=services.kafka, acks="all", enable_idempotence=True)
    reader = AIOKafkaConsumer(bootstrap_servers=services.kafka, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        # One at a time, waiting for each join to settle: the first member stays the group leader.
        order = [leader, *(lang for lang in ("python", "node", "java") if lang != leader)]
        for count, language in enumerate(order, start=1):
            if language == "python":
                py_task = asyncio.create_task(py_worker.run())
            elif language == "node":
                procs.start("node", ["node", "tests/interop/node_worker.mjs", *ACTIONS["node"]], env)
            else:
                procs.start(
                    "java", ["java", "-cp", java_classpath, "tests/interop/InteropWorker.java", *ACTIONS["java"]], env
                )
            await _await_members(admin, group, count, procs)

        await producer.start()
        jobs = [_job(a, f"{a}-{i}") for a in all_actions for i in range(JOBS_PER_ACTION)]
        for job in jobs:
            await producer.send_and_wait(
                topic(f"jobs.{job['action']}"), json.dumps(job).encode(), key=job["run_id"].encode()
            )

        await reader.start()
        partitions = [TopicPartition(topic("results"), p) for p in range(PARTITIONS)]
        reader.assign(partitions)
        await reader.seek_to_beginning(*partitions)
        completed: dict[str, list[dict[str, Any]]] = defaultdict(list)
        wanted = {j["job_id"] for j in jobs}
        deadline = time.monotonic() + RESULT_TIMEOUT
        grace_until: float | None = None  # keep reading briefly after the last one, to see duplicates
        while grace_until is None or time.monotonic() < grace_until:
            procs.check_alive()
            assert time.monotonic() < deadline, (
                f"{len(wanted - completed.keys())} of {len(wanted)} jobs without a result\n{procs.logs()}"
            )
            batches = await reader.getmany(timeout_ms=200)
            for records in batches.values():
                for record in records:
                    result = json.loads(record.value)
                    if result["status"] != "HEARTBEAT":
                        completed[result["job_id"]].append(result)
            if grace_until is None and wanted <= completed.keys():
                grace_until = time.monotonic() + 1.0

        by_language: Counter[str] = Counter()
        for job in jobs:
            results = completed[job["job_id"]]
            assert len(results) == 1, f"{job['action']} job has {len(results)} results: {results}"
            [result] = results
            language = result["worker"]["language"]
            assert result["status"] == "COMPLETED", result
            assert job["action"] in ACTIONS[language], f"{job['action']} ran on {language}"
            assert result["output"] == f"{language}:{job['input']}"
            by_language[language] += 1
        assert set(by_language) == {"python", "node", "java"}, by_language

        ends = await reader.end_offsets([TopicPartition(topic("jobs.DLT"), p) for p in range(PARTITIONS)])
        assert sum(ends.values()) == 0, "a job was dead-lettered"
        procs.check_alive()
    finally:
        procs.stop_all()
        if py_task is not None:
            await py_worker.stop(timeout=10)
            await asyncio.wait_for(py_task, 15)
        await reader.stop()
        await producer.stop()
        try:
            mine = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if mine:
                await admin.delete_topics(mine)
        finally:
            await admin.close()
