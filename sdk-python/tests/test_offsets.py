"""Commit positions are contiguous per partition and never pass an unfinished job."""

from __future__ import annotations

import asyncio
import time

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
