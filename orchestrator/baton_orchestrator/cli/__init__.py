"""The `baton` command line (typer + rich): the orchestrator's server, and operator commands over its API.

Exit codes scripts can use: 0 done (a watched run COMPLETED), 1 a watched run FAILED or was CANCELLED,
2 usage or API error, 3 timed out waiting.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer

from .. import __version__
from . import commands, trace
from . import schedules as automations
from .api import ApiError
from .commands import EXIT_ERROR
from .render import errors
from .server import db_upgrade, serve

HELP = (
    "Baton: run the orchestrator, define workflows, start and steer runs.\n\n"
    "Operator commands talk to the API at $BATON_API_URL (default http://127.0.0.1:8080) with the bearer "
    "token $BATON_API_KEY. Read commands take --output json.\n\n"
    "Exit codes: 0 done (a watched run COMPLETED) · 1 a watched run FAILED or was CANCELLED · "
    "2 usage or API error · 3 timed out waiting."
)

app = typer.Typer(name="baton", help=HELP, no_args_is_help=True, add_completion=True, pretty_exceptions_enable=False)
db = typer.Typer(help="Database tasks.", no_args_is_help=True)
app.add_typer(commands.workflows, name="workflows")
app.add_typer(commands.runs, name="runs")
app.add_typer(commands.dlq, name="dlq")
app.add_typer(automations.schedules, name="schedules")
app.add_typer(automations.triggers, name="triggers")
app.add_typer(db, name="db")
app.command("trigger")(commands.trigger)
app.command("workers")(commands.workers)
app.command("trace")(trace.command)


class Role(StrEnum):
    all = "all"
    api = "api"
    engine = "engine"


@app.command("server")
def server(
    role: Role = Role.all,
    host: str = "127.0.0.1",
    port: int = 8080,
    no_migrate: Annotated[bool, typer.Option("--no-migrate", help="do not run migrations at start")] = False,
    migrate: Annotated[bool, typer.Option("--migrate", help="run migrations even for --role engine")] = False,
) -> None:
    """Run the HTTP API and/or the engine (settings: BATON_* env vars)."""
    serve(role.value, host, port, no_migrate, migrate)


@db.command("upgrade")
def upgrade() -> None:
    """Apply migrations up to the newest revision."""
    db_upgrade()


@app.command("apply", hidden=True)
def apply(files: list[str], url: commands.UrlOpt = None) -> None:
    """Same as `baton workflows apply -f FILE...` (kept for scripts)."""
    from pathlib import Path

    commands.workflows_apply([Path(f) for f in files], url)


def _version(value: bool) -> None:
    if value:
        print(f"baton {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    """Baton."""


def _bare_wait(argv: list[str]) -> list[str]:
    # `--wait` may stand alone ("until it ends", 300 s): click options take a value, so give it one.
    out = list(argv)
    for i, arg in enumerate(out):
        if arg == "--wait" and (i + 1 == len(out) or (out[i + 1].startswith("-") and not _number(out[i + 1]))):
            out.insert(i + 1, "300")
    return out


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    """Usage errors exit 2 (click's own code, as ours); typer.Exit carries a command's code."""
    args = _bare_wait(sys.argv[1:] if argv is None else argv)
    try:
        app(args, prog_name="baton")
    except ApiError as exc:
        errors.print(f"error: {exc}", markup=False, highlight=False)
        return EXIT_ERROR
    return 0
