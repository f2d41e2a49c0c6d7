"""Browser tests of the dashboard: one real server (API + engine, uvicorn in a thread) with an in-process
Python SDK worker, the Node and Java example workers as processes, and one Debian chromium for the package
driven by Playwright (never a browser download). Without chromium they fail, never skip.

Package-scoped, not session-scoped: Playwright's sync API holds an event loop on the main thread while it
is open, and the async tests collected after this package (pytest-asyncio) cannot run beside it."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn
from playwright.sync_api import Browser, Page, sync_playwright

from baton import NonRetryableError, Worker, WorkerSettings
from baton_orchestrator.app import create_app
from baton_orchestrator.db import migrate
from baton_orchestrator.settings import Settings

from ...conftest import delete_topics, make_settings

ROOT = Path(__file__).resolve().parents[4]
SHOTS = ROOT / "docs" / "img"
API_KEY = "ui-test-key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def echo(payload: Any) -> Any:
    return {"echo": payload}


def picky(payload: Any) -> str:
    """Fails for good unless the input says ok: what a redrive with an edited input fixes."""
    if isinstance(payload, dict) and payload.get("ok") is True:
        return "accepted"
    raise NonRetryableError(f'order rejected: {payload!r} has no "ok": true')


def crash(payload: Any) -> None:
    raise ValueError(f"cannot parse amount in {payload!r}")


class Server:
    """create_app(settings) served by uvicorn on a free port, in a thread with its own event loop,
    optionally with an in-process Python SDK worker on the same loop."""

    def __init__(self, settings: Settings, role: str = "all", worker_group: str | None = None) -> None:
        self.settings, self.port = settings, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(settings, role=role),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            timeout_graceful_shutdown=3,
        )
        self.server = uvicorn.Server(config)
        self.worker_group = worker_group
        self.failed: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"ui-server-{self.port}", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported by start() instead of vanishing with the thread
            self.failed = exc

    async def _main(self) -> None:
        async with AsyncExitStack() as stack:
            if self.worker_group:
                worker = Worker(
                    bootstrap_servers=self.settings.kafka_bootstrap_servers,
                    group_id=self.worker_group,
                    concurrency=4,
                    topic_prefix=self.settings.topic_prefix,
                    settings=WorkerSettings.from_env(presence_interval=0.5),
                )
                for action, fn in {"ui.echo": echo, "ui.picky": picky, "ui.crash": crash}.items():
                    worker.register(action, fn)
                await stack.enter_async_context(worker)
            await self.server.serve()

    def start(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if self.failed or not self.thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError(f"the server did not start: {self.failed!r}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)


class Processes:
    """The Node and Java example workers: own process group each, stopped by pid at the end."""

    def __init__(self, logdir: Path) -> None:
        self.logdir, self.procs = logdir, {}  # type: ignore[var-annotated]

    def start(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        log = open(self.logdir / f"{name}.log", "ab")
        self.procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def log(self, name: str) -> str:
        path = self.logdir / f"{name}.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


class Stack:
    def __init__(self, server: Server, auth_server: Server, procs: Processes) -> None:
        self.server, self.auth_server, self.procs = server, auth_server, procs
        self.url, self.settings = server.url, server.settings
        self.http = httpx.Client(base_url=server.url, timeout=10)

    def define(self, body: dict[str, Any]) -> dict[str, Any]:
        resp = self.http.post("/workflow", json=body)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def trigger(self, workflow_id: str, payload: Any = None) -> str:
        resp = self.http.post(f"/workflow/{workflow_id}/trigger", json={"input": payload})
        assert resp.status_code == 201, resp.text
        return str(resp.json()["run_id"])

    def wait_run(self, run_id: str, statuses: tuple[str, ...], timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.http.get(f"/workflow/run/{run_id}").json()
            if run["status"] in statuses:
                return dict(run)
            if time.monotonic() > deadline:
                raise AssertionError(f"run {run_id} is {run['status']}, not {statuses}, after {timeout}s")
            time.sleep(0.1)


@pytest.fixture(scope="package")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:  # a fail, not a skip: CI must not go green without the browser tests
        pytest.fail("Debian's chromium is missing: run `make setup` (infra/deps.sh installs it)", False)
    return path


@pytest.fixture(scope="package")
def stack(services: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    token = uuid.uuid4().hex[:10]
    settings = make_settings(services, f"ui{token}", relay_interval_seconds=0.5)
    migrate(settings)
    procs = Processes(tmp_path_factory.mktemp("ui-workers"))
    env = {
        **os.environ,
        "BATON_KAFKA_BOOTSTRAP_SERVERS": services.kafka,
        "BATON_TOPIC_PREFIX": settings.topic_prefix,
        "BATON_WORKER_GROUP": f"{settings.topic_prefix}examples",
    }
    # Started first: the JVM takes longest to come up, and the workers page is tested last.
    procs.start("java", ["mvn", "-q", "-B", "-f", "examples/java/pom.xml", "compile", "exec:java"], env)
    procs.start("node", ["node", "examples/node/worker.mjs"], env)
    server = auth_server = None
    try:
        server = Server(settings, worker_group=f"{settings.topic_prefix}python").start()
        # The same data behind API keys: an API-only process, as a second replica would be.
        auth_server = Server(settings.model_copy(update={"api_keys": API_KEY}), role="api").start()
        yield Stack(server, auth_server, procs)
    finally:
        for s in (auth_server, server):
            if s is not None:
                s.stop()
        procs.stop()
        with psycopg.connect(services.database_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{settings.database_schema}" CASCADE')
        asyncio.run(delete_topics(services.kafka, settings.topic_prefix))


@pytest.fixture(scope="package")
def browser(chromium: str, stack: Stack) -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(20_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield pg
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page: Page, name: str) -> None:
    """The README's screenshots, refreshed by every run of these tests."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)
