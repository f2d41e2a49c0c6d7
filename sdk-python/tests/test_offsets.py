"""Commit positions are contiguous per partition and never pass an unfinished job."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka.errors import KafkaConnectionError

from baton._offsets import Committer, OffsetTracker


def test_nothing_is_committable_when_the_first_job_is_unfinished() -> None:
    tracker = OffsetTracker()
    tickets = [tracker.track("p0", offset) for offset in (10, 11, 12)]
    tickets[1].done()
    tickets[2].done()
    assert tracker.committable() == {}
    tickets[0].done()
    assert tracker.committable() == {"p0": 13}


def test_position_stops_before_the_gap_when_a_middle_job_is_unfinished() -> None:
    tracker = OffsetTracker()
    a, b, c = (tracker.track("p0", offset) for offset in (0, 1, 5))  # gaps in offsets are normal
    a.done()
    c.done()
    assert tracker.committable() == {"p0": 1}
    b.done()
    assert tracker.committable() == {"p0": 6}


def test_committed_position_is_not_offered_again_until_it_moves() -> None:
    tracker = OffsetTracker()
    tracker.track("p0", 0).done()
    tracker.track("p1", 7).done()
    tracker.mark_committed(tracker.committable())
    assert tracker.committable() == {}
    tracker.track("p1", 8).done()
    assert tracker.committable() == {"p1": 9}


def test_late_acknowledgement_is_ignored_when_the_partition_was_revoked() -> None:
    tracker = OffsetTracker()
    old = tracker.track("p0", 3)
    tracker.forget(["p0"])
    fresh = tracker.track("p0", 3)  # reassigned: the record is fetched again from the last commit
    old.done()
    assert tracker.committable() == {}
    fresh.done()
    assert tracker.committable() == {"p0": 4}


class _Consumer:
    """The two calls the Committer makes on aiokafka's consumer."""

    def __init__(self, assigned: set[str]) -> None:
        self.assigned, self.commits = assigned, []  # type: ignore[var-annotated]

    def assignment(self) -> set[str]:
        return self.assigned

    async def commit(self, offsets: dict[str, int]) -> None:
        self.commits.append(dict(offsets))


async def test_revocation_waits_for_the_jobs_in_flight_then_commits_past_them() -> None:
    consumer = _Consumer({"p0", "p1"})
    committer = Committer(consumer)
    running = committer.tracker.track("p0", 7)
    elsewhere = committer.tracker.track("p1", 3)  # not revoked: never waited for

    async def finish_soon() -> None:
        await asyncio.sleep(0.05)
        committer.finished(running)

    finisher = asyncio.create_task(finish_soon())
    started = time.monotonic()
    await committer.on_partitions_revoked({"p0"})
    await finisher
    assert 0.04 <= time.monotonic() - started < 1.0
    assert consumer.commits == [{"p0": 8}]  # the next owner starts after the finished job
    elsewhere.done()
    assert committer.tracker.committable() == {"p1": 4}


async def test_revocation_gives_up_waiting_at_the_bound() -> None:
    consumer = _Consumer({"p0"})
    committer = Committer(consumer, revoke_wait=0.1)
    committer.tracker.track("p0", 0).done()
    stuck = committer.tracker.track("p0", 1)
    started = time.monotonic()
    await committer.on_partitions_revoked({"p0"})
    assert 0.09 <= time.monotonic() - started < 1.0
    assert consumer.commits == [{"p0": 1}]  # up to the unfinished job, which the next owner runs again
    committer.finished(stuck)  # a late acknowledgement for a partition we no longer own
    assert committer.tracker.committable() == {}


def _sizes(tracker: OffsetTracker) -> int:
    return sum(len(p.pending) + len(p.done) for p in tracker._parts.values())


def test_bookkeeping_stays_bounded_when_100k_jobs_finish_through_every_path() -> None:
    """In order, out of order (a window of 64 in flight), on a revoked partition, re-fetched after a
    reassignment: whatever the path, nothing stays behind once every fetched job is finished."""
    tracker = OffsetTracker()
    window: list[Any] = []
    peak, offset = 0, 0
    while offset < 100_000:
        tp = f"p{offset % 3}"
        window.append(tracker.track(tp, offset))
        offset += 1
        if len(window) == 64:
            for ticket in reversed(window[::2]):  # finish out of order, then the rest
                ticket.done()
            for ticket in window[1::2]:
                ticket.done()
            window.clear()
        if offset % 10_000 == 0:  # a rebalance: p0 is revoked with jobs in flight, then comes back
            tracker.forget(["p0"])
        peak = max(peak, _sizes(tracker))
    for ticket in window:
        ticket.done()
    assert peak <= 64
    assert _sizes(tracker) == 0
    assert tracker.unfinished() == 0
    assert set(tracker.committable().values()) <= {99_999, 99_998, 100_000}


async def test_failed_commit_is_retried_when_no_further_job_finishes() -> None:
    """Kafka down at the moment of the last commit: once it is back, the commit must still happen."""
    consumer = _FlakyConsumer({"p0"}, failures=2)
    committer = Committer(consumer)
    committer.finished(_done(committer, "p0", 0))
    loop = asyncio.create_task(committer.loop())
    try:
        deadline = time.monotonic() + 10
        while consumer.commits != [{"p0": 1}]:
            assert time.monotonic() < deadline, f"commits {consumer.commits} after 2 failures"
            await asyncio.sleep(0.05)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


def _done(committer: Committer, tp: str, offset: int) -> Any:
    return committer.tracker.track(tp, offset)


class _FlakyConsumer(_Consumer):
    def __init__(self, assigned: set[str], failures: int) -> None:
        super().__init__(assigned)
        self.failures = failures

    async def commit(self, offsets: dict[str, int]) -> None:
        if self.failures:
            self.failures -= 1
            raise KafkaConnectionError("broker down")
        await super().commit(offsets)
