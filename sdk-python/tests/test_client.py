"""baton.Client / baton.AsyncClient against a real `baton server` process (its own PostgreSQL schema, topic
prefix, Redis prefix and engine group) and a real worker of this SDK; the HTTP edge cases (non-envelope
bodies, keep-alive, timeouts, every status) against a small local HTTP server."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from aiokafka.admin import AIOKafkaAdminClient

from baton import (
    ApiConnectionError,
    ApiError,
    AsyncClient,
    BatonError,
    Client,
    Conflict,
    Forbidden,
    NotFound,
    RequestTooLarge,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
)

ROOT = Path(__file__).resolve().parents[2]  # the repository: the server is its .venv's `baton`
BATON = ROOT / ".venv" / "bin" / "baton"
WORKER = Path(__file__).with_name("client_worker.py")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _isolated_env(services: Any, unique: str, **extra: str) -> dict[str, str]:
    return {
        **os.environ,
        "BATON_DATABASE_URL": services.database_url,
        "BATON_KAFKA_BOOTSTRAP_SERVERS": services.kafka,
        "BATON_REDIS_URL": services.redis_url,
        "BATON_DATABASE_SCHEMA": f"t_{unique}",
        "BATON_TOPIC_PREFIX": f"t-{unique}-",
        "BATON_REDIS_PREFIX": f"t:{unique}:",
        "BATON_ENGINE_GROUP_ID": f"t-{unique}-engine",
        "BATON_WORKER_GROUP": f"t-{unique}-workers",
        "BATON_TOPIC_PARTITIONS": "2",
        "BATON_API_KEYS": "",
        **extra,
    }


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _until_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"baton server exited:\n{log.read_text(errors='replace')[-3000:]}"
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"no healthy baton server after {timeout}s"
        time.sleep(0.2)


async def _delete_topics(bootstrap: str, prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


@contextmanager
def orchestrator(services: Any, logdir: Path, unique: str, role: str = "all", **env: str) -> Iterator[str]:
    """A `baton server` process on a free port; stopped, then its schema, Redis keys and topics deleted."""
    port, log = _free_port(), logdir / f"server-{unique}.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(BATON), "server", "--role", role, "--port", str(port)],
            env=_isolated_env(services, unique, **env),
            stdout=out,
            stderr=out,
        )
    try:
        _until_healthy(f"http://127.0.0.1:{port}", proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)
        with psycopg.connect(services.database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "t_{unique}" CASCADE')
        with redis.Redis.from_url(services.redis_url) as keys:
            for key in keys.scan_iter(match=f"t:{unique}:*"):
                keys.delete(key)
        asyncio.run(_delete_topics(services.kafka, f"t-{unique}-"))


@contextmanager
def worker(services: Any, logdir: Path, unique: str) -> Iterator[None]:
    with open(logdir / f"worker-{unique}.log", "ab") as out:
        env = _isolated_env(services, unique)
        proc = subprocess.Popen([sys.executable, str(WORKER)], env=env, stdout=out, stderr=out)
    try:
        yield
    finally:
        _stop(proc)


@dataclass(frozen=True)
class Api:
    url: str
    logdir: Path


@pytest.fixture(scope="module")
def api(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """One server and one worker (actions clt.echo, clt.picky) for the module; tests use their own workflows."""
    unique, logdir = uuid.uuid4().hex[:10], tmp_path_factory.mktemp("client")
    with orchestrator(services, logdir, unique) as url, worker(services, logdir, unique):
        yield Api(url, logdir)


@pytest.fixture
def client(api: Api) -> Iterator[Client]:
    with Client(api.url) as c:
        yield c


def define(client: Client, action: str) -> str:
    workflow_id = f"clt-{uuid.uuid4().hex[:8]}"
    stored = client.define({"id": workflow_id, "retry": {"max_retries": 0}, "steps": [{"name": "s", "action": action}]})
    assert (stored["id"], stored["version"]) == (workflow_id, 1)
    return workflow_id


def test_trigger_with_a_key_returns_the_same_run_when_replayed_and_409_when_the_body_differs(client: Client) -> None:
    wf = define(client, "clt.echo")
    first = client.trigger(wf, "a", idempotency_key="k-1")
    assert first["workflow_id"] == wf and first["idempotency_key"] == "k-1"
    assert first["links"]["run"] == f"/workflow/run/{first['run_id']}"
    assert client.trigger(wf, "a", idempotency_key="k-1") == first
    with pytest.raises(Conflict) as err:
        client.trigger(wf, "b", idempotency_key="k-1")
    assert (err.value.status, err.value.error_code, err.value.code) == (409, "idempotency_key_reused", "BATON_API")
    assert err.value.details == {"run_id": first["run_id"]}
    run = client.wait_for_run(first["run_id"], timeout=30)
    assert (run["status"], run["output"]) == ("COMPLETED", {"echo": "a"})
    assert run["steps"][0]["attempts"][0]["status"] == "COMPLETED"
    assert client.get_run(first["run_id"])["version"] == run["version"]
    replayed = client.trigger(wf, "a", idempotency_key="k-1", wait=30)  # 200 with the finished run
    assert (replayed["run_id"], replayed["status"]) == (first["run_id"], "COMPLETED")


def test_trigger_with_wait_answers_with_the_finished_run_when_a_worker_runs_it(client: Client) -> None:
    wf = define(client, "clt.echo")
    run = client.trigger(wf, {"n": 1}, wait=30)
    assert (run["status"], run["output"]) == ("COMPLETED", {"echo": {"n": 1}})


def test_list_runs_follows_cursors_and_filters_when_given_a_workflow_and_status(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    wf = define(client, "clt.echo")
    ids = [client.trigger(wf, i, wait=30)["run_id"] for i in range(3)]
    define(client, "clt.echo")  # another workflow's runs stay out
    monkeypatch.setattr("baton._api.PAGE_SIZE", 2)  # 3 runs: the second page comes from next_cursor
    assert [r["run_id"] for r in client.list_runs(workflow_id=wf)] == ids[::-1]
    assert len(client.list_runs(workflow_id=wf, status="COMPLETED", limit=2)) == 2
    assert client.list_runs(workflow_id=wf, status="FAILED") == []


def _dead_letter(client: Client, wf: str) -> dict[str, Any]:
    [dead] = client.list_dead_letters(workflow_id=wf)
    return dead


def test_redrive_completes_the_run_when_given_a_fixed_input(client: Client) -> None:
    wf = define(client, "clt.picky")
    run_id = client.trigger(wf, {"fixed": False})["run_id"]
    assert client.wait_for_run(run_id, timeout=30)["status"] == "FAILED"
    first = _dead_letter(client, wf)
    assert (first["run_id"], first["step"], first["input"]) == (run_id, "s", {"fixed": False})
    client.redrive(first["id"])  # no input: the step runs again with its own input, and fails again
    assert client.wait_for_run(run_id, timeout=30)["status"] == "FAILED"
    second = _dead_letter(client, wf)
    assert second["id"] != first["id"]
    assert client.redrive(second["id"], {"fixed": True})["status"] == "REDRIVEN"
    run = client.wait_for_run(run_id, timeout=30)
    assert (run["status"], run["output"]) == ("COMPLETED", {"picky": "fixed"})
    redriven = {d["id"] for d in client.list_dead_letters(status="REDRIVEN", workflow_id=wf)}
    assert redriven == {first["id"], second["id"]}
    with pytest.raises(Conflict) as err:
        client.redrive(first["id"])
    assert err.value.error_code == "dead_letter_closed"


def test_redrive_with_none_replaces_the_input_with_null_when_asked(client: Client) -> None:
    wf = define(client, "clt.picky")
    run_id = client.trigger(wf, ["bad"])["run_id"]
    assert client.wait_for_run(run_id, timeout=30)["status"] == "FAILED"
    client.redrive(_dead_letter(client, wf)["id"], None)
    assert client.wait_for_run(run_id, timeout=30)["output"] == {"picky": None}


def test_discard_closes_the_dead_letter_when_it_is_not_wanted(client: Client) -> None:
    wf = define(client, "clt.picky")
    run_id = client.trigger(wf, "bad")["run_id"]
    assert client.wait_for_run(run_id, timeout=30)["status"] == "FAILED"
    dead = _dead_letter(client, wf)
    assert client.discard(dead["id"]) is None
    assert client.list_dead_letters(workflow_id=wf) == []
    assert [d["id"] for d in client.list_dead_letters(status="DISCARDED", workflow_id=wf)] == [dead["id"]]


def test_cancel_and_retry_when_a_run_is_running_or_failed(client: Client) -> None:
    idle = define(client, "clt.nobody")  # no worker: the run stays RUNNING
    run_id = client.trigger(idle)["run_id"]
    assert client.cancel(run_id)["status"] == "CANCELLED"
    assert client.wait_for_run(run_id, timeout=5)["status"] == "CANCELLED"
    with pytest.raises(Conflict) as err:
        client.cancel(run_id)
    assert err.value.error_code == "run_not_cancellable"
    wf = define(client, "clt.picky")
    failed = client.trigger(wf, "bad")["run_id"]
    assert client.wait_for_run(failed, timeout=30)["status"] == "FAILED"
    assert client.retry(failed)["reopened_steps"] == ["s"]
    assert client.wait_for_run(failed, timeout=30)["status"] == "FAILED"  # still not fixed


def test_wait_raises_wait_timeout_with_the_run_when_it_does_not_finish_in_time(api: Api) -> None:
    # A 1 s request timeout: each long poll (2 s) still gets its answer, since its HTTP timeout adds the wait.
    with Client(api.url, timeout=1.0) as client:
        run_id = client.trigger(define(client, "clt.nobody"))["run_id"]
        started = time.monotonic()
        with pytest.raises(WaitTimeout) as err:
            client.wait_for_run(run_id, timeout=2)
        elapsed = time.monotonic() - started
        assert 2 <= elapsed < 6, elapsed
        assert err.value.run["run_id"] == run_id and err.value.run["status"] in ("PENDING", "RUNNING")
        assert isinstance(err.value, TimeoutError) and err.value.code == "BATON_WAIT_TIMEOUT"
        # Trigger-and-wait ends too (202): the run as it stands.
        assert client.trigger(define(client, "clt.nobody"), wait=0.5)["status"] in ("PENDING", "RUNNING")
        client.cancel(run_id)


def test_typed_errors_when_ids_are_unknown_or_requests_invalid(client: Client) -> None:
    with pytest.raises(NotFound) as err:
        client.get_run(str(uuid.uuid4()))
    assert (err.value.status, err.value.error_code) == (404, "run_not_found")
    with pytest.raises(NotFound):
        client.trigger("clt-no-such-workflow")
    with pytest.raises(NotFound):
        client.get_run("..")  # not GET /workflow (dot segments are resolved by URL normalisation)
    with pytest.raises(NotFound):
        client.redrive(10**9, {"fixed": True})
    with pytest.raises(ValidationFailed) as invalid:
        client.define({"id": "clt-bad", "steps": [{"name": "a", "action": "x", "depends_on": ["a"]}]})
    assert (invalid.value.status, invalid.value.error_code) == (422, "invalid_definition")
    with pytest.raises(RequestTooLarge) as big:
        client.trigger(define(client, "clt.echo"), "x" * 1_100_000)
    assert big.value.status == 413 and isinstance(big.value, ApiError) and isinstance(big.value, BatonError)


async def test_unreachable_url_raises_api_connection_error_in_both_clients() -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    with Client(url) as client, pytest.raises(ApiConnectionError) as err:
        client.get_run("r")
    assert (err.value.status, err.value.code) == (None, "BATON_API_CONNECTION")
    assert "cannot reach the Baton API" in str(err.value) and "Traceback" not in str(err.value)
    async with AsyncClient(url) as aclient:
        with pytest.raises(ApiConnectionError):
            await aclient.list_runs()


async def test_async_client_defines_triggers_waits_and_lists_when_awaited(api: Api) -> None:
    async with AsyncClient(api.url) as client:
        wf = f"clt-{uuid.uuid4().hex[:8]}"
        await client.define({"id": wf, "steps": [{"name": "s", "action": "clt.echo"}]})
        started = await client.trigger(wf, "x", idempotency_key="k")
        assert (await client.trigger(wf, "x", idempotency_key="k"))["run_id"] == started["run_id"]
        run = await client.wait_for_run(started["run_id"], timeout=30)
        assert (run["status"], run["output"]) == ("COMPLETED", {"echo": "x"})
        assert (await client.trigger(wf, "y", wait=30))["output"] == {"echo": "y"}
        assert len(await client.list_runs(workflow_id=wf, status="COMPLETED")) == 2
        assert await client.list_dead_letters(workflow_id=wf) == []
        with pytest.raises(NotFound):
            await client.get_run(str(uuid.uuid4()))


def test_bearer_token_is_sent_when_the_server_requires_api_keys(
    services: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    unique = uuid.uuid4().hex[:10]
    with orchestrator(services, tmp_path, unique, role="api", BATON_API_KEYS="secret") as url:
        monkeypatch.delenv("BATON_API_KEY", raising=False)
        with Client(url) as anonymous, pytest.raises(Unauthorized) as err:
            anonymous.list_runs()
        assert (err.value.status, err.value.error_code) == (401, "unauthorized")
        with Client(url, api_key="wrong") as wrong, pytest.raises(Forbidden) as denied:
            wrong.list_runs()
        assert (denied.value.status, denied.value.error_code) == (403, "forbidden")
        with Client(url, api_key="secret") as allowed:
            assert allowed.list_runs() == []
        monkeypatch.setenv("BATON_API_URL", url)
        monkeypatch.setenv("BATON_API_KEY", "secret")
        with Client() as from_env:
            assert from_env.list_dead_letters() == []
