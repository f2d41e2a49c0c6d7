"""`baton trace RUN_ID`: a run's span tree, read from OTLP JSON lines files (no collector, no backend).

The files are what the orchestrator and the example workers write under $BATON_TRACE_DIR, and what an
OpenTelemetry Collector's file exporter writes: one ExportTraceServiceRequest per line. Pure reading and
rendering here (unit-tested without services); the command wiring is at the end.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.text import Text
from rich.tree import Tree

DEFAULT_DIR = Path(".stack/traces")
_KINDS = {1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
# Shown after the name when present, in this order.
_KEY_ATTRS = ("baton.step", "baton.attempt", "baton.action", "baton.outcome", "baton.error_type")


@dataclass(frozen=True)
class SpanRecord:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    kind: int
    start_ns: int
    end_ns: int
    attrs: dict[str, Any]
    status_code: int = 0
    status_message: str = ""


@dataclass
class Loaded:
    spans: list[SpanRecord] = field(default_factory=list)
    files: int = 0
    skipped: int = 0  # lines (or spans inside a line) that are not OTLP JSON


class _Bad(ValueError):
    pass


def load(directory: Path) -> Loaded:
    """Every span of every *.jsonl file under `directory`; what does not parse is counted, never raised."""
    out = Loaded()
    for path in sorted(directory.rglob("*.jsonl")):
        out.files += 1
        try:
            lines = path.read_bytes().splitlines()
        except OSError:
            out.skipped += 1
            continue
        for line in lines:
            if line.strip():
                _load_line(line, out)
    return out


def _load_line(line: bytes, out: Loaded) -> None:
    try:
        doc = orjson.loads(line)
        resources = _list(_dict(doc).get("resourceSpans"))
    except (orjson.JSONDecodeError, _Bad):
        out.skipped += 1
        return
    for rs in resources:
        try:
            rs = _dict(rs)
            service = str(_attrs(_dict(rs.get("resource") or {}).get("attributes")).get("service.name", "?"))
            spans = [s for ss in _list(rs.get("scopeSpans")) for s in _list(_dict(ss).get("spans"))]
        except _Bad:
            out.skipped += 1
            continue
        for raw in spans:
            try:
                out.spans.append(_span(_dict(raw), service))
            except (_Bad, ValueError, TypeError):
                out.skipped += 1


def _span(raw: dict[str, Any], service: str) -> SpanRecord:
    trace_id, span_id = _hex_id(raw.get("traceId"), 32), _hex_id(raw.get("spanId"), 16)
    parent = raw.get("parentSpanId") or None
    status = _dict(raw.get("status") or {})
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=_hex_id(parent, 16) if parent else None,
        name=str(raw.get("name", "")),
        service=service,
        kind=int(raw.get("kind", 0)),
        start_ns=int(raw.get("startTimeUnixNano", 0)),
        end_ns=int(raw.get("endTimeUnixNano", 0)),
        attrs=_attrs(raw.get("attributes")),
        status_code=int(status.get("code", 0)),
        status_message=str(status.get("message", "")),
    )


def _hex_id(value: Any, size: int) -> str:
    if not isinstance(value, str) or len(value) != size:
        raise _Bad("not an OTLP JSON id")
    int(value, 16)  # ValueError when not hex
    return value.lower()


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad("not an object")
    return value


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Bad("not a list")
    return value


def _attrs(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in _list(items):
        item = _dict(item)
        out[str(item.get("key"))] = _value(item.get("value"))
    return out


def _value(v: Any) -> Any:
    if not isinstance(v, dict):
        return None
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        try:
            return int(v["intValue"])
        except (TypeError, ValueError):
            return v["intValue"]
    for key in ("boolValue", "doubleValue"):
        if key in v:
            return v[key]
    if "arrayValue" in v and isinstance(v["arrayValue"], dict):
        return [_value(x) for x in v["arrayValue"].get("values", []) or []]
    return None


def run_traces(spans: Iterable[SpanRecord], run_id: str) -> dict[str, list[SpanRecord]]:
    """The traces holding a span of `run_id` (by baton.run_id), each with all its spans, de-duplicated."""
    spans = list(spans)
    ids = {s.trace_id for s in spans if s.attrs.get("baton.run_id") == run_id}
    traces: dict[str, dict[str, SpanRecord]] = {}
    for s in spans:
        if s.trace_id in ids:
            traces.setdefault(s.trace_id, {}).setdefault(s.span_id, s)
    return {t: sorted(by_id.values(), key=lambda s: s.start_ns) for t, by_id in traces.items()}


def tree(trace_id: str, spans: list[SpanRecord]) -> Tree:
    """The span tree of one trace; spans whose parent is in no file are roots marked as such."""
    root = Tree(Text.assemble(("trace ", "bold"), (trace_id, "cyan"), f" · {len(spans)} spans"))
    known = {s.span_id for s in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for s in spans:
        parent = s.parent_id if s.parent_id in known else None
        children.setdefault(parent, []).append(s)

    def add(node: Tree, parent: str | None) -> None:
        for s in children.get(parent, []):
            add(node.add(label(s, orphan=parent is None and s.parent_id is not None)), s.span_id)

    add(root, None)
    return root


def label(s: SpanRecord, orphan: bool = False) -> Text:
    text = Text.assemble((s.name, "bold"), "  ", (s.service, "magenta"), "  ", (duration(s.end_ns - s.start_ns), "dim"))
    keys = [f"{k.removeprefix('baton.')}={s.attrs[k]}" for k in _KEY_ATTRS if k in s.attrs]
    if keys:
        text.append("  " + " ".join(keys), "green")
    if s.status_code == 2:
        text.append(f"  ERROR {s.status_message}".rstrip(), "red")
    elif s.status_code == 1:
        text.append("  OK", "green")
    if orphan:
        text.append("  (parent not exported)", "yellow")
    return text


def duration(ns: int) -> str:
    if ns < 0:
        return "?"
    if ns < 1_000_000:
        return f"{ns / 1000:.0f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.1f} ms"
    return f"{ns / 1e9:.2f} s"


def _default_dir() -> Path:
    env = os.environ.get("BATON_TRACE_DIR")
    return Path(env) if env else DEFAULT_DIR


def render(run_id: str, directory: Path, console: Console, errors: Console) -> int:
    """Print the run's trees; the exit code (0 found, 1 no spans of the run, 2 no such directory)."""
    if not directory.is_dir():
        errors.print(
            Text(f"error: {directory} is not a directory (set --dir or BATON_TRACE_DIR)", "red"), soft_wrap=True
        )
        return 2
    loaded = load(directory)
    traces = run_traces(loaded.spans, run_id)
    for line in _notes(loaded):
        errors.print(Text(line, "yellow"), soft_wrap=True)
    if not traces:
        errors.print(
            Text(
                f"no spans of run {run_id} in {loaded.files} *.jsonl file(s) under {directory} "
                f"({len(loaded.spans)} spans read); is tracing on (BATON_TRACE_DIR) and were the spans flushed?",
                "red",
            ),
            soft_wrap=True,
        )
        return 1
    for trace_id, spans in traces.items():
        console.print(tree(trace_id, spans))
    return 0


def _notes(loaded: Loaded) -> Iterator[str]:
    if loaded.skipped:
        yield f"skipped {loaded.skipped} malformed line(s) or span(s) (not OTLP JSON)"


def command(
    run_id: Annotated[str, typer.Argument(help="The run id (baton.run_id of its spans)")],
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where the *.jsonl span files are (default $BATON_TRACE_DIR, else .stack/traces)"),
    ] = None,
) -> None:
    """Print a run's span tree from OTLP JSON lines files (what BATON_TRACE_DIR makes Baton write)."""
    # Piped (a file, `make demo`'s log): wide, so a span's line is never wrapped; a terminal: its width.
    out = Console(highlight=False, width=None if sys.stdout.isatty() else 240)
    code = render(run_id, directory or _default_dir(), out, Console(stderr=True, highlight=False))
    if code:
        raise typer.Exit(code)
