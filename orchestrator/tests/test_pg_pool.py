"""PgPool against the real PostgreSQL: connections reused, and replaced after the server drops them."""

from __future__ import annotations

import asyncio
import uuid

import psycopg
import pytest

from baton_orchestrator.engine.pg import PgPool, fetch_raw, fetchall


async def _pid(pool: PgPool) -> int:
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT pg_backend_pid()")
        row = await cur.fetchone()
        assert row is not None
        return int(row[0])


async def test_connections_are_reused_and_autocommit(settings):
    pool = PgPool(settings, size=1)
    try:
        first = await _pid(pool)
        assert await _pid(pool) == first
        async with pool.connection() as conn:
            assert conn.autocommit
    finally:
        await pool.close()


async def test_after_the_server_drops_every_connection_only_one_request_fails(settings):
    # A PostgreSQL restart breaks every pooled connection at once; the first request to notice must
    # retire the others too, or each stale connection would fail one more request.
    pool = PgPool(settings, size=3)
    try:
        async with pool.connection() as a, pool.connection() as b, pool.connection() as c:
            pids = []
            for conn in (a, b, c):
                row = await (await conn.execute("SELECT pg_backend_pid()")).fetchone()
                assert row is not None
                pids.append(int(row[0]))
        with psycopg.connect(settings.database_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
        with pytest.raises((psycopg.OperationalError, psycopg.InterfaceError)):
            await _pid(pool)
        fresh = {await _pid(pool) for _ in range(4)}
        assert not fresh & set(pids)
    finally:
        await pool.close()


async def test_outbox_records_and_their_deletion_work_on_psycopg_connections(client, settings):
    # The API moves off SQLAlchemy: add_outbox, add_events and Publisher.delete_published take psycopg too.
    from baton_orchestrator.engine.dispatch import Publisher, add_events, add_outbox

    pool = PgPool(settings, size=1)
    try:
        async with pool.connection() as conn:
            (made,) = await add_outbox(conn, [("t-topic", b"k", b"v", [("h", b"1")])])
            await add_events(conn, [(str(uuid.uuid4()), None, "run_reopened", {"steps": []})])
            kind = await (await conn.execute("SELECT kind FROM outbox WHERE id = %s", (made.id,))).fetchone()
            assert kind == (None,)  # not a step's job: the relay sends it, nothing else reads it
        publisher = Publisher(None, pool)  # type: ignore[arg-type]
        publisher.give_back([made.id])
        await publisher.delete_published()
        async with pool.connection() as conn:
            left = await (await conn.execute("SELECT count(*) FROM outbox WHERE id = %s", (made.id,))).fetchone()
        assert left == (0,) and publisher.take_published() == []
    finally:
        await pool.close()


async def test_transaction_commits_at_the_end_and_rolls_back_when_the_block_raises(settings):
    pool = PgPool(settings, size=1, index_plans=False)
    try:
        async with pool.connection() as conn:
            await conn.execute("CREATE TEMP TABLE t (n int)")
        async with pool.transaction() as conn:
            await conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(RuntimeError):
            async with pool.transaction() as conn:
                await conn.execute("INSERT INTO t VALUES (2)")
                raise RuntimeError("refused")
        assert [r.n for r in await pool.fetchall("SELECT n FROM t")] == [1]
    finally:
        await pool.close()


async def test_a_connection_given_back_inside_a_transaction_is_closed_not_reused_when_its_caller_was_cancelled(
    settings,
):
    pool = PgPool(settings, size=1)
    try:
        first = await _pid(pool)

        async def stuck() -> None:
            async with pool.connection() as conn:
                await conn.execute("BEGIN")
                await conn.execute("SELECT pg_sleep(30)")

        task = asyncio.create_task(stuck())
        await asyncio.sleep(0.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await _pid(pool) != first
    finally:
        await pool.close()


@pytest.fixture
async def pool(settings):
    one = PgPool(settings, size=1)
    yield one
    await one.close()


async def test_fetch_raw_prepares_once_per_connection_and_answers_the_servers_bytes(pool):
    sql = b"SELECT $1::text || '\xc3\xa9', NULL::text, 42 WHERE $1::text <> 'none'"
    async with pool.connection() as conn:
        assert await fetch_raw(conn, b"t_raw", sql, [b"x"]) == ["x\u00e9".encode(), None, b"42"]
        assert await fetch_raw(conn, b"t_raw", sql, [b"none"]) is None  # no row
        rows = await fetchall(conn, "SELECT count(*) AS n FROM pg_prepared_statements WHERE name = 't_raw'")
        assert rows[0].n == 1


async def test_fetch_raw_raises_the_servers_error_and_leaves_the_connection_usable(pool):
    async with pool.connection() as conn:
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            await fetch_raw(conn, b"t_bad", b"SELECT $1::int", [b"not a number"])
        with pytest.raises(psycopg.errors.UndefinedColumn):
            await fetch_raw(conn, b"t_undefined", b"SELECT nope", [])
        assert await fetch_raw(conn, b"t_bad", b"SELECT $1::int", [b"7"]) == [b"7"]


async def test_fetch_raw_prepares_again_on_a_new_connection_after_the_server_dropped_it(pool, settings):
    async with pool.connection() as conn:
        assert await fetch_raw(conn, b"t_again", b"SELECT pg_backend_pid()", []) is not None
    pid = await _pid(pool)
    with psycopg.connect(settings.database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises((psycopg.OperationalError, psycopg.InterfaceError)):
        async with pool.connection() as conn:
            await fetch_raw(conn, b"t_again", b"SELECT pg_backend_pid()", [])
    async with pool.connection() as conn:
        row = await fetch_raw(conn, b"t_again", b"SELECT pg_backend_pid()", [])
    assert row is not None and int(row[0]) != pid


async def test_fetch_raw_prepares_again_after_the_statement_was_deallocated_on_its_connection(pool):
    async with pool.connection() as conn:
        assert await fetch_raw(conn, b"t_gone", b"SELECT 1", []) == [b"1"]
        await conn.execute("DEALLOCATE ALL")
        with pytest.raises(psycopg.errors.InvalidSqlStatementName):
            await fetch_raw(conn, b"t_gone", b"SELECT 1", [])
        assert await fetch_raw(conn, b"t_gone", b"SELECT 1", []) == [b"1"]
