"""A workflow version as the engine reads it: typed, frozen, built once per stored definition.

The stored definition (definitions.normalise) stays the JSON document the API shows; the engine reads
this model instead, built from it once per (id, version) by `Definitions.get` (engine/apply.py). What
the hot path asks per step (children, parsed `when`, whether flow control is used, whether a completion
can queue its children without reading the run) is computed here once, not per result.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import conditions


@dataclass(frozen=True, slots=True)
class Retry:
    """A step's retry policy (definitions.RetryPolicy, as stored)."""

    max_retries: int = 3
    initial_interval: float = 1.0
    backoff_coefficient: float = 1.0
    max_interval: float = 3600.0
    jitter: float = 0.0
    non_retryable_errors: frozenset[str] = frozenset()

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Retry:
        default = cls()
        return cls(
            max_retries=int(d.get("max_retries", default.max_retries)),
            initial_interval=float(d.get("initial_interval", default.initial_interval)),
            backoff_coefficient=float(d.get("backoff_coefficient", default.backoff_coefficient)),
            max_interval=float(d.get("max_interval", default.max_interval)),
            jitter=float(d.get("jitter", default.jitter)),
            non_retryable_errors=frozenset(d.get("non_retryable_errors") or ()),
        )


@dataclass(frozen=True, slots=True)
class Limit:
    """One concurrency limit: at most `limit` holders, per value of `key` when given (flow.py)."""

    limit: int
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    position: int
    action: str
    depends_on: tuple[str, ...]
    retry: Retry
    timeout_s: float
    input: Any  # the input template, or None (the parents' outputs, or the run's input for a root)
    when: conditions.Condition | None
    concurrency: tuple[Limit, ...]
    children: tuple[str, ...]

    @property
    def max_attempts(self) -> int:
        """The attempts of a fresh budget: the first try and every retry the policy allows."""
        return self.retry.max_retries + 1

    @property
    def timeout_ms(self) -> int:
        return int(self.timeout_s * 1000)


@dataclass(frozen=True, slots=True)
class RateLimit:
    limit: int
    per: str
    burst: int


@dataclass(frozen=True, slots=True)
class Workflow:
    id: str
    version: int
    steps: tuple[Step, ...]  # definition order: a topological order
    by_name: Mapping[str, Step]
    sinks: tuple[str, ...]  # steps without children: their outputs are the run's output
    concurrency: tuple[Limit, ...]  # run-level limits
    rate_limits: Mapping[str, RateLimit]  # by action
    priority: int | None
    # Flow control in use (flow.py): without it, nothing on the dispatch path looks at the gate.
    uses_flow: bool
    # Steps whose completion queues their children with its own output, reading nothing else of the run:
    # every child has it as its only parent, no template, no condition, and no flow control is in use.
    simple: frozenset[str]

    @classmethod
    def from_definition(cls, d: Mapping[str, Any], version: int | None = None) -> Workflow:
        raw = d["steps"]
        children: dict[str, list[str]] = {s["name"]: [] for s in raw}
        for s in raw:  # linear in the edges: a definition may have a thousand steps
            for parent in s["depends_on"]:
                children[parent].append(s["name"])
        steps = tuple(_step(i, s, tuple(children[s["name"]])) for i, s in enumerate(raw))
        concurrency = _limits(d.get("concurrency"))
        rates = {
            a: RateLimit(int(r["limit"]), r["per"], int(r["burst"])) for a, r in (d.get("rate_limits") or {}).items()
        }
        uses_flow = bool(concurrency or rates or any(s.concurrency for s in steps))
        by_name = {s.name: s for s in steps}
        return cls(
            id=d["id"],
            version=int(version if version is not None else d.get("version", 0)),
            steps=steps,
            by_name=by_name,
            sinks=tuple(s.name for s in steps if not s.children),
            concurrency=concurrency,
            rate_limits=rates,
            priority=d.get("priority"),
            uses_flow=uses_flow,
            simple=frozenset() if uses_flow else frozenset(s.name for s in steps if _simple(s, by_name)),
        )

    def run_output(self, outputs: Mapping[str, Any]) -> Any:
        """A run's output is its sink steps' output: one sink -> that output, several -> {name: output}
        (a skipped sink's is null)."""
        sinks = self.sinks
        return outputs.get(sinks[0]) if len(sinks) == 1 else {n: outputs.get(n) for n in sinks}


def _step(position: int, s: Mapping[str, Any], children: tuple[str, ...]) -> Step:
    when = s.get("when")
    return Step(
        name=s["name"],
        position=position,
        action=s["action"],
        depends_on=tuple(s["depends_on"]),
        retry=Retry.from_dict(s.get("retry") or {}),
        timeout_s=float(s["timeout"]),
        input=s.get("input"),
        when=conditions.parse(when) if when else None,
        concurrency=_limits(s.get("concurrency")),
        children=children,
    )


def _limits(stored: list[Mapping[str, Any]] | None) -> tuple[Limit, ...]:
    return tuple(Limit(int(c["limit"]), c.get("key")) for c in stored or ())


def _simple(step: Step, by_name: Mapping[str, Step]) -> bool:
    return bool(step.children) and all(
        by_name[c].depends_on == (step.name,) and by_name[c].input is None and by_name[c].when is None
        for c in step.children
    )
