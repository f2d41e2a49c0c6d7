"""PostgreSQL connections, all psycopg 3: a dedicated one per engine loop (`Pg`) and small pools for the API
(`PgPool`). No pool checkout bookkeeping, no greenlet hop per statement: the engine's loops run a
transaction per batch, so the fixed cost of each transaction is what limits them when the machine is
quiet (DESIGN §10), and a trigger is one autocommit statement.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import psycopg
from psycopg import errors, pq
from psycopg.rows import namedtuple_row
from psycopg.types.json import set_json_loads

from ..settings import Settings

Conn = psycopg.AsyncConnection[Any]


# The engine's statements join a batch of a few rows (json_to_recordset, which PostgreSQL guesses at
# 100 rows) against tables whose statistics lag behind their growth. Left alone, the planner picks hash
# joins over sequential scans, so every batch costs O(table) and latency climbs as runs accumulate
# (measured: PostgreSQL CPU per step rose 2.8 -> 4.8 ms within 30 s at a constant 100 steps/s). Every
# hot statement has an index to follow, so the engine's sessions are told to prefer it. Their writes
# find each row by a primary-key lookup per batch row (writes.py), which makes one cached (generic)
# plan right for every batch size; planning the big write statement afresh cost more than running it.
INDEX_PLANS = (
    "-c enable_seqscan=off -c enable_hashjoin=off -c enable_mergejoin=off -c plan_cache_mode=force_generic_plan"
)


async def connect(settings: Settings, autocommit: bool = False, index_plans: bool = True) -> Conn:
    """`index_plans=False`: the planner's own choices, for the API's ad-hoc reads (filters, counts, lists)."""
    options = INDEX_PLANS if index_plans else ""
    if settings.database_schema:
        options += f" -c search_path={settings.database_schema}"
    url = "postgresql://" + settings.database_url.split("://", 1)[1]
    conn = await psycopg.AsyncConnection.connect(url, options=options.strip() or None, autocommit=autocommit)
    set_json_loads(orjson.loads, conn)
    return conn


Params = dict[str, Any] | tuple[Any, ...] | None


# The API's one row style: named tuples (row.column, and row[i] too). Asked per cursor, not set on the
# connection: the engine's statements that API operations run on the same connection read plain tuples.
async def fetchall(conn: Conn, sql: str, params: Params = None) -> list[Any]:
    cur = conn.cursor(row_factory=namedtuple_row)
    await cur.execute(sql, params)
    return await cur.fetchall()


async def fetchone(conn: Conn, sql: str, params: Params = None) -> Any:
    cur = conn.cursor(row_factory=namedtuple_row)
    await cur.execute(sql, params)
    return await cur.fetchone()


# Statements prepared by `fetch_raw`, per connection (a reconnect starts with none).
_prepared: weakref.WeakKeyDictionary[Conn, set[bytes]] = weakref.WeakKeyDictionary()


async def fetch_raw(conn: Conn, name: bytes, sql: bytes, params: list[bytes | None]) -> list[bytes | None] | None:
    """The first row of a named server-side prepared statement (`$1` parameters, text format), as the
    server's bytes: no cursor, no query conversion, no type adaptation. For the hottest read, whose
    answer PostgreSQL builds whole (psycopg's execute and the str round trip cost ~40 % of it)."""
    pgconn = conn.pgconn
    async with conn.lock:  # as psycopg's own execute: one operation on the connection at a time
        known = _prepared.setdefault(conn, set())
        if name not in known:
            pgconn.send_prepare(name, sql)
            _check(await _results(pgconn), conn)
            known.add(name)
        pgconn.send_query_prepared(name, params)
        try:
            result = _check(await _results(pgconn), conn)
        except errors.InvalidSqlStatementName:
            known.discard(name)  # deallocated behind our back (DEALLOCATE ALL, a pooler): next call prepares
            raise
    if result.ntuples == 0:
        return None
    return [result.get_value(0, i) for i in range(result.nfields)]


async def _results(pgconn: pq.abc.PGconn) -> list[pq.abc.PGresult]:
    """Sends what was queued and reads every result. Unlike psycopg's wait, no timer per wait (it is
    there to notice Ctrl-C in a blocked client; the server's loop has its own signal handling)."""
    loop = asyncio.get_running_loop()
    while pgconn.flush():  # 1: the socket's buffer is full, wait until it drains
        await _ready(loop, pgconn.socket, write=True)
    results: list[pq.abc.PGresult] = []
    while True:
        while pgconn.is_busy():
            await _ready(loop, pgconn.socket, write=False)
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            return results
        results.append(result)


async def _ready(loop: asyncio.AbstractEventLoop, fd: int, write: bool) -> None:
    fut = loop.create_future()
    if write:
        loop.add_writer(fd, _wake, fut)
    else:
        loop.add_reader(fd, _wake, fut)
    try:
        await fut
    finally:
        if write:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _check(results: list[pq.abc.PGresult], conn: Conn) -> pq.abc.PGresult:
    result = results[-1]
    if result.status not in (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK):
        raise errors.error_from_result(result, encoding=conn.info.encoding)
    return result


class Pg:
    """One connection, reopened after a failure; `transaction()` commits on success, rolls back on error."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._conn: Conn | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        if self._conn is None or self._conn.closed:
            self._conn = await connect(self.settings)
        try:
            async with self._conn.transaction():
                yield self._conn
        except (psycopg.OperationalError, psycopg.InterfaceError):
            await self.close()
            raise

    async def close(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


class _Checkout:
    """A class, not an `@asynccontextmanager` generator: the checkout is on every API request, and the
    generator machinery cost the hottest read more than the pool's own bookkeeping."""

    __slots__ = ("pool", "slot")

    def __init__(self, pool: PgPool) -> None:
        self.pool = pool
        self.slot: tuple[Conn, int] | None = None

    async def __aenter__(self) -> Conn:
        self.slot = await self.pool._take()
        return self.slot[0]

    async def __aexit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if self.slot is not None:
            slot, self.slot = self.slot, None
            await self.pool._give_back(slot, exc)


class PgPool:
    """A few autocommit connections: a single statement needs no BEGIN/COMMIT round trips (a trigger is
    one), and `transaction()` opens one where an operation needs several statements to commit together.

    Cheaper than SQLAlchemy's pool for the busiest endpoint: no checkout bookkeeping. When a connection
    fails, every connection opened before the failure is replaced on its next use (a PostgreSQL restart
    breaks them all), so one request sees the outage, not one request per pooled connection. A connection
    given back mid-transaction or mid-statement (its request was cancelled) is closed, never reused.
    """

    def __init__(self, settings: Settings, size: int = 4, index_plans: bool = True) -> None:
        self.settings = settings
        self.index_plans = index_plans
        self._free: asyncio.Queue[tuple[Conn, int] | None] = asyncio.Queue()
        for _ in range(size):
            self._free.put_nowait(None)  # a slot, connected on first use
        self._open: set[Conn] = set()
        self._generation = 0

    def connection(self) -> _Checkout:
        """`async with pool.connection() as conn`: one connection, given back when the block ends."""
        return _Checkout(self)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Conn]:
        """One connection in one transaction: committed when the block ends, rolled back if it raises."""
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def ping(self) -> None:
        await self.fetchone("SELECT 1")

    async def fetchall(self, sql: str, params: Params = None) -> list[Any]:
        """One statement's rows, on its own (autocommit: no transaction around it)."""
        async with self.connection() as conn:
            return await fetchall(conn, sql, params)

    async def fetchone(self, sql: str, params: Params = None) -> Any:
        async with self.connection() as conn:
            return await fetchone(conn, sql, params)

    async def _take(self) -> tuple[Conn, int]:
        slot = await self._free.get()
        try:
            if slot is not None and (slot[0].closed or slot[1] != self._generation):
                await self._discard(slot[0])
                slot = None
            if slot is None:
                slot = (await connect(self.settings, True, self.index_plans), self._generation)
                self._open.add(slot[0])
            return slot
        except BaseException as exc:
            if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
                self._generation += 1  # the server may have dropped every connection: retire them all
            self._free.put_nowait(None)
            raise

    async def _give_back(self, slot: tuple[Conn, int], failed: BaseException | None) -> None:
        if isinstance(failed, (psycopg.OperationalError, psycopg.InterfaceError)):
            self._generation += 1
            self._free.put_nowait(None)
            await self._discard(slot[0])
        elif slot[0].info.transaction_status != pq.TransactionStatus.IDLE:
            self._free.put_nowait(None)
            await self._discard(slot[0])
        else:
            self._free.put_nowait(slot)

    async def _discard(self, conn: Conn) -> None:
        self._open.discard(conn)
        await conn.close()

    async def close(self) -> None:
        for conn in list(self._open):
            await conn.close()
        self._open.clear()
