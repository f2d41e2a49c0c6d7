"""Operator commands over the HTTP API: workflows, trigger, runs, dead letters, workers."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from . import render
from .api import Api, ApiError

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")
EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_TIMEOUT = 0, 1, 2, 3


class Output(StrEnum):
    table = "table"
    json = "json"


UrlOpt = Annotated[str | None, typer.Option("--url", help="API base URL [env: BATON_API_URL]", show_default=False)]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table for people, json for scripts")]
workflows = typer.Typer(help="Define and inspect workflows.", no_args_is_help=True)
runs = typer.Typer(help="List, inspect, watch, cancel and retry runs.", no_args_is_help=True)
dlq = typer.Typer(help="Dead letters: list, redrive, discard.", no_args_is_help=True)


def parse_input(value: str | None) -> Any:
    """JSON text, or @file.json / @file.yaml."""
    if value is None:
        return None
    try:
        if value.startswith("@"):
            path = Path(value[1:])
            text = path.read_text()
            return yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
        return json.loads(value)
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(f"not JSON or a readable @file: {exc}") from None


def load_definitions(path: Path) -> list[dict[str, Any]]:
    """A YAML or JSON file with one definition, or several as YAML documents."""
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"{path}: {exc}") from None
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise typer.BadParameter(f"{path}: expected one workflow definition (a mapping) per YAML document")
    return docs


# ------------------------------------------------------------------------------------------ workflows
@workflows.command("apply")
def workflows_apply(
    files: Annotated[list[Path], typer.Option("--file", "-f", help="YAML or JSON definition (repeatable)")],
    url: UrlOpt = None,
) -> None:
    """Define (a new version of) each workflow in the files."""
    api = Api(url)
    for path in files:
        for definition in load_definitions(path):
            _, made = api.call("POST", "/workflow", definition)
            print(f"defined {made['id']} version {made['version']} ({len(made['steps'])} steps)")


@workflows.command("ls")
def workflows_ls(limit: int = 100, output: OutputOpt = Output.table, url: UrlOpt = None) -> None:
    """Workflows (latest version of each)."""
    items = Api(url).pages("/workflow", limit)
    if output is Output.json:
        return render.emit_json(items)
    render.table(
        items,
        [
            ("id", lambda w: w["id"]),
            ("version", lambda w: w["version"]),
            ("steps", lambda w: len(w["steps"])),
            ("actions", lambda w: ", ".join(sorted({s["action"] for s in w["steps"]}))),
        ],
    )


@workflows.command("show")
def workflows_show(
    workflow_id: str, version: int | None = None, output: OutputOpt = Output.table, url: UrlOpt = None
) -> None:
    """One definition, as YAML (or JSON)."""
    definition = Api(url).get(f"/workflow/{workflow_id}", version=version)
    if output is Output.json:
        return render.emit_json(definition)
    print(yaml.safe_dump(definition, sort_keys=False, allow_unicode=True), end="")


# ------------------------------------------------------------------------------------------ trigger / runs
def trigger(
    workflow_id: str,
    input: Annotated[str | None, typer.Option("--input", "-i", help="run input: JSON or @file.json")] = None,
    key: Annotated[str | None, typer.Option("--key", "-k", help="Idempotency-Key")] = None,
    wait: Annotated[
        float | None, typer.Option(help="watch the run until it ends, at most SECONDS (bare --wait: 300)")
    ] = None,
    output: OutputOpt = Output.table,
    url: UrlOpt = None,
) -> None:
    """Start a run; with --wait, follow it live and exit 0 completed, 1 failed or cancelled, 3 timed out."""
    api = Api(url)
    headers = {"Idempotency-Key": key} if key else {}
    status, body = api.call("POST", f"/workflow/{workflow_id}/trigger", {"input": parse_input(input)}, headers=headers)
    if output is Output.table:
        render.errors.print(f"run {body['run_id']} {'started' if status == 201 else 'replayed (idempotent)'}")
    if wait is None:
        if output is Output.json:
            render.emit_json(body)
        raise typer.Exit(EXIT_OK)
    raise typer.Exit(follow(api, body["run_id"], wait, output))


def follow(api: Api, run_id: str, timeout: float, output: Output) -> int:
    """Long-poll the run's changes (each answered by the commit that made it) until it ends or time is up."""
    deadline = time.monotonic() + timeout
    run = api.get(f"/workflow/run/{run_id}")
    with render.run_view() if output is Output.table else _quiet() as view:
        while True:
            if view:
                view.update(run)
            left = deadline - time.monotonic()
            if run["status"] in TERMINAL or left <= 0:
                break
            wait = min(left, 60.0)
            run = api.get(f"/workflow/run/{run_id}", wait=round(wait, 3), changed_from=run["version"])
    if output is Output.json:
        render.emit_json(run)
    elif run["status"] in TERMINAL:
        render.console.print(f"run {run['status']}: output = {render.short(run['output'], 2000)}")
    if run["status"] == "COMPLETED":
        return EXIT_OK
    if run["status"] in TERMINAL:
        return EXIT_FAILED
    render.errors.print(f"run still {run['status']} after {timeout:g}s")
    return EXIT_TIMEOUT


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


