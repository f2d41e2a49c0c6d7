"""Commit positions are contiguous per partition and never pass an unfinished job."""

from __future__ import annotations

from baton._offsets import OffsetTracker


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
