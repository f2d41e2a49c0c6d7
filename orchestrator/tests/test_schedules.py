"""Schedules (R2.7): fire times, catch-up and overlap with an injected clock, the API's checks, and a real
1-second schedule fired by two engine replicas on one schema."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest

from baton_orchestrator import automations
from baton_orchestrator.db import migrate
from baton_orchestrator.engine.scheduler import SchedulerLoop
from baton_orchestrator.schedules import ScheduleError, ScheduleSpec, State, Timing, normalise, slot_key, tick

from .conftest import eventually, make_settings
from .test_cli import baton, server  # noqa: F401 (server is a fixture)

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)
ONE = {"id": "one", "steps": [{"name": "only", "action": "s.one"}]}


def every(seconds: int, **policies: Any) -> dict[str, Any]:
    return normalise(ScheduleSpec(workflow_id="one", interval_seconds=seconds, **policies), T0)


def after_downtime(spec: dict[str, Any], missed: int, running: bool = False, queued: datetime | None = None) -> Any:
    """The tick at T0 + missed slots + 0.5 s, when the schedule still waits for its first slot T0+1."""
    now = T0 + timedelta(seconds=missed * spec["interval_seconds"] + 0.5)
    return tick(spec, State(T0 + timedelta(seconds=spec["interval_seconds"]), queued, running), now, 2.0)


def test_interval_slots_are_anchored_whole_seconds_when_created_mid_second():
    spec = normalise(ScheduleSpec(workflow_id="one", interval_seconds=10), T0 + timedelta(milliseconds=700))
    assert Timing.of(spec).upcoming(T0 + timedelta(seconds=1), 3) == [T0 + timedelta(seconds=s) for s in (10, 20, 30)]


def test_cron_follows_its_time_zone_across_dst_when_the_slot_falls_in_the_gap():
    # 02:30 does not exist in Berlin on 2026-03-29: cronsim fires at 03:00 local (01:00Z), then 02:30 CEST.
    spec = normalise(ScheduleSpec(workflow_id="one", cron="30 2 * * *", timezone="Europe/Berlin"), T0)
    got = Timing.of(spec).upcoming(datetime(2026, 3, 28, 12, tzinfo=UTC), 3)
    assert got == [datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(2026, 3, 30, 0, 30, tzinfo=UTC),
                   datetime(2026, 3, 31, 0, 30, tzinfo=UTC)]  # fmt: skip
    assert Timing.of(spec).at_or_before(datetime(2026, 3, 30, 0, 30, tzinfo=UTC)) == got[1]


def test_a_slot_on_time_fires_once_and_advances_when_due():
    plan = after_downtime(every(1), missed=1)
    assert plan.fire == [T0 + timedelta(seconds=1)] and plan.next_fire_at == T0 + timedelta(seconds=2)
    assert plan.dropped == 0


def test_catch_up_skip_drops_missed_slots_when_they_are_older_than_the_grace():
    plan = after_downtime(every(10), missed=6)  # newest slot 0.5 s late, fires; five older ones dropped
    assert plan.fire == [T0 + timedelta(seconds=60)] and plan.dropped == 5
    late = tick(every(10), State(T0 + timedelta(seconds=10), None, False), T0 + timedelta(seconds=65), 2.0)
    assert late.fire == [] and late.next_fire_at == T0 + timedelta(seconds=70) and late.dropped == 6


def test_catch_up_once_fires_the_newest_missed_slot_when_many_were_missed():
    spec = every(10, catch_up="once")
    plan = tick(spec, State(T0 + timedelta(seconds=10), None, False), T0 + timedelta(seconds=65), 2.0)
    assert plan.fire == [T0 + timedelta(seconds=60)] and plan.dropped == 5


def test_catch_up_all_fires_every_missed_slot_up_to_max_catch_up_when_the_engine_was_down():
    spec = every(1, catch_up="all", overlap="allow", max_catch_up=100)
    assert after_downtime(spec, missed=7).fire == [T0 + timedelta(seconds=s) for s in range(1, 8)]
    bounded = after_downtime(every(1, catch_up="all", overlap="allow", max_catch_up=3), missed=1000)
    assert bounded.fire == [T0 + timedelta(seconds=s) for s in (998, 999, 1000)] and bounded.dropped == 997
    assert bounded.next_fire_at == T0 + timedelta(seconds=1001)


def test_overlap_skip_fires_nothing_when_the_last_run_is_still_running():
    plan = after_downtime(every(1, overlap="skip"), missed=1, running=True)
    assert plan.fire == [] and plan.queued_slot is None and plan.next_fire_at == T0 + timedelta(seconds=2)


def test_overlap_queue_keeps_one_slot_and_fires_it_when_the_run_finishes():
    spec = every(1, overlap="queue", catch_up="all")
    waiting = after_downtime(spec, missed=3, running=True)
    assert waiting.fire == [] and waiting.queued_slot == T0 + timedelta(seconds=1) and waiting.dropped == 2
    later = tick(spec, State(waiting.next_fire_at, waiting.queued_slot, False), T0 + timedelta(seconds=3.7), 2.0)
    assert later.fire == [T0 + timedelta(seconds=1)] and later.queued_slot is None
    assert later.next_fire_at == waiting.next_fire_at  # nothing new was due


def test_overlap_allow_fires_while_running_when_slots_are_due():
    plan = after_downtime(every(1, overlap="allow", catch_up="all"), missed=2, running=True)
    assert plan.fire == [T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)]


def test_slot_keys_are_deterministic_rfc3339_in_utc_when_the_zone_is_not():
    slot = datetime(2026, 3, 29, 3, 0, tzinfo=UTC) + timedelta(microseconds=5)
    assert slot_key("nightly", slot) == "schedule:nightly:2026-03-29T03:00:00Z"


@pytest.mark.parametrize(
    ("body", "bad"),
    [
        ({"cron": "61 * * * *"}, "invalid cron"),
        ({"cron": "* * *"}, "invalid cron"),
        ({"cron": "0 0 30 2 *"}, "invalid cron"),
        ({"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "unknown time zone"),
    ],
)
def test_definitions_that_cannot_fire_are_refused_when_normalised(body, bad):
    with pytest.raises(ScheduleError, match=bad):
        normalise(ScheduleSpec(workflow_id="one", **body), T0)


async def test_the_api_answers_422_with_a_clear_code_when_a_schedule_is_invalid(client):
    await client.define(ONE)
    cases = {
        "invalid_schedule": [{"workflow_id": "one", "cron": "nope"}, {"workflow_id": "one", "cron": "* * * * *",
                                                                      "timezone": "Nowhere/City"}],
        "unknown_workflow": [{"workflow_id": "ghost", "interval_seconds": 5}],
        "validation_error": [
            {"workflow_id": "one", "interval_seconds": 5, "catch_up": "sometimes"},
            {"workflow_id": "one", "interval_seconds": 5, "overlap": "merge"},
            {"workflow_id": "one", "interval_seconds": 5, "cron": "* * * * *"},
            {"workflow_id": "one"},
            {"workflow_id": "one", "interval_seconds": 0},
        ],
    }  # fmt: skip
    for code, bodies in cases.items():
        for body in bodies:
            resp = await client.http.post("/schedules", json=body)
            assert resp.status_code == 422 and resp.json()["error"]["code"] == code, (body, resp.text)


async def test_a_schedule_lists_its_next_fire_times_and_pauses_when_asked(client):
    await client.define(ONE)
    body = {"id": "nightly", "workflow_id": "one", "cron": "0 3 * * *", "timezone": "Europe/Paris", "input": {"a": 1}}
    created = await client.http.post("/schedules", json=body)
    assert created.status_code == 201, created.text
    assert (await client.http.post("/schedules", json=body)).status_code == 409
    got = (await client.http.get("/schedules/nightly?upcoming=3")).json()
    times = [
        datetime.fromisoformat(t.replace("Z", "+00:00")).astimezone(ZoneInfo("Europe/Paris")) for t in got["upcoming"]
    ]
    assert [t.hour for t in times] == [3, 3, 3] and [t.day - times[0].day for t in times][1:] in ([1, 2], [1, -29])
    assert got["catch_up"] == "skip" and got["overlap"] == "skip" and got["input"] == {"a": 1}
    paused = (await client.http.post("/schedules/nightly/pause")).json()
    assert paused["paused"] is True and paused["next_fire_at"] is None
    resumed = (await client.http.post("/schedules/nightly/resume")).json()
    assert resumed["paused"] is False and resumed["next_fire_at"] == got["next_fire_at"]
    assert [s["id"] for s in (await client.http.get("/schedules")).json()["items"]] == ["nightly"]
    assert (await client.http.delete("/schedules/nightly")).status_code == 204
    for path in ("/schedules/a%00b", "/schedules?workflow_id=a%00b", "/triggers/kafka/a%00b"):
        assert (await client.http.get(path)).status_code == 422, path
    missing = await client.http.get("/schedules/nightly")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "schedule_not_found"


async def runs_by_key(settings: Any) -> dict[str, str]:
    async with await psycopg.AsyncConnection.connect(settings.database_url) as conn:
        cur = await conn.execute(
            f'SELECT idempotency_key, count(*) FROM "{settings.database_schema}".runs GROUP BY 1 ORDER BY 1'
        )
        return {k: n for k, n in await cur.fetchall()}


async def test_the_scheduler_catches_up_and_replays_when_driven_by_an_injected_clock(start_app, settings, caplog):
    caplog.set_level(logging.INFO, logger="baton.scheduler")
    api = await start_app(role="api")  # no engine: only this test's loop fires
    await api.define(ONE)
    core = api.app.state.core
    spec = ScheduleSpec(id="tick", workflow_id="one", interval_seconds=60, catch_up="all", overlap="allow")
    await automations.create_schedule(core, spec, now=T0)
    clock = [T0 + timedelta(minutes=3, seconds=1)]
    loop = SchedulerLoop(core, clock=lambda: clock[0])
    assert await loop.sweep() == 1
    keys = [f"schedule:tick:2026-06-01T12:0{m}:00Z" for m in (1, 2, 3)]
    assert await runs_by_key(settings) == dict.fromkeys(keys, 1)
    assert await loop.sweep() == 0  # advanced in the same transaction: nothing is due any more
    # A crash after the runs were created but before the advance committed: the slots fire again, as replays.
    async with core.db.connection() as conn:
        await conn.execute("UPDATE schedules SET next_fire_at = %s", (T0 + timedelta(minutes=1),))
    assert await loop.sweep() == 1
    assert await runs_by_key(settings) == dict.fromkeys(keys, 1)
    assert sum("replayed run" in r.getMessage() for r in caplog.records) == 3
    detail = (await api.http.get("/schedules/tick")).json()
    assert detail["next_fire_at"] == "2026-06-01T12:04:00.000Z" and detail["last_error"] is None


async def test_two_engine_replicas_never_fire_a_slot_twice_when_a_1s_schedule_runs(start_app, services, unique, caplog):
    caplog.set_level(logging.INFO, logger="baton.scheduler")
    s = make_settings(services, unique, schedule_interval_seconds=0.05)
    await asyncio.to_thread(migrate, s)
    api = await start_app(role="api", s=s)
    engines = [await start_app(role="engine", s=s), await start_app(role="engine", s=s)]
    await api.define(ONE)
    resp = await api.http.post(
        "/schedules", json={"id": "fast", "workflow_id": "one", "interval_seconds": 1, "overlap": "allow"}
    )
    assert resp.status_code == 201, resp.text

    async def four_runs() -> dict[str, int] | None:
        keys = await runs_by_key(s)
        return keys if len(keys) >= 4 else None

    await eventually(four_runs, timeout=15)
    assert (await api.http.post("/schedules/fast/pause")).status_code == 200
    keys = await runs_by_key(s)
    slots = sorted(datetime.fromisoformat(k.split(":", 2)[2].replace("Z", "+00:00")) for k in keys)
    assert all(n == 1 for n in keys.values())
    assert [b - a for a, b in pairwise(slots)] == [timedelta(seconds=1)] * (len(slots) - 1)
    # No replica even tried a slot the other had fired: a second try would be a replay, and is logged.
    assert not [r for r in caplog.records if "replayed run" in r.getMessage()]
    assert sum(e.app.state.core.metrics.runs_triggered._value.get() for e in engines) == len(keys)


async def test_overlap_waits_for_the_last_run_when_it_is_still_running(start_app, settings):
    api = await start_app(role="api")  # no worker and no engine: a fired run stays RUNNING
    await api.define(ONE)
    core = api.app.state.core
    for sid, overlap in (("skipper", "skip"), ("queuer", "queue")):
        spec = ScheduleSpec(id=sid, workflow_id="one", interval_seconds=60, overlap=overlap)
        await automations.create_schedule(core, spec, now=T0)
    clock = [T0 + timedelta(seconds=61)]
    loop = SchedulerLoop(core, clock=lambda: clock[0])
    await loop.sweep()
    first = {sid: f"schedule:{sid}:2026-06-01T12:01:00Z" for sid in ("skipper", "queuer")}
    assert await runs_by_key(settings) == dict.fromkeys(first.values(), 1)
    clock[0] = T0 + timedelta(seconds=121)  # both last runs still RUNNING
    await loop.sweep()
    assert await runs_by_key(settings) == dict.fromkeys(first.values(), 1)
    assert (await api.http.get("/schedules/queuer")).json()["queued_slot"] == "2026-06-01T12:02:00.000Z"
    for sid in first:
        last = (await api.http.get(f"/schedules/{sid}")).json()["last_run_id"]
        assert (await api.http.post(f"/workflow/run/{last}/cancel")).status_code == 200
    clock[0] = T0 + timedelta(seconds=150)  # not a slot: only the queued one fires
    await loop.sweep()
    assert set(await runs_by_key(settings)) == {*first.values(), "schedule:queuer:2026-06-01T12:02:00Z"}


async def test_the_cli_applies_lists_pauses_and_removes_schedules_when_given_yaml(server, tmp_path):  # noqa: F811
    async with httpx.AsyncClient(base_url=server) as http:
        assert (await http.post("/workflow", json=ONE)).status_code == 201
    (tmp_path / "s.yaml").write_text(
        "id: hourly\nworkflow_id: one\ncron: '0 * * * *'\ntimezone: Asia/Tokyo\ninput: {a: 1}\n"
        "---\nid: often\nworkflow_id: one\ninterval_seconds: 30\noverlap: allow\n"
    )
    code, out, err = await baton(server, "schedules", "apply", "-f", str(tmp_path / "s.yaml"))
    assert code == 0 and "schedule hourly -> one" in out and "schedule often -> one" in out, (out, err)
    code, out, _ = await baton(server, "schedules", "ls")
    assert code == 0 and "0 * * * * (Asia/Tokyo)" in out and "every 30s" in out, out
    code, out, _ = await baton(server, "schedules", "pause", "hourly")
    assert code == 0 and "paused" in out
    code, out, _ = await baton(server, "schedules", "ls", "-o", "json")
    assert [s["paused"] for s in json.loads(out)] == [True, False]
    code, out, _ = await baton(server, "schedules", "show", "hourly")
    assert code == 0 and json.loads(out)["paused"] is True
    code, out, _ = await baton(server, "schedules", "resume", "hourly")
    assert code == 0 and "resumed" in out
    code, _, err = await baton(server, "schedules", "apply", "-f", str(tmp_path / "s.yaml"))
    assert code == 2 and "409" in err, err
    code, out, _ = await baton(server, "schedules", "rm", "often")
    assert code == 0 and "deleted" in out
    code, _, err = await baton(server, "schedules", "show", "often")
    assert code == 2 and "404" in err
