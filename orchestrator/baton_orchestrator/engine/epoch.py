"""A process's dispatch epoch: which of its queued steps Kafka has acknowledged, without an outbox row.

A queued step is its own job's outbox entry: the row carries (dispatch_epoch, dispatch_seq). Seqs are
assigned here, in memory, BEFORE the statement that queues the step runs, so the watermark
W = lowest unresolved seq - 1 never passes a job whose transaction has not committed and been
acknowledged (a database sequence would: transactions commit out of sequence order). W is persisted in
`dispatchers`, riding the next flush; every step of the epoch with seq <= W was acknowledged and is never
resent. The epoch holds a session-level advisory lock on a connection of its own: when the process dies,
the lock goes with its connection and another process's relay adopts the steps above its W.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from typing import Any

from ..settings import Settings

# A seq whose step never shows up QUEUED (its transaction rolled back where nobody released it) is
# dropped by the relay after this long: far longer than any transaction of the engine.
FORGET_AFTER_S = 60.0

LOCK = "SELECT pg_advisory_lock(hashtextextended(%(epoch)s, 0))"
TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended(%(epoch)s, 0))"
UNLOCK = "SELECT pg_advisory_unlock(hashtextextended(%(epoch)s, 0))"
REGISTER = "INSERT INTO dispatchers (epoch, acked_upto) VALUES (%(epoch)s, 0) ON CONFLICT (epoch) DO NOTHING"
SAVE = """
UPDATE dispatchers SET acked_upto = %(acked)s, seen_at = now() WHERE epoch = %(epoch)s AND acked_upto < %(acked)s
"""


class Dispatcher:
    def __init__(self) -> None:
        self.epoch = str(uuid.uuid4())
        self._last = 0
        self._pending: dict[int, float] = {}  # seq -> when assigned (monotonic): not acknowledged yet
        self.in_flight: set[int] = set()  # seqs being sent right now: the relay leaves them alone
        self._saved = 0
        self._lock: Any = None  # the psycopg connection holding the epoch's advisory lock
        self._users = 0

    def assign(self) -> int:
        self._last += 1
        self._pending[self._last] = time.monotonic()
        return self._last

    def resolve(self, seqs: Any) -> None:
        """Acknowledged by Kafka, or never queued (rolled back, skipped by the status guard)."""
        for s in seqs:
            self._pending.pop(s, None)

    def watermark(self) -> int:
        return min(self._pending) - 1 if self._pending else self._last

    def take_watermark(self) -> int | None:
        """W to persist with the caller's statement, once per change (None: unchanged)."""
        w = self.watermark()
        if w <= self._saved:
            return None
        self._saved = w
        return w

    def unsave(self) -> None:
        """The statement that carried the watermark failed: the next one carries it again."""
        self._saved = 0

    def unacked(self, older_than: float) -> list[int]:
        """Seqs assigned more than `older_than` seconds ago, not acknowledged and not being sent."""
        cut = time.monotonic() - older_than
        return [s for s, t in self._pending.items() if t < cut and s not in self.in_flight]

    def forget_missing(self, asked: list[int], found: set[int]) -> None:
        # Asked for and not QUEUED in the database for long: its transaction rolled back, or its step moved on.
        cut = time.monotonic() - FORGET_AFTER_S
        self.resolve([s for s in asked if s not in found and self._pending.get(s, cut) < cut])

    async def start(self, settings: Settings) -> None:
        """Take the epoch's lock and register it (before anything is queued); shared by the apps of a process."""
        from .pg import connect

        if self._lock is None or self._lock.closed:
            conn = await connect(settings, autocommit=True)
            try:
                await conn.execute(LOCK, {"epoch": self.epoch})
                await conn.execute(REGISTER, {"epoch": self.epoch})
            except BaseException:
                await conn.close()
                raise
            self._lock = conn
        else:  # another app of this process (its own schema, in tests) holds the lock already
            async with await connect(settings, autocommit=True) as conn:
                await conn.execute(REGISTER, {"epoch": self.epoch})
        self._users += 1

    async def ensure_lock(self, settings: Settings) -> None:
        """After a lost connection (PostgreSQL restarted) the lock is taken again."""
        if not self._users:
            return  # not started (a test's engine without an app): nothing to keep
        if self._lock is not None and not self._lock.closed:
            try:
                await self._lock.execute("SELECT 1")
                return
            except Exception:
                with contextlib.suppress(Exception):
                    await self._lock.close()
        self._lock = None
        self._users -= 1
        await self.start(settings)

    async def stop(self) -> None:
        self._users -= 1
        if self._users <= 0 and self._lock is not None:
            await self._lock.close()
            self._lock = None


DISPATCHER = Dispatcher()  # one epoch per process
