"""Terminal output: rich tables and a live run view in a terminal, plain lines and JSON everywhere else."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

console = Console()
errors = Console(stderr=True)
STATUS_STYLE = {"COMPLETED": "green", "FAILED": "red", "DEAD_LETTERED": "red", "CANCELLED": "yellow", "RUNNING": "cyan"}


def emit_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


def table(rows: list[dict[str, Any]], columns: list[tuple[str, Callable[[dict[str, Any]], Any]]]) -> None:
    grid = Table(show_edge=False, header_style="bold")
    for title, _ in columns:
        grid.add_column(title)
    for row in rows:
        grid.add_row(*(_cell(get(row)) for _, get in columns))
    console.print(grid)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    style = STATUS_STYLE.get(text)
    return f"[{style}]{text}[/{style}]" if style else text.replace("[", r"\[")


def short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def step_line(step: dict[str, Any]) -> dict[str, Any]:
    """What the live view and the plain lines show of a step: status, attempts, who ran it, elapsed."""
    last = step["attempts"][-1] if step["attempts"] else {}
    worker = last.get("worker") or {}
    start, end = _ts(last.get("started_at") or last.get("queued_at")), _ts(last.get("finished_at"))
    elapsed = ((end or datetime.now(UTC)) - start).total_seconds() if start else None
    status, waiting = step["status"], step.get("waiting")
    if waiting:  # flow control: why the step is held, e.g. "WAITING (concurrency c42)"
        status += f" ({waiting['reason']}{' ' + waiting['key'] if waiting.get('key') else ''})"
    return {
        "step": step["name"],
        "status": status,
        "attempts": len(step["attempts"]),
        "worker": f"{worker.get('language', '?')} {worker.get('id', '')}".strip() if worker else "-",
        "elapsed": f"{elapsed:.2f}s" if elapsed is not None else "-",
        "error": (step.get("error") or {}).get("type"),
    }


def run_table(run: dict[str, Any]) -> Table:
    grid = Table(title=f"run {run['run_id']}  {run['workflow_id']} v{run['workflow_version']}  [{run['status']}]")
    for name in ("step", "status", "attempts", "worker", "elapsed", "error"):
        grid.add_column(name)
    for step in run["steps"]:
        line = step_line(step)
        grid.add_row(*(_cell(line[k]) for k in ("step", "status", "attempts", "worker", "elapsed", "error")))
    return grid


class RunView:
    """A run's progress: redrawn in place in a terminal, one line per step change otherwise."""

    def __init__(self, live: Live | None) -> None:
        self.live = live
        self.seen: dict[str, tuple[str, int]] = {}

    def update(self, run: dict[str, Any]) -> None:
        if self.live is not None:
            self.live.update(run_table(run))
            return
        for step in run["steps"]:
            line = step_line(step)
            mark = (line["status"], line["attempts"])
            if self.seen.get(step["name"]) != mark:
                self.seen[step["name"]] = mark
                when = datetime.now(UTC).strftime("%H:%M:%S")
                print(
                    f"{when} {line['step']} {line['status']} attempt={line['attempts']} "
                    f"by={line['worker']} elapsed={line['elapsed']}",
                    flush=True,
                )


@contextmanager
def run_view() -> Iterator[RunView]:
    if console.is_terminal:
        with Live(console=console, refresh_per_second=8, transient=False) as live:
            yield RunView(live)
    else:
        yield RunView(None)
