"""The engine SIGKILLed in the middle of 100 runs and restarted: every run finishes, none twice."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections import Counter

from .conftest import eventually

STEPS = {"id": "crashy", "steps": [{"action": "c.one"}, {"action": "c.two"}, {"action": "c.three"}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_engine(settings, log_path) -> subprocess.Popen:
    env = {**os.environ}
    for name, value in settings.model_dump().items():
        if value is not None:  # unset stays unset
            env[f"BATON_{name.upper()}"] = str(value)
    log = open(log_path, "ab")
    cmd = [sys.executable, "-m", "baton_orchestrator", "server", "--role", "engine", "--port", str(free_port())]
    return subprocess.Popen(cmd, env=env, stdout=log, stderr=log)


async def test_all_runs_finish_exactly_once_when_the_engine_is_killed_mid_batch(
    start_app, settings, raw_worker, tmp_path
):
    api = await start_app(role="api")
    await api.define(STEPS)
    ledger: Counter[tuple[str, str]] = Counter()

    async def handle(job):
        ledger[(job["run_id"], job["step"])] += 1
        await asyncio.sleep(0.002)
        return job["step"]

    engine = start_engine(settings, tmp_path / "engine.log")
    try:
        async with raw_worker({"c.one": handle, "c.two": handle, "c.three": handle}):
            run_ids = [(await api.trigger("crashy", i)).json()["run_id"] for i in range(100)]
            await eventually(lambda: _async(sum(ledger.values()) >= 60), timeout=60)
            engine.send_signal(signal.SIGKILL)
            engine.wait(10)
            engine = start_engine(settings, tmp_path / "engine.log")
            await eventually(lambda: _all_finished(api, run_ids), timeout=90, every=0.5)
    finally:
        engine.kill()
        engine.wait(10)
    db = api.app.state.core.db
    statuses = await db.fetchall("SELECT status, count(*) FROM runs GROUP BY status")
    completions = await db.fetchall(
        "SELECT run_id, step, count(*) AS n FROM attempts WHERE status = 'COMPLETED' GROUP BY run_id, step"
    )
    assert dict(statuses) == {"COMPLETED": 100}
    assert len(completions) == 300 and all(c.n == 1 for c in completions)
    assert len(ledger) == 300  # every step a completed run needed ran at least once


async def _all_finished(api, run_ids) -> bool:
    row = await api.app.state.core.db.fetchone(
        "SELECT count(*) FROM runs WHERE status = 'COMPLETED' AND id = ANY(CAST(%(ids)s AS uuid[]))", {"ids": run_ids}
    )
    return bool(row[0] == len(run_ids))


async def _async(value):
    return value
