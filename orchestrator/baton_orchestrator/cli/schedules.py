"""`baton schedules` and `baton triggers`: apply, list, show, pause, resume, delete over the API."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from . import render
from .api import Api
from .commands import Output, OutputOpt, UrlOpt, load_definitions

schedules = typer.Typer(help="Cron and interval schedules: apply, ls, show, pause, resume, rm.", no_args_is_help=True)
triggers = typer.Typer(help="Kafka triggers: apply, ls, rm.", no_args_is_help=True)
FilesOpt = Annotated[list[Path], typer.Option("--file", "-f", help="YAML or JSON definition (repeatable)")]


def _apply(files: list[Path], path: str, url: str | None) -> list[dict[str, Any]]:
    api = Api(url)
    return [api.call("POST", path, d)[1] for f in files for d in load_definitions(f)]


@schedules.command("apply")
def schedules_apply(files: FilesOpt, url: UrlOpt = None) -> None:
    """Create each schedule in the files (an existing id is an error: rm it first)."""
    for made in _apply(files, "/schedules", url):
        print(f"schedule {made['id']} -> {made['workflow_id']}, next {made['next_fire_at']}")


@schedules.command("ls")
def schedules_ls(workflow: str | None = None, output: OutputOpt = Output.table, url: UrlOpt = None) -> None:
    """Schedules, with their next fire time."""
    items = Api(url).get("/schedules", workflow_id=workflow)["items"]
    if output is Output.json:
        return render.emit_json(items)
    render.table(
        items,
        [
            ("id", lambda s: s["id"]),
            ("workflow", lambda s: s["workflow_id"]),
            ("when", lambda s: (s["cron"] and f"{s['cron']} ({s['timezone']})") or f"every {s['interval_seconds']}s"),
            ("policies", lambda s: f"catch-up {s['catch_up']}, overlap {s['overlap']}"),
            ("next", lambda s: "paused" if s["paused"] else s["next_fire_at"]),
            ("last run", lambda s: s["last_run_id"]),
        ],
    )


@schedules.command("show")
def schedules_show(schedule_id: str, upcoming: int = 5, url: UrlOpt = None) -> None:
    """One schedule with its next fire times (JSON)."""
    render.emit_json(Api(url).get(f"/schedules/{schedule_id}", upcoming=upcoming))


@schedules.command("pause")
def schedules_pause(schedule_id: str, url: UrlOpt = None) -> None:
    """Stop firing."""
    Api(url).call("POST", f"/schedules/{schedule_id}/pause")
    print(f"schedule {schedule_id} paused")


@schedules.command("resume")
def schedules_resume(schedule_id: str, url: UrlOpt = None) -> None:
    """Fire again from the next future slot."""
    made = Api(url).call("POST", f"/schedules/{schedule_id}/resume")[1]
    print(f"schedule {schedule_id} resumed, next {made['next_fire_at']}")


@schedules.command("rm")
def schedules_rm(schedule_id: str, url: UrlOpt = None) -> None:
    """Delete a schedule (its runs stay)."""
    Api(url).call("DELETE", f"/schedules/{schedule_id}")
    print(f"schedule {schedule_id} deleted")


@triggers.command("apply")
def triggers_apply(files: FilesOpt, url: UrlOpt = None) -> None:
    """Create each Kafka trigger in the files."""
    for made in _apply(files, "/triggers/kafka", url):
        print(f"trigger {made['id']}: {made['topic']} -> {made['workflow_id']} (group {made['group_id']})")


@triggers.command("ls")
def triggers_ls(output: OutputOpt = Output.table, url: UrlOpt = None) -> None:
    """Kafka triggers."""
    items = Api(url).get("/triggers/kafka")["items"]
    if output is Output.json:
        return render.emit_json(items)
    render.table(
        items,
        [
            ("id", lambda t: t["id"]),
            ("topic", lambda t: t["topic"]),
            ("workflow", lambda t: t["workflow_id"]),
            ("key", lambda t: t["key_path"] or "record key"),
            ("group", lambda t: t["group_id"]),
        ],
    )


@triggers.command("rm")
def triggers_rm(trigger_id: str, url: UrlOpt = None) -> None:
    """Delete a Kafka trigger (engines stop its consumer at their next poll)."""
    Api(url).call("DELETE", f"/triggers/kafka/{trigger_id}")
    print(f"trigger {trigger_id} deleted")
