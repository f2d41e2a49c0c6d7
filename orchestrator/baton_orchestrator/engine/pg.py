"""A dedicated psycopg connection per engine loop: no pool checkout, no greenlet hop per statement.

The API keeps SQLAlchemy; the engine's loops run a transaction per batch, so the fixed cost of each
transaction is what limits them when the machine is quiet (DESIGN §10).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_loads
from sqlalchemy.ext.asyncio import AsyncConnection

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


async def connect(settings: Settings, autocommit: bool = False) -> Conn:
    options = INDEX_PLANS
    if settings.database_schema:
        options += f" -c search_path={settings.database_schema}"
    url = "postgresql://" + settings.database_url.split("://", 1)[1]
    conn = await psycopg.AsyncConnection.connect(url, options=options, autocommit=autocommit)
    set_json_loads(orjson.loads, conn)
    return conn


async def raw(conn: AsyncConnection | Conn) -> Conn:
    """The psycopg connection, whether given one or SQLAlchemy's wrapper around one."""
    if isinstance(conn, psycopg.AsyncConnection):
        return conn
    wrapper = await conn.get_raw_connection()
    return wrapper.driver_connection  # type: ignore[return-value]


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


class PgPool:
    """A few autocommit connections for single-statement writes from the API (a trigger is one statement).

    Cheaper than SQLAlchemy's pool and transaction for the busiest endpoint: no checkout bookkeeping,
    no BEGIN/COMMIT round trips. When a connection fails, every connection opened before the failure is
    replaced on its next use (a PostgreSQL restart breaks them all), so one request sees the outage,
    not one request per pooled connection.
    """

    def __init__(self, settings: Settings, size: int = 4) -> None:
        self.settings = settings
        self._free: asyncio.Queue[tuple[Conn, int] | None] = asyncio.Queue()
        for _ in range(size):
            self._free.put_nowait(None)  # a slot, connected on first use
        self._open: set[Conn] = set()
        self._generation = 0

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Conn]:
        slot = await self._free.get()
        conn: Conn | None = None
        try:
            if slot is not None and (slot[0].closed or slot[1] != self._generation):
                await self._discard(slot[0])
                slot = None
            if slot is None:
                slot = (await connect(self.settings, autocommit=True), self._generation)
                self._open.add(slot[0])
            conn = slot[0]
            yield conn
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self._generation += 1
            if conn is not None:
                await self._discard(conn)
            slot = None
            raise
        finally:
            self._free.put_nowait(slot)

    async def _discard(self, conn: Conn) -> None:
        self._open.discard(conn)
        await conn.close()

    async def close(self) -> None:
        for conn in list(self._open):
            await conn.close()
        self._open.clear()
