"""The :class:`Worker`: register handlers for actions, then run them from Kafka."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from opentelemetry.trace import TracerProvider

from . import __version__
from ._dispatch import Handler, make_handler
from ._runtime import RunReport, Runtime
from .config import WorkerSettings
from .errors import ConfigError, IdleTimeout, WorkerStateError
from .protocol import WorkerInfo

__all__ = ["RunReport", "Worker"]

log = logging.getLogger("baton")

F = TypeVar("F", bound=Callable[..., Any])


class Worker:
    """Runs handlers for actions: consumes ``<prefix>jobs.<action>``, replies on ``<prefix>results``.

    Options not given fall back to ``BATON_KAFKA_BOOTSTRAP_SERVERS``, ``BATON_WORKER_GROUP``,
    ``BATON_WORKER_CONCURRENCY`` and ``BATON_TOPIC_PREFIX``, then to the defaults (``localhost:9092``,
    ``workflow-workers``, 8, ``workflow-``). ``settings`` carries the rarer options (payload limit,
    created topics, presence interval, drain timeout, deadline grace, max abandoned); explicit arguments
    override it. ``tracer_provider`` makes the worker's ``baton.handle`` spans with that OpenTelemetry
    provider instead of the global one (see the README, "Tracing").

    Example::

        worker = Worker()
        worker.register("step1", lambda payload: f"Processed: {payload}")
        worker.start()  # blocks; SIGINT/SIGTERM drain gracefully
    """

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        group_id: str | None = None,
        concurrency: int | None = None,
        *,
        topic_prefix: str | None = None,
        settings: WorkerSettings | None = None,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        explicit: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "group_id": group_id,
            "concurrency": concurrency,
            "topic_prefix": topic_prefix,
        }
        self.settings = settings.replace(**explicit) if settings else WorkerSettings.from_env(**explicit)
        self.id = f"python-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"
        self._handlers: dict[str, Handler] = {}
        self._tracer_provider = tracer_provider
        self._runtime: Runtime | None = None
        self._task: asyncio.Task[RunReport] | None = None

    # ------------------------------------------------------------------ registration
    def register(self, action: str, fn: Callable[..., Any]) -> None:
        """Handle jobs of ``action`` with ``fn(payload)`` or ``fn(payload, ctx)``.

        ``fn`` may be sync (run in a thread pool) or async (run on the event loop); its return value,
        which must be JSON-serialisable, is the step's output. Raises :class:`ConfigError` for an
        invalid or duplicate action name or a handler that is not callable.
        """
        handler = make_handler(action, fn)
        if action in self._handlers:
            raise ConfigError(f"action {action!r} is already registered")
        if self._runtime is not None:
            raise WorkerStateError("register actions before the worker starts")
        self._handlers[action] = handler

    def action(self, name: str) -> Callable[[F], F]:
        """Decorator form of :meth:`register`: ``@worker.action("step1")``. Returns ``fn`` unchanged."""

        def decorate(fn: F) -> F:
            self.register(name, fn)
            return fn

        return decorate

    @property
    def actions(self) -> list[str]:
        """The registered action names, in registration order."""
        return list(self._handlers)

    # ------------------------------------------------------------------ running
    def start(self, drain_timeout: float | None = None) -> RunReport:
        """Run until SIGINT or SIGTERM, then drain gracefully (up to ``drain_timeout`` s, by default
        ``settings.drain_timeout``); blocks. A second signal cuts the drain short.

        Uses its own event loop (uvloop's when it is installed: ``pip install 'baton[speedups]'``); inside
        a running loop use :meth:`run` instead.
        """
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            return runner.run(self._run_with_signals(self._drain_timeout(drain_timeout)))

    async def _run_with_signals(self, drain_timeout: float) -> RunReport:
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig, drain_timeout)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
                log.debug("cannot handle %s here; stop the worker with stop()", sig.name)
        try:
            return await self.run(drain_timeout=drain_timeout)
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals, drain_timeout: float) -> None:
        runtime = self._runtime
        if runtime is None:
            return
        first = not runtime.stopping
        log.info("%s: %s", sig.name, "draining in-flight jobs" if first else "stopping now")
        runtime.request_stop(drain_timeout if first else 0.0)

    def _drain_timeout(self, given: float | None) -> float:
        return self.settings.drain_timeout if given is None else given

    async def run(self, *, drain_timeout: float | None = None) -> RunReport:
        """Run until :meth:`stop` is awaited (or the task is cancelled, which skips the drain)."""
        return await self._execute(self._begin(), until_idle=False, drain_timeout=self._drain_timeout(drain_timeout))

    async def run_until_idle(self, timeout: float = 30.0) -> RunReport:
        """Burst mode, for tests: run until every assigned partition is read to its end and every job's
        result is acknowledged, then stop. Raises :class:`IdleTimeout` (a ``TimeoutError``) if that
        takes over ``timeout`` s."""
        runtime = self._begin()
        task = asyncio.ensure_future(self._execute(runtime, until_idle=True, drain_timeout=timeout))
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            runtime.request_stop(0.0)
            await asyncio.gather(task, return_exceptions=True)
            raise IdleTimeout(f"worker not idle after {timeout}s") from None
        finally:
            if not task.done():  # we were cancelled
                task.cancel()

    def _begin(self) -> Runtime:
        if not self._handlers:
            raise ConfigError("register at least one action before starting the worker")
        if self._runtime is not None:
            raise WorkerStateError("the worker is already running")
        worker = WorkerInfo(self.id, "python", __version__)
        self._runtime = Runtime(self.settings, self._handlers, worker, self._tracer_provider)
        return self._runtime

    async def _execute(self, runtime: Runtime, *, until_idle: bool, drain_timeout: float) -> RunReport:
        try:
            return await runtime.run(until_idle=until_idle, drain_timeout=drain_timeout)
        finally:
            self._runtime = None

    async def stop(self, timeout: float | None = None) -> None:
        """Stop fetching, wait up to ``timeout`` s (default ``settings.drain_timeout``) for in-flight
        jobs, commit, and close.

        Jobs still running at the timeout stay uncommitted, so Kafka delivers them to another worker.
        """
        runtime = self._runtime
        if runtime is None:
            return
        runtime.request_stop(self._drain_timeout(timeout))
        await runtime.finished.wait()

    @property
    def in_flight(self) -> int:
        """How many handlers are running now."""
        return self._runtime.in_flight if self._runtime else 0

    @property
    def stuck_slots(self) -> int:
        """Handlers abandoned past their job's deadline that have not returned yet (``stuck_slots`` in
        the presence heartbeat)."""
        return self._runtime.stuck_slots if self._runtime else 0

    # ------------------------------------------------------------------ async with
    async def __aenter__(self) -> Worker:
        """Start the worker in the background; returns once it has subscribed to its topics."""
        runtime = self._begin()
        self._task = task = asyncio.create_task(
            self._execute(runtime, until_idle=False, drain_timeout=self.settings.drain_timeout)
        )
        started = asyncio.create_task(runtime.started.wait())
        await asyncio.wait({started, task}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if task.done():
            task.result()  # startup failed: raise its error here
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
            if exc is None:
                task.result()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    # uvloop roughly halves the event loop's share of a worker's CPU (socket writes, polling); optional.
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
