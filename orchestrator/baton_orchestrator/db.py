"""PostgreSQL access: the async engine, and Alembic migrations (`baton db upgrade`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from psycopg.types.json import set_json_loads
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_engine(settings: Settings, pool_size: int = 10) -> AsyncEngine:
    connect_args = {}
    if settings.database_schema:
        connect_args["options"] = f"-c search_path={settings.database_schema}"
    engine = create_async_engine(
        settings.sqlalchemy_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per transaction; every loop retries a failed transaction anyway.
        pool_pre_ping=False,
        connect_args=connect_args,
    )
    event.listen(engine.sync_engine, "connect", _fast_json)
    return engine


def _fast_json(dbapi_connection: Any, _record: Any) -> None:
    # jsonb columns are decoded with orjson on this connection only (the hot path reads outputs).
    set_json_loads(orjson.loads, dbapi_connection.driver_connection)


def migrate(settings: Settings) -> None:
    """Bring the schema to the newest revision (idempotent; safe to run from every replica)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", settings.sqlalchemy_url.replace("%", "%%"))
    cfg.attributes["schema"] = settings.database_schema or None
    command.upgrade(cfg, "head")
