"""The `baton` command line: `baton server`, `baton db upgrade`. The only place logging is configured."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from datetime import UTC, datetime

from . import __version__
from .settings import Settings

_JOB_FIELDS = ("run_id", "step", "job_id", "workflow_id")


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
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
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


def cmd_server(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import create_app
    from .db import migrate

    settings = _settings()
    configure_logging(settings.log_level)
    if (settings.auto_migrate and not args.no_migrate and args.role != "engine") or args.migrate:
        _migrate_or_exit(migrate, settings)
    app = create_app(settings, role=args.role)
    _tune_gc()
    uvicorn.run(app, host=args.host, port=args.port, log_config=None, access_log=False, timeout_graceful_shutdown=10)
    return 0


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


def cmd_db_upgrade(_: argparse.Namespace) -> int:
    from .db import migrate

    settings = _settings()
    configure_logging(settings.log_level)
    _migrate_or_exit(migrate, settings)
    print("database is at the newest revision")
    return 0


def _client_command(args: argparse.Namespace) -> int:
    import os

    from . import client

    url = args.url or os.environ.get("BATON_API_URL", "http://127.0.0.1:8080")
    token = os.environ.get("BATON_API_KEY")
    try:
        if args.command == "apply":
            return client.apply(url, args.files, token)
        payload = json.loads(args.input) if args.input is not None else None
        return client.trigger(url, args.workflow_id, payload, args.key, args.wait, token)
    except json.JSONDecodeError as exc:
        sys.exit(f"--input is not valid JSON: {exc}")
    except (client.ApiError, OSError) as exc:
        sys.exit(str(exc))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="baton", description="Baton orchestrator (settings: BATON_* env vars)")
    parser.add_argument("--version", action="version", version=f"baton {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    server = sub.add_parser("server", help="run the HTTP API and/or the engine")
    server.add_argument("--role", choices=["all", "api", "engine"], default="all")
    server.add_argument("--host", default="127.0.0.1")
    server.add_argument("--port", type=int, default=8080)
    server.add_argument("--no-migrate", action="store_true", help="do not run database migrations at start")
    server.add_argument("--migrate", action="store_true", help="run migrations even for --role engine")
    server.set_defaults(func=cmd_server)
    db = sub.add_parser("db", help="database tasks")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    upgrade = db_sub.add_parser("upgrade", help="apply migrations up to the newest revision")
    upgrade.set_defaults(func=cmd_db_upgrade)
    apply = sub.add_parser("apply", help="define workflows from YAML/JSON files (POST /workflow)")
    apply.add_argument("files", nargs="+")
    trig = sub.add_parser("trigger", help="start a run (POST /workflow/{id}/trigger)")
    trig.add_argument("workflow_id")
    trig.add_argument("--input", help="the run input as JSON, e.g. '\"Hello World\"'")
    trig.add_argument("--key", help="Idempotency-Key")
    trig.add_argument("--wait", type=float, default=0, metavar="SECONDS", help="watch the run until it ends")
    for p in (apply, trig):
        p.add_argument("--url", help="API base URL (default $BATON_API_URL or http://127.0.0.1:8080)")
        p.set_defaults(func=_client_command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
