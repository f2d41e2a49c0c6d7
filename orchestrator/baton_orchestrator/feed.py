"""Run changes as they commit: one LISTEN connection per process, fanned out in memory.

PostgreSQL notifies `baton_events_<schema>` for every statement that changes a step (store/steps.py calls
pg_notify) or appends a run-level event to run_events (migration 0004's trigger), whichever process or
engine replica made it. Waiting requests and live views subscribe here, so
a thousand waiters cost one connection and no query until their run changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import psycopg

from .settings import Settings

log = logging.getLogger("baton.feed")
TERMINAL_EVENTS = frozenset({"run_completed", "run_failed", "run_cancelled"})


class TooManyWaiters(Exception):
    """The process already holds its maximum of waiting requests and streams."""


@dataclass(frozen=True, slots=True)
class Change:
    run_id: str
    type: str  # the change: step_queued, step_completed, ... (notified only), run_completed, ... (run_events)
    step: str | None


class Subscription:
    """Changes for one run (or for every run), delivered in commit order; `wake()` on a reconnect."""

    def __init__(self, feed: RunFeed, run_id: str | None) -> None:
        self.feed, self.run_id = feed, run_id
        self.queue: asyncio.Queue[Change | None] = asyncio.Queue(maxsize=10_000)

    def put(self, change: Change | None) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a slow reader misses changes, never blocks the feed
            self.queue.put_nowait(change)

    async def next(self, timeout: float) -> Change | None:
        """The next change, or None on a timeout or a reconnect (re-read the state either way)."""
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None


class RunFeed:
    def __init__(self, settings: Settings, max_subscribers: int) -> None:
        self.settings, self.max_subscribers = settings, max_subscribers
        self.channel = f"baton_events_{settings.database_schema or 'public'}"
        self._by_run: dict[str, set[Subscription]] = {}
        self._all: set[Subscription] = set()
        self._count = 0
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="baton-feed")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @contextlib.contextmanager
    def subscribe(self, run_id: str | None = None) -> Iterator[Subscription]:
        if self._count >= self.max_subscribers:
            raise TooManyWaiters(f"this process already serves {self.max_subscribers} waiting requests or streams")
        sub = Subscription(self, run_id)
        group = self._all if run_id is None else self._by_run.setdefault(run_id, set())
        group.add(sub)
        self._count += 1
        try:
            yield sub
        finally:
            self._count -= 1
            group.discard(sub)
            if run_id is not None and not group:
                self._by_run.pop(run_id, None)

    def _deliver(self, payload: str) -> None:
        if not self._count:  # the common case: nobody is waiting or watching
            return
        for line in payload.split("\n"):
            run_id, _, rest = line.partition(" ")
            kind, _, step = rest.partition(" ")
            change = Change(run_id, kind, step or None)
            for sub in self._by_run.get(run_id, ()):
                sub.put(change)
            for sub in self._all:
                sub.put(change)

    def _wake_all(self) -> None:
        # Notifications sent while we were not listening are lost: every subscriber re-reads.
        for group in [self._all, *self._by_run.values()]:
            for sub in group:
                sub.put(None)

    async def _listen(self) -> None:
        backoff = 0.2
        while True:
            try:
                async for payload in self._notifications():
                    backoff = 0.2
                    self._deliver(payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("run feed disconnected, reconnecting in %.1fs: %s", backoff, exc)
            self.connected.clear()
            self._wake_all()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    async def _notifications(self) -> AsyncIterator[str]:
        url = "postgresql://" + self.settings.database_url.split("://", 1)[1]
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            await conn.execute(f'LISTEN "{self.channel}"')
            self.connected.set()
            self._wake_all()
            async for note in conn.notifies():
                yield note.payload
