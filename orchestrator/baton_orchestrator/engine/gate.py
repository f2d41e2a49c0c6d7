"""The dispatch gate: concurrency slots, rate-limit tokens and priorities, decided before a job is queued.

A step with a flow need (flow.py) is decided in the transaction that would queue it: admitted (a slot of
each of its limits is free, a token is available) it is queued as any other step; otherwise it is held as
WAITING with the reason. The release loop (GateLoop) admits held steps as slots free and tokens refill.

Slots are derived, never counted apart: a slot's holders are the open steps (QUEUED, RUNNING; FAILED
awaiting a retry and WAITING for a token while their run runs) carrying its key, or, for a run-level
limit, the RUNNING admitted runs carrying it. Whatever ends a step or a run (a result, a timeout, a dead
letter, a cancel) frees its slot by changing its status. The count is taken under an advisory lock on the
key, so replicas never admit past a limit: locks are taken in one order (run keys, step keys, buckets).

Tokens are rows of `rate_limits`, refilled lazily by the UPDATE that takes them, in the transaction
that queues the job: a rolled-back dispatch never spends a token, and every replica shares the bucket.

FIFO: while steps wait for a key (or an action's token), a new step for it waits behind them; the
release loop takes waiting steps by effective priority (priority + one level per aging period waited),
then by how long they have waited. One replica releases at a time (a try-lock), so the order is global.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any

import orjson

from .. import flow
from ..model import Workflow
from ..settings import Settings
from ..store import flow as sql
from .apply import Definitions
from .pg import Conn, Pg
from .writes import JobSpec, Writes, flush, now_utc

log = logging.getLogger("baton.gate")


@dataclass(slots=True)
class _Count:
    holders: int
    waiting: int


async def _lock(pg: Conn, keys: set[str]) -> None:
    if keys:
        await pg.execute(sql.LOCK_KEYS, (sorted(keys),))


async def _counts(pg: Conn, statement: str, keys: set[str]) -> dict[str, _Count]:
    if not keys:
        return {}
    cur = await pg.execute(statement, (sorted(keys),))
    return {r[0]: _Count(int(r[1]), int(r[2])) for r in await cur.fetchall()}


async def take_tokens(pg: Conn, wanted: Counter[str], fifo: bool) -> dict[str, int]:
    """Tokens granted per action (an action without a bucket row is not limited: it gets all it asked)."""
    if not wanted:
        return {}
    doc = orjson.dumps([{"action": a, "n": n} for a, n in sorted(wanted.items())]).decode()
    cur = await pg.execute(sql.TAKE_TOKENS, {"want": doc, "fifo": fifo})
    granted = dict(wanted)
    granted.update({r[0]: int(r[1]) for r in await cur.fetchall()})
    return granted


def _keys(job: JobSpec) -> list[str] | None:
    assert job.flow is not None
    return [s.key for s in job.flow.slots] or None


def hold(
    writes: Writes,
    job: JobSpec,
    reason: str,
    key: str | None,
    current: dict[tuple[str, str], str] | None = None,
    flow_keys: list[str] | None = None,
    priority: int | None = None,
) -> None:
    """Hold a step as WAITING (reason concurrency | run_concurrency | rate_limit); a step already waiting
    for that reason is left as it is (its place in line and its history unchanged). `priority`: the run's,
    for a step without a need of its own (held for its run's slot)."""
    if current is not None and current.get((job.run_id, job.step)) == reason:
        return
    if priority is None:
        priority = job.flow.priority if job.flow else flow.DEFAULT_PRIORITY
    writes.held.append(
        {
            "run_id": job.run_id,
            "name": job.step,
            "reason": reason,
            "key": key,
            "priority": priority,
            "input": job.input,
            "max_attempts": job.max_attempts,
            "flow_keys": flow_keys if flow_keys is not None else (_keys(job) if job.flow else None),
        }
    )
    shown = "concurrency" if reason == "run_concurrency" else reason
    data = {"reason": shown, "scope": "run" if reason == "run_concurrency" else "step", "key": key}
    writes.event(job.run_id, job.step, "step_waiting", data)


async def admit(pg: Conn, writes: Writes, fifo: bool = True, current: dict[tuple[str, str], str] | None = None) -> None:
    """Decide every gated job of `writes`: queue the admitted ones, hold the others.

    `fifo`: a new step waits behind the steps already waiting for its key (the release loop passes
    False: the waiting steps are the ones it is deciding, in their order)."""
    jobs, writes.gated = writes.gated, []
    settings = writes.settings
    assert settings is not None
    now = now_utc()
    keys = {s.key for j in jobs if j.flow for s in j.flow.slots}
    await _lock(pg, keys)
    counts = await _counts(pg, sql.STEP_COUNTS, keys)
    want: list[JobSpec] = []
    # A batch of new steps goes by priority (stable: FIFO within one); the release loop's jobs come in
    # its own order already (effective priority, with aging).
    ordered = sorted(jobs, key=lambda j: -(j.flow.priority if j.flow else 0)) if fifo else jobs
    for job in ordered:
        assert job.flow is not None
        blocked = next(
            (s for s in job.flow.slots if (fifo and counts[s.key].waiting) or counts[s.key].holders >= s.limit), None
        )
        if blocked is not None:
            counts[blocked.key].waiting += 1
            hold(writes, job, "concurrency", blocked.shown, current)
            continue
        for s in job.flow.slots:
            counts[s.key].holders += 1
        if job.flow.rate:
            want.append(job)
        else:
            writes.queue(settings, replace(job, flow=None), now, _keys(job))
    granted = await take_tokens(pg, Counter(j.flow.rate for j in want if j.flow and j.flow.rate), fifo)
    for job in want:
        assert job.flow is not None and job.flow.rate is not None
        if granted[job.flow.rate] > 0:
            granted[job.flow.rate] -= 1
            writes.queue(settings, replace(job, flow=None), now, _keys(job))
        else:  # it keeps the slots it was admitted to while it waits for a token
            hold(writes, job, "rate_limit", job.flow.rate, current)


async def admit_run(pg: Conn, slots: tuple[flow.Slot, ...], fifo: bool = True) -> flow.Slot | None:
    """Try to admit a run to its run-level slots: None when admitted, else the slot it waits for."""
    keys = {s.key for s in slots}
    await _lock(pg, keys)
    counts = await _counts(pg, sql.RUN_COUNTS, keys)
    return next((s for s in slots if (fifo and counts[s.key].waiting) or counts[s.key].holders >= s.limit), None)


class GateLoop:
    """Releases held steps as slots free and tokens refill (every replica runs it; one releases at a time)."""

    BATCH = 200
    # While no step is held anywhere the tick doubles up to this (a sweep every 50 ms was most of an idle
    # engine's CPU); a hold or a freed slot in this process sets `wake`, and a held step resets the tick.
    IDLE_TICK_MAX = 0.5

    def __init__(
        self, settings: Settings, pg: Pg, publisher: Any, definitions: Definitions, wake: asyncio.Event | None = None
    ) -> None:
        self.settings, self.pg, self.publisher, self.definitions = settings, pg, publisher, definitions
        self.wake = wake or asyncio.Event()  # set when this process freed a slot: no need to wait for the tick
        self.idle = False  # the last sweep found no held step at all

    async def run(self) -> None:
        base = self.settings.flow_tick_seconds
        tick = base
        while True:
            self.wake.clear()
            try:
                released = await self.sweep()
            except Exception as exc:  # PostgreSQL away: held steps wait longer, nothing is lost
                log.warning("gate sweep failed (retrying): %s", exc)
                released, self.idle = 0, False
            if released:
                tick = base
                continue
            tick = min(tick * 2, max(base, self.IDLE_TICK_MAX)) if self.idle else base
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that
            # arrives as the event is set, and the loop then outlives its app's shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(tick):
                    await self.wake.wait()
            if self.wake.is_set():
                tick = base

    async def sweep(self) -> int:
        """One pass; returns how many held steps were queued."""
        self.idle = False
        async with self.pg.transaction() as pg:
            got = await (await pg.execute(sql.TRY_RELEASER_LOCK, (sql.RELEASER_LOCK_ID,))).fetchone()
            if not got or not got[0]:
                return 0
            cur = await pg.execute(sql.WAITING, {"aging": self.settings.flow_aging_seconds, "limit": self.BATCH})
            rows = await cur.fetchall()
            if not rows:
                self.idle = True
                return 0
            writes = Writes(settings=self.settings)
            current = {(r[0], r[1]): r[8] for r in rows}
            admitted: dict[str, bool] = {}
            for r in rows:
                wf = await self.definitions.get(pg, r[10], r[11])
                if r[8] == "run_concurrency":
                    if r[0] not in admitted:
                        admitted[r[0]] = await self._admit_run(pg, writes, wf, r)
                    if not admitted[r[0]]:
                        continue
                    # The run holds its run-level slots now: its first steps go through the step-level gate.
                    current.pop((r[0], r[1]), None)
                    need = flow.step_need(wf, r[1], r[12], {}, r[9])
                else:
                    need = flow.held_need(wf, r[1], r[7], r[9], holds_slots=r[8] == "rate_limit")
                # A held step continues its attempt budget: the row's max_attempts.
                job = JobSpec.for_step(r[0], wf, wf.by_name[r[1]], r[3] + 1, r[5], r[13], need, max_attempts=r[4])
                writes.queue(self.settings, job, now_utc())
            await admit(pg, writes, fifo=False, current=current)
            out, _ = await flush(pg, writes)
        self.publisher.publish_soon(out)
        return len(out)

    @staticmethod
    async def _admit_run(pg: Conn, writes: Writes, wf: Workflow, r: Any) -> bool:
        """A waiting run takes its run-level slots when they are free (in the release order)."""
        if await admit_run(pg, flow.run_slots(wf, r[12]), fifo=False) is not None:
            return False
        # flow_admitted makes it a holder for the next run's check in this same pass. A run row locked by
        # another transaction (e.g. failing it) is skipped, never waited for, while this holds key locks.
        cur = await pg.execute(sql.ADMIT_RUN, (r[0],))
        if not cur.rowcount:
            return False
        writes.event(r[0], None, "run_admitted")
        return True