@runs.command("ls")
def runs_ls(
    workflow: Annotated[str | None, typer.Option("--workflow", "-w")] = None,
    status: Annotated[str | None, typer.Option("--status", "-s", help="RUNNING, COMPLETED, FAILED, ...")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n")] = 20,
    output: OutputOpt = Output.table,
    url: UrlOpt = None,
) -> None:
    """Runs, newest first."""
    items = Api(url).pages("/workflow/runs", limit, workflow_id=workflow, status=status)
    if output is Output.json:
        return render.emit_json(items)
    render.table(
        items,
        [
            ("run", lambda r: r["run_id"]),
            ("workflow", lambda r: r["workflow_id"]),
            ("status", lambda r: r["status"]),
            ("created", lambda r: r["created_at"]),
            ("key", lambda r: r["idempotency_key"]),
        ],
    )


@runs.command("show")
def runs_show(run_id: str, output: OutputOpt = Output.table, url: UrlOpt = None) -> None:
    """A run with every step: status, attempts, who ran it, how long, errors."""
    run = Api(url).get(f"/workflow/run/{run_id}")
    if output is Output.json:
        return render.emit_json(run)
    render.console.print(render.run_table(run))
    for step in run["steps"]:
        for attempt in step["attempts"]:
            if attempt.get("error"):
                err = attempt["error"]
                print(f"{step['name']} attempt {attempt['attempt']}: {err.get('type')}: {err.get('message')}")
    print(f"input = {render.short(run['input'], 500)}\noutput = {render.short(run['output'], 500)}")


@runs.command("watch")
def runs_watch(run_id: str, timeout: float = 300.0, output: OutputOpt = Output.table, url: UrlOpt = None) -> None:
    """Follow a run live until it ends (exit codes as `trigger --wait`)."""
    raise typer.Exit(follow(Api(url), run_id, timeout, output))


@runs.command("cancel")
def runs_cancel(run_id: str, url: UrlOpt = None) -> None:
    """Stop dispatching a running run; late results become no-ops."""
    run = Api(url).call("POST", f"/workflow/run/{run_id}/cancel")[1]
    print(f"run {run_id} {run.get('status', 'CANCELLED')}")


@runs.command("retry")
def runs_retry(run_id: str, url: UrlOpt = None) -> None:
    """Re-open a FAILED run's dead-lettered steps."""
    run = Api(url).call("POST", f"/workflow/run/{run_id}/retry")[1]
    print(f"run {run_id} {run.get('status', 'RUNNING')}")


# ------------------------------------------------------------------------------------------ dead letters
@dlq.command("ls")
def dlq_ls(
    workflow: Annotated[str | None, typer.Option("--workflow", "-w")] = None,
    status: str = "OPEN",
    limit: Annotated[int, typer.Option("--limit", "-n")] = 50,
    output: OutputOpt = Output.table,
    url: UrlOpt = None,
) -> None:
    """Dead letters with their reason and error."""
    items = Api(url).pages("/dlq", limit, status=status, workflow_id=workflow)
    if output is Output.json:
        return render.emit_json(items)
    render.table(
        items,
        [
            ("id", lambda d: d["id"]),
            ("workflow", lambda d: d.get("workflow_id")),
            ("run", lambda d: d["run_id"]),
            ("step", lambda d: d["step"]),
            ("reason", lambda d: d["reason"]),
            ("error", lambda d: f"{(d['error'] or {}).get('type')}: {(d['error'] or {}).get('message', '')}"[:80]),
        ],
    )


def _targets(api: Api, ids: list[int], all_: bool, workflow: str | None) -> list[int]:
    if all_ == bool(ids):
        raise typer.BadParameter("give dead letter ids, or --all (with --workflow W to narrow it)")
    if ids:
        return ids
    return [d["id"] for d in api.pages("/dlq", 100_000, status="OPEN", workflow_id=workflow)]


@dlq.command("redrive")
def dlq_redrive(
    ids: Annotated[list[int] | None, typer.Argument(help="dead letter ids")] = None,
    input: Annotated[str | None, typer.Option("--input", "-i", help="new input: JSON or @file.json")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every open dead letter (of --workflow)")] = False,
    workflow: Annotated[str | None, typer.Option("--workflow", "-w")] = None,
    url: UrlOpt = None,
) -> None:
    """Re-open the step with a fresh attempt budget (optionally with new input)."""
    api = Api(url)
    body = {"input": parse_input(input)} if input is not None else None
    for dead in _targets(api, ids or [], all_, workflow):
        api.call("POST", f"/dlq/{dead}/redrive", body)
        print(f"dead letter {dead} redriven")


@dlq.command("discard")
def dlq_discard(
    ids: Annotated[list[int] | None, typer.Argument(help="dead letter ids")] = None,
    all_: Annotated[bool, typer.Option("--all", help="every open dead letter (of --workflow)")] = False,
    workflow: Annotated[str | None, typer.Option("--workflow", "-w")] = None,
    url: UrlOpt = None,
) -> None:
    """Discard dead letters (their runs stay FAILED)."""
    api = Api(url)
    for dead in _targets(api, ids or [], all_, workflow):
        api.call("DELETE", f"/dlq/{dead}")
        print(f"dead letter {dead} discarded")


def workers(output: OutputOpt = Output.table, url: UrlOpt = None) -> None:
    """Workers seen in the last 15 s: language, actions, jobs in flight, stuck slots."""
    items = Api(url).get("/workers")["items"]
    if output is Output.json:
        return render.emit_json(items)
    render.table(
        items,
        [
            ("worker", lambda w: w["worker_id"]),
            ("language", lambda w: w.get("language")),
            ("sdk", lambda w: w.get("sdk_version")),
            ("in flight", lambda w: w.get("in_flight")),
            ("stuck", lambda w: w.get("stuck_slots", 0)),
            ("actions", lambda w: ", ".join(w.get("actions", []))),
        ],
    )


__all__ = ["ApiError", "dlq", "runs", "trigger", "workers", "workflows", "workflows_apply"]
