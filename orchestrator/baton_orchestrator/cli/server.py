"""`baton server` and `baton db upgrade`: the only place logging is configured."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from ..settings import Settings

_JOB_FIELDS = ("run_id", "step", "job_id", "workflow_id", "trace_id", "span_id")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({f: getattr(record, f) for f in _JOB_FIELDS if hasattr(record, f)})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    from ..tracing import TraceIdsFilter

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(TraceIdsFilter())  # trace_id/span_id on lines logged inside a span
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)


def _settings() -> Settings:
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        lines = [f"  BATON_{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()]
        sys.exit("invalid configuration:\n" + "\n".join(lines))


def serve(role: str, host: str, port: int, no_migrate: bool, force_migrate: bool) -> None:
    import uvicorn

    from .. import tracing
    from ..app import create_app
    from ..db import migrate

    settings = _settings()
    configure_logging(settings.log_level)
    if (settings.auto_migrate and not no_migrate and role != "engine") or force_migrate:
        _migrate_or_exit(migrate, settings)
    if tracing.configure():
        logging.getLogger("baton.tracing").info("tracing on: spans of service %s exported", tracing.SERVICE_NAME)
    app = create_app(settings, role=role)
    _tune_gc()
    try:
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, timeout_graceful_shutdown=10)
    finally:
        tracing.shutdown()  # the last spans are flushed to their files / collector


def _tune_gc() -> None:
    # The server allocates many short-lived dicts per step; with the default gen-0 threshold (700) the
    # cyclic collector ran every few batches. Everything imported so far lives for the whole process,
    # so it is frozen out of collections altogether.
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def _migrate_or_exit(migrate: Callable[[Settings], None], settings: Settings) -> None:
    try:
        migrate(settings)
    except Exception as exc:
        sys.exit(f"database migration failed ({settings.database_url.split('@')[-1]}): {exc}")


def db_upgrade() -> None:
    from ..db import migrate

    settings = _settings()
    configure_logging(settings.log_level)
    _migrate_or_exit(migrate, settings)
    print("database is at the newest revision")
