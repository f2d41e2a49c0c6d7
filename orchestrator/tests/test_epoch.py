"""A queued step is its own outbox entry (engine/epoch.py, engine/relay.py): watermark, liveness, adoption.

The "dead" process is this test's own app: its jobs commit but are never acknowledged (publishing is held),
then its epoch's lock is released as a crash would release it. A second epoch's relay is the survivor.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import psycopg
from aiokafka import AIOKafkaProducer

from baton_orchestrator.engine import epoch
from baton_orchestrator.engine.dispatch import Publisher
from baton_orchestrator.engine.pg import Pg
from baton_orchestrator.engine.relay import RelayLoop
from baton_orchestrator.engine.writes import JobSpec, Writes, flush, now_utc

from .conftest import eventually

CHAIN = {"id": "epoch-chain", "steps": [{"name": "a", "action": "ep.a"}, {"name": "b", "action": "ep.b"}]}


async def _rows(conn: psycopg.AsyncConnection[Any], sql: str, *args: Any) -> list[Any]:
    return await (await conn.execute(sql, args)).fetchall()


async def test_a_dead_process_s_unacknowledged_jobs_are_adopted_and_its_acknowledged_ones_never_resent(
    start_app, settings, raw_worker, monkeypatch
):
    client = await start_app(role="api")  # no relay of its own: the survivor below is the only one
    core = client.app.state.core
    victim = core.publisher.dispatch
    await client.define(CHAIN)
    acked_run = (await client.trigger("epoch-chain", 0)).json()["run_id"]  # published and acknowledged
    await eventually(lambda: _true(not victim.unacked(0)), 10)

    async def held(self: Publisher, msgs: Any) -> bool:  # committed, never acknowledged: a crash before the ack
        return False

    monkeypatch.setattr(Publisher, "publish", held)
    lost = [(await client.trigger("epoch-chain", i)).json()["run_id"] for i in (1, 2)]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    survivor, pg = epoch.Dispatcher(), Pg(settings)
    await survivor.start(settings)
    relay = RelayLoop(settings, pg, producer, Publisher(producer, core.pool, survivor), core.applier, core.metrics)
    seen: list[dict[str, Any]] = []
    try:
        async with raw_worker({"ep.a": lambda job: seen.append(job) or "ok"}):
            assert await relay.sweep() == 0  # the victim is alive: its jobs are its own business
            await victim._lock.close()  # the process dies: its connection, and so its lock, go away
            assert await relay.sweep() == 2
            await eventually(lambda: _true(len(seen) >= 3), 20)
            await relay.sweep()
            await asyncio.sleep(0.5)  # room for a duplicate to show up
        # Each job once: the acknowledged one (sent by its process) was not resent, the others were.
        assert Counter(j["run_id"] for j in seen) == Counter([acked_run, *lost])
        async with await psycopg.AsyncConnection.connect(settings.database_url, autocommit=True) as conn:
            await conn.execute(f'SET search_path TO "{settings.database_schema}"')
            owners = dict(await _rows(conn, "SELECT run_id::text, dispatch_epoch::text FROM steps WHERE name = 'a'"))
            epochs = [r[0] for r in await _rows(conn, "SELECT epoch::text FROM dispatchers")]
        assert all(owners[r] == survivor.epoch for r in lost) and owners[acked_run] == victim.epoch
        assert victim.epoch not in epochs  # retired once nothing of it was left unacknowledged
    finally:
        victim.resolve(range(1, victim._last + 1))  # this process's epoch serves the next tests too
        await victim.ensure_lock(settings)
        await survivor.stop()
        await pg.close()
        await producer.stop()


async def test_a_rolled_back_queueing_does_not_advance_the_watermark(client, settings):
    await client.define({"id": "epoch-one", "steps": [{"name": "a", "action": "ep.none"}]})
    run_id = (await client.trigger("epoch-one", 0)).json()["run_id"]
    d = epoch.Dispatcher()
    job = JobSpec(
        run_id=run_id,
        workflow_id="epoch-one",
        workflow_version=1,
        step="a",
        action="ep.none",
        attempt=2,
        max_attempts=3,
        input={},
        timeout_s=5.0,
    )
    pg = Pg(settings)
    try:
        async with pg.transaction() as conn:
            await conn.execute("UPDATE steps SET status = 'FAILED' WHERE run_id = %s", (run_id,))
        writes = Writes(dispatch=d)
        try:
            async with pg.transaction() as conn:
                writes.queue(settings, job, now_utc())
                out, _ = await flush(conn, writes)
                assert [m.seq for m in out] == [1]
                later = d.assign()  # another transaction's job, committed and acknowledged meanwhile
                d.resolve([later])
                assert d.watermark() == 0  # never past the open transaction's job
                raise RuntimeError("roll back")
        except RuntimeError:
            writes.rolled_back()
        assert d.watermark() == later  # resolved by the rollback: nothing of it is left to resend
        async with pg.transaction() as conn:
            row = await _rows(conn, "SELECT status, dispatch_epoch::text FROM steps WHERE run_id = %s", run_id)
        assert row[0][0] == "FAILED" and row[0][1] != d.epoch  # the rolled-back queueing left no trace
    finally:
        await pg.close()


async def _true(value: bool) -> bool:
    return value
