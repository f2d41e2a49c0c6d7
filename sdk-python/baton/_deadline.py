"""Deadlines in the worker: stop waiting for a handler after its job's deadline plus a grace, and count
the handlers abandoned that way. Private.

Python cannot stop a running thread, and an async handler may ignore its cancellation, so an abandoned
handler may keep running: it is counted in ``stuck`` (the presence heartbeat's ``stuck_slots``) until it
returns, and its return value is dropped. Up to ``max_abandoned`` of them get their slot freed at once;
past that cap the job is still answered and acknowledged, but the slot stays taken until the handler
returns, so abandoned threads can never pile up without bound.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime

from ._dispatch import Outcome
from .context import JobContext

__all__ = ["Supervisor", "timeout_error"]


class Supervisor:
    """Waits for handler calls within their deadlines; owns the calls it abandoned."""

    def __init__(self, grace: float, max_abandoned: int) -> None:
        self._grace, self._max_abandoned = grace, max_abandoned
        self.stuck = 0  # abandoned handlers that have not returned yet
        self._freed = 0  # of those, how many had their slot freed
        self._abandoned: set[asyncio.Task[Outcome]] = set()

    async def wait(self, call: asyncio.Task[Outcome], ctx: JobContext) -> Outcome | None:
        """The handler's outcome, or ``None`` once ``ctx.deadline`` (moved by heartbeats) plus the grace
        has passed. A job fetched after its deadline still gets the grace from its start."""
        loop = asyncio.get_running_loop()
        started = time.time()
        while not call.done():
            remaining = max(ctx.deadline.timestamp(), started) + self._grace - time.time()
            if remaining <= 0:
                return None
            # One future and one timer per wait (cheaper than wait_for + shield on the hot path).
            wake: asyncio.Future[None] = loop.create_future()
            timer = loop.call_later(remaining, _wake, wake)
            wake_on_done = functools.partial(_wake_after, wake)
            call.add_done_callback(wake_on_done)
            try:
                await wake  # then: done, or a heartbeat may have moved the deadline meanwhile
            finally:
                timer.cancel()
                call.remove_done_callback(wake_on_done)
        return call.result()

    def abandon(self, call: asyncio.Task[Outcome], *, cancellable: bool, release: Callable[[], None]) -> bool:
        """Give up on ``call``; True if its slot is free now, else ``release`` runs when it returns."""
        self.stuck += 1
        freed = self._freed < self._max_abandoned
        self._freed += freed
        self._abandoned.add(call)
        call.add_done_callback(lambda _: self._returned(call, freed, release))
        if cancellable:
            call.cancel()  # an async handler usually stops here; one that ignores it stays counted
        return freed

    def _returned(self, call: asyncio.Task[Outcome], freed: bool, release: Callable[[], None]) -> None:
        self._abandoned.discard(call)
        self.stuck -= 1
        if freed:
            self._freed -= 1
        else:
            release()

    async def close(self) -> None:
        """At shutdown: stop waiting for abandoned calls (their threads are daemons)."""
        calls = list(self._abandoned)
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wake_after(future: asyncio.Future[None], _call: object) -> None:
    _wake(future)


def timeout_error(ctx: JobContext, grace: float) -> dict[str, object]:
    """The ``error`` object of a worker-side timeout (docs/sdk-contract.md, exact message)."""
    late_ms = round((datetime.now(UTC) - ctx.deadline).total_seconds() * 1000)
    return {
        "type": "Timeout",
        "message": f"handler still running {late_ms} ms after the job's deadline (grace {round(grace * 1000)} ms); "
        "abandoned",
        "stacktrace": None,
        "retryable": True,
    }
