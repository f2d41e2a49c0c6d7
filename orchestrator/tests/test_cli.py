"""The `baton` CLI end to end: a real `baton server` process, real Kafka/PostgreSQL/Redis, a raw worker;
the live view checked in a pseudo-terminal (pexpect), `--output json` parsed, exit codes checked."""

from __future__ import annotations

import asyncio
import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pexpect
import pytest

from .conftest import eventually

BATON = str(Path(sys.executable).parent / "baton")
WF = """
id: cli-demo
retry: {max_retries: 0}
steps:
  - {name: first, action: cli.one}
  - {name: second, action: cli.two, depends_on: [first]}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def server(settings, tmp_path):
    env = {**os.environ}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"BATON_{name.upper()}"] = str(value)
    port = _free_port()
    proc = _start(env, port, tmp_path / "server.log")
    url = f"http://127.0.0.1:{port}"

    async def up() -> bool:
        assert proc.poll() is None, (tmp_path / "server.log").read_text()
        try:
            async with httpx.AsyncClient() as c:
                return (await c.get(f"{url}/health", timeout=2)).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(up, 40, 0.2)
    yield url
    proc.terminate()
    proc.wait(20)


def _start(env: dict[str, str], port: int, log_path: Path) -> subprocess.Popen[bytes]:
    log = open(log_path, "ab")
    return subprocess.Popen([BATON, "server", "--port", str(port)], env=env, stdout=log, stderr=log)


async def baton(url: str, *args: str, stdin: bytes | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        BATON,
        *args,
        env={**os.environ, "BATON_API_URL": url, "COLUMNS": "160"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def _defined(url: str, tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WF)
    code, out, err = await baton(url, "workflows", "apply", "-f", str(tmp_path / "wf.yaml"))
    assert code == 0 and "defined cli-demo version 1 (2 steps)" in out, (out, err)


async def test_trigger_wait_json_and_exit_codes_when_runs_complete_fail_or_time_out(server, raw_worker, tmp_path):
    await _defined(server, tmp_path)
    code, out, _ = await baton(server, "workflows", "ls", "-o", "json")
    assert code == 0 and [w["id"] for w in json.loads(out)] == ["cli-demo"]
    code, out, _ = await baton(server, "workflows", "show", "cli-demo")
    assert code == 0 and "action: cli.one" in out
    # No worker yet: the watch times out (3).
    code, out, err = await baton(server, "trigger", "cli-demo", "--input", '"slow"', "--wait", "1", "-o", "json")
    assert code == 3 and json.loads(out)["status"] == "RUNNING", (out, err)
    fail = {"n": 0}

    def second(job):
        if job["input"] == "first:boom":
            fail["n"] += 1
            raise ValueError("boom")
        return f"second:{job['input']}"

    async with raw_worker({"cli.one": lambda j: f"first:{j['input']}", "cli.two": second}):
        (tmp_path / "in.json").write_text('"ok"')
        code, out, err = await baton(
            server,
            "trigger",
            "cli-demo",
            "--input",
            f"@{tmp_path / 'in.json'}",
            "--key",
            "k-1",
            "--wait",
            "30",
            "-o",
            "json",
        )
        run = json.loads(out)
        assert code == 0 and run["status"] == "COMPLETED" and run["output"] == "second:first:ok", (out, err)
        code, out, _ = await baton(server, "trigger", "cli-demo", "--input", '"ok"', "--key", "k-1", "-o", "json")
        assert code == 0 and json.loads(out)["run_id"] == run["run_id"]  # idempotent replay
        code, out, err = await baton(server, "trigger", "cli-demo", "--input", '"boom"', "--wait")
        assert code == 1 and "FAILED" in out, (out, err)
        # Plain lines when stdout is not a terminal: who ran each step and how long it took.
        assert "second DEAD_LETTERED" in out and "by=test raw-1" in out, out
    code, out, err = await baton(server, "runs", "show", "00000000-0000-0000-0000-000000000000")
    assert code == 2 and "404" in err, (out, err)
    code, _, err = await baton(server, "runs", "frobnicate")
    assert code == 2, err
    code, _, err = await baton("http://127.0.0.1:9", "runs", "ls")
    assert code == 2 and "cannot reach" in err


async def test_runs_dlq_and_workers_commands_when_a_step_is_dead_lettered(server, raw_worker, tmp_path, settings):
    await _defined(server, tmp_path)
    async with raw_worker({"cli.one": lambda j: j["input"], "cli.two": _explode}):
        code, out, _ = await baton(server, "trigger", "cli-demo", "--input", '{"bad": true}', "--wait", "30")
        assert code == 1
        code, out, _ = await baton(server, "runs", "ls", "--workflow", "cli-demo", "--status", "FAILED", "-o", "json")
        (failed,) = json.loads(out)
        code, out, _ = await baton(server, "runs", "show", failed["run_id"])
        assert code == 0 and "DEAD_LETTERED" in out and "Boom" in out, out
        code, out, _ = await baton(server, "dlq", "ls", "--workflow", "cli-demo", "-o", "json")
        (dead,) = json.loads(out)
        assert dead["step"] == "second" and dead["workflow_id"] == "cli-demo"
        (tmp_path / "fixed.json").write_text('{"bad": false}')
        code, out, _ = await baton(server, "dlq", "redrive", str(dead["id"]), "--input", f"@{tmp_path / 'fixed.json'}")
        assert code == 0 and f"dead letter {dead['id']} redriven" in out
        code, out, err = await baton(server, "runs", "watch", failed["run_id"], "--timeout", "30", "-o", "json")
        assert code == 0 and json.loads(out)["status"] == "COMPLETED", (out, err)
        # Bulk: two more failures, discarded by filter.
        for _ in range(2):
            await baton(server, "trigger", "cli-demo", "--input", '{"bad": true}', "--wait", "30")
        code, out, _ = await baton(server, "dlq", "discard", "--all", "--workflow", "cli-demo")
        assert code == 0 and out.count("discarded") == 2, out
        code, out, _ = await baton(server, "dlq", "ls", "-o", "json")
        assert json.loads(out) == []
    code, out, _ = await baton(server, "trigger", "cli-demo", "--input", '"nobody runs it"', "-o", "json")
    run_id = json.loads(out)["run_id"]
    code, out, err = await baton(server, "runs", "cancel", run_id)
    assert code == 0 and "CANCELLED" in out, (out, err)
    code, out, _ = await baton(server, "workers", "-o", "json")
    assert code == 0 and isinstance(json.loads(out), list)


def _explode(job):
    if job["input"].get("bad"):
        raise RuntimeError("Boom")
    return "fixed"


async def test_the_live_view_redraws_in_a_terminal_when_stdout_is_a_tty(server, raw_worker, tmp_path):
    await _defined(server, tmp_path)

    async def slow(job):
        await asyncio.sleep(0.5)
        return "done"

    async with raw_worker({"cli.one": slow, "cli.two": slow}):
        child = pexpect.spawn(
            BATON,
            ["trigger", "cli-demo", "--input", '"tty"', "--wait", "30"],
            env={**os.environ, "BATON_API_URL": server, "COLUMNS": "120", "TERM": "xterm"},
            encoding="utf-8",
            timeout=30,
            dimensions=(40, 120),
        )
        screen = io.StringIO()
        child.logfile_read = screen
        try:
            await asyncio.to_thread(child.expect, r"first .*(RUNNING|QUEUED|COMPLETED)")
            await asyncio.to_thread(child.expect, r"run COMPLETED")
            await asyncio.to_thread(child.expect, pexpect.EOF)
        finally:
            child.close()
    assert child.exitstatus == 0
    drawn = screen.getvalue()
    # A table redrawn in place (cursor movements), naming who ran each step.
    assert "\x1b[" in drawn and "test raw-1" in drawn and "━" in drawn, drawn[-2000:]
