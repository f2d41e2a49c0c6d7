"""Schedules, the pure part: the definition, its fire times, and what one tick of the scheduler does.

No I/O and no clock: every function takes `now`, so catch-up and overlap are tested without sleeping.
Cron expressions are evaluated by cronsim (maintained, typed, zoneinfo-aware: a slot that falls in a
DST gap fires at the first valid minute after it, a repeated hour fires once). Every slot is a whole
second in UTC, so its Idempotency-Key `schedule:<id>:<slot RFC 3339>` is the same on every replica.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .bus.values import check_value
from .settings import ACTION_PATTERN

CatchUp = Literal["skip", "once", "all"]
Overlap = Literal["skip", "queue", "allow"]
RUNNING = ("PENDING", "RUNNING")


class ScheduleError(ValueError):
    """A definition that cannot fire: bad cron, unknown zone, a cron that never matches."""


class ScheduleSpec(BaseModel):
    """POST /schedules: start `workflow_id` with `input` on a cron (in `timezone`) or every `interval_seconds`."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(None, pattern=ACTION_PATTERN, description="Defaults to a generated id.")
    workflow_id: str = Field(pattern=ACTION_PATTERN)
    cron: str | None = Field(None, max_length=200, description="Five-field cron, e.g. '0 9 * * MON-FRI'.")
    timezone: str = Field("UTC", max_length=100, description="IANA zone the cron is read in.")
    interval_seconds: int | None = Field(None, ge=1, le=366 * 86_400, description="Fixed interval instead of cron.")
    input: Any = Field(None, description="The input of every run it starts.")
    catch_up: CatchUp = Field("skip", description="After downtime: skip missed slots, run once, or run all.")
    max_catch_up: int = Field(100, ge=1, le=10_000, description="Most missed slots `all` fires (the newest).")
    overlap: Overlap = Field("skip", description="While its last run is running: skip, queue one, or allow.")
    paused: bool = False

    @field_validator("input")
    @classmethod
    def _storable(cls, v: Any) -> Any:
        check_value(v, "input")
        return v

    @model_validator(mode="after")
    def _one_timing(self) -> ScheduleSpec:
        if (self.cron is None) == (self.interval_seconds is None):
            raise ValueError("give exactly one of cron or interval_seconds")
        return self


@dataclass(frozen=True)
class Timing:
    """The slots of a schedule: a cron in a zone, or `anchor + k * interval`."""

    cron: str | None
    zone: str
    interval: int | None
    anchor: datetime

    @classmethod
    def of(cls, spec: dict[str, Any]) -> Timing:
        return cls(spec.get("cron"), spec["timezone"], spec.get("interval_seconds"), parse_time(spec["anchor"]))

    def after(self, t: datetime) -> datetime:
        """The first slot strictly after t."""
        if self.interval is not None:
            steps = (t - self.anchor) // timedelta(seconds=self.interval) + 1
            return self.anchor + steps * timedelta(seconds=self.interval)
        return next(self._cron(t, reverse=False))

    def at_or_before(self, t: datetime) -> datetime:
        """The latest slot at or before t (slots are whole seconds)."""
        t = t.replace(microsecond=0)
        if self.interval is not None:
            steps = (t - self.anchor) // timedelta(seconds=self.interval)
            return self.anchor + steps * timedelta(seconds=self.interval)
        return next(self._cron(t + timedelta(seconds=1), reverse=True))

    def before(self, t: datetime) -> datetime:
        """The latest slot strictly before t (t is a slot)."""
        return self.at_or_before(t - timedelta(seconds=1))

    def upcoming(self, now: datetime, n: int) -> list[datetime]:
        times, t = [], now
        for _ in range(n):
            t = self.after(t)
            times.append(t)
        return times

    def _cron(self, t: datetime, reverse: bool) -> Iterator[datetime]:
        assert self.cron is not None
        local = CronSim(self.cron, t.astimezone(ZoneInfo(self.zone)), reverse=reverse)
        return (slot.astimezone(UTC) for slot in local)


def normalise(spec: ScheduleSpec, now: datetime) -> dict[str, Any]:
    """The stored definition; raises ScheduleError for a cron or zone that cannot fire."""
    try:
        ZoneInfo(spec.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError(f"unknown time zone {spec.timezone!r}: use an IANA name such as 'Europe/Paris'") from None
    stored = spec.model_dump(exclude={"id", "paused"})
    stored["anchor"] = iso_slot(now)
    try:
        Timing.of(stored).after(now)
    except (CronSimError, StopIteration) as exc:
        raise ScheduleError(f"invalid cron expression {spec.cron!r}: {exc or 'it never matches'}") from None
    return stored


@dataclass(frozen=True)
class State:
    next_fire_at: datetime
    queued_slot: datetime | None
    running: bool  # the schedule's last run is PENDING or RUNNING


@dataclass(frozen=True)
class Tick:
    fire: list[datetime]  # slots to start now, oldest first
    queued_slot: datetime | None
    next_fire_at: datetime
    dropped: int  # due slots neither fired nor queued


def tick(spec: dict[str, Any], state: State, now: datetime, grace_seconds: float) -> Tick:
    """What one scheduler pass does for one schedule at `now`.

    Catch-up picks among the due slots (next_fire_at..now): `skip` keeps only the newest, and only when it
    is at most `grace_seconds` late; `once` keeps the newest; `all` keeps the newest `max_catch_up`.
    Overlap then fires them in order while no run of the schedule is running (`allow`: always); `queue`
    keeps the first one that had to wait (at most one), fired by a later tick once the run finished.
    """
    timing = Timing.of(spec)
    due = _due(timing, state.next_fire_at, now, spec["max_catch_up"] if spec["catch_up"] == "all" else 1)
    total = _count_due(timing, state.next_fire_at, now, len(due))
    if spec["catch_up"] == "skip" and due and (now - due[-1]).total_seconds() > grace_seconds:
        due = []
    fire: list[datetime] = []
    busy, queued = state.running, state.queued_slot
    if queued is not None and not busy:
        fire.append(queued)
        queued, busy = None, True
    for slot in due:
        if spec["overlap"] == "allow" or not busy:
            fire.append(slot)
            busy = True
        elif spec["overlap"] == "queue" and queued is None:
            queued = slot
    kept = len(fire) + (queued is not None) - (state.queued_slot is not None)
    return Tick(fire, queued, timing.after(max(now, state.next_fire_at - timedelta(seconds=1))), total - kept)


def _due(timing: Timing, first: datetime, now: datetime, limit: int) -> list[datetime]:
    """The newest `limit` slots in [first, now], oldest first; walked backwards so a long downtime costs
    `limit` steps, not one per missed slot."""
    slots: list[datetime] = []
    if first > now:
        return slots
    slot = timing.at_or_before(now)
    while slot >= first and len(slots) < limit:
        slots.append(slot)
        slot = timing.before(slot)
    return slots[::-1]


def _count_due(timing: Timing, first: datetime, now: datetime, known: int) -> int:
    # Exact for intervals; for cron the dropped count is reported as at least what was walked.
    if timing.interval is None or first > now:
        return known
    return int((now - first) // timedelta(seconds=timing.interval)) + 1


def slot_key(schedule_id: str, slot: datetime) -> str:
    return f"schedule:{schedule_id}:{iso_slot(slot)}"


def iso_slot(t: datetime) -> str:
    return t.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
