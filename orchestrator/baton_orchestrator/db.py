"""Alembic migrations (`baton db upgrade`): the only part of Baton that uses SQLAlchemy.

Every other statement goes through psycopg (engine/pg.py)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from .settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def migrate(settings: Settings) -> None:
    """Bring the schema to the newest revision (idempotent; safe to run from every replica)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", settings.sqlalchemy_url.replace("%", "%%"))
    cfg.attributes["schema"] = settings.database_schema or None
    command.upgrade(cfg, "head")
