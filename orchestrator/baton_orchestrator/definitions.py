"""Workflow definitions: parsing, validation and normalisation into an explicit DAG.

A normalised definition gives every step a name, an explicit `depends_on` list, a retry policy and a
timeout, so the engine schedules sequential workflows and DAGs the same way.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from . import conditions, flow
from .bus.values import check_value
from .engine.transitions import template_refs

NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")
# Documented caps (README, "Definitions"): a definition is checked in time linear in its size, and one
# definition never makes more topics than MAX_ACTIONS.
MAX_STEPS = 1000
MAX_DEPENDS_ON = 256
MAX_ACTIONS = 100
MAX_NON_RETRYABLE = 100
RESERVED_WORKFLOW_IDS = {"run", "runs", ".", ".."}  # "." and ".." do not survive URL normalisation
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class DefinitionError(ValueError):
    """A client mistake in a workflow definition; `details` says where."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.details = details or {}


def parse_duration(value: Any, field: str) -> float:
    """Seconds from a number (seconds) or a string like '250ms', '30s', '5m', '1h'."""
    if isinstance(value, bool):
        raise ValueError(f"{field} must be a number of seconds or a duration like '30s'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
    else:
        raise ValueError(f"{field} must be a number of seconds or a duration like '30s', got {value!r}")
    return seconds


def _timeout_seconds(v: Any) -> float | None:
    if v is None:
        return None
    seconds = parse_duration(v, "timeout")
    if not 0 < seconds <= 7 * 86_400:
        raise ValueError("timeout must be > 0 and at most 7 days")
    return seconds


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_retries: int = Field(3, ge=0, le=100)
    initial_interval: float = Field(1.0, ge=0, le=86_400)
    backoff_coefficient: float = Field(1.0, ge=1.0, le=100)
    max_interval: float = Field(3600.0, ge=0, le=86_400)
    jitter: float = Field(0.0, ge=0.0, le=1.0)
    non_retryable_errors: list[Annotated[str, Field(max_length=200)]] = Field(
        default_factory=list, max_length=MAX_NON_RETRYABLE
    )

    @field_validator("initial_interval", "max_interval", mode="before")
    @classmethod
    def _duration(cls, v: Any, info: Any) -> float:
        return parse_duration(v, info.field_name)

    @field_validator("jitter", mode="before")
    @classmethod
    def _jitter(cls, v: Any) -> Any:
        if isinstance(v, bool):
            return 0.2 if v else 0.0
        return v


class StepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str | None = None
    action: str
    step_index: int | None = Field(None, alias="stepIndex", ge=0)
    depends_on: list[str] | None = Field(None, max_length=MAX_DEPENDS_ON)
    retry: RetryPolicy | None = None
    timeout: float | None = None
    input: Any = None

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, v: Any) -> float | None:
        return _timeout_seconds(v)

    when: str | None = Field(None, max_length=conditions.MAX_LENGTH, description="run only if this holds")
    concurrency: flow.ConcurrencySpec | list[flow.ConcurrencySpec] | None = None

    @field_validator("input")
    @classmethod
    def _storable(cls, v: Any) -> Any:
        check_value(v, "the step's input template")
        return v


class WorkflowSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    description: str | None = Field(None, max_length=2000)
    steps: list[StepSpec] = Field(max_length=MAX_STEPS)
    retry: RetryPolicy | None = None
    timeout: float | None = None
    # Flow control (README, "Flow control"): run-level limits, per-action rate limits, a default priority.
    concurrency: flow.ConcurrencySpec | list[flow.ConcurrencySpec] | None = None
    rate_limits: dict[str, flow.RateLimitSpec] | None = Field(None, max_length=MAX_ACTIONS)
    priority: int | None = Field(None, ge=flow.MIN_PRIORITY, le=flow.MAX_PRIORITY, strict=True)

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, v: Any) -> float | None:
        return _timeout_seconds(v)

    @model_validator(mode="after")
    def _non_empty(self) -> WorkflowSpec:
        if not self.steps:
            raise ValueError("steps must contain at least one step")
        return self


def normalise(spec: WorkflowSpec, default_timeout: float) -> dict[str, Any]:
    """Validate names and the graph; return the stored definition (explicit names and edges)."""
    if not NAME_RE.match(spec.id) or spec.id in RESERVED_WORKFLOW_IDS:
        raise DefinitionError(
            f"invalid workflow id {spec.id!r}: use 1-200 of [A-Za-z0-9._-], not 'run', 'runs', '.' or '..'",
            {"field": "id"},
        )
    steps = sorted(enumerate(spec.steps), key=lambda p: (p[1].step_index is None, p[1].step_index or 0, p[0]))
    ordered = [s for _, s in steps]
    names = _step_names(ordered)
    actions = {s.action for s in ordered}
    if len(actions) > MAX_ACTIONS:
        raise DefinitionError(
            f"a workflow may use at most {MAX_ACTIONS} distinct actions (each is a Kafka topic); this one uses "
            f"{len(actions)}",
            {"field": "steps", "limit": MAX_ACTIONS},
        )
    explicit = any(s.depends_on is not None for s in ordered)
    out = []
    for i, (name, step) in enumerate(zip(names, ordered, strict=True)):
        if explicit:
            deps = list(dict.fromkeys(step.depends_on or []))
        else:
            deps = [names[i - 1]] if i else []
        policy = step.retry or spec.retry or RetryPolicy()
        out.append(
            {
                "name": name,
                "action": step.action,
                "depends_on": deps,
                "retry": policy.model_dump(),
                "timeout": step.timeout or spec.timeout or default_timeout,
                "input": step.input,
                **({"when": step.when} if step.when is not None else {}),
                **_step_limits(step, name),
            }
        )
    _check_graph(out)
    return {"id": spec.id, "description": spec.description, "steps": out, **_flow(spec, actions)}


def _limits_or_fail(limits: list[flow.ConcurrencySpec], where: str, step_keys: bool, field: str) -> list[Any]:
    problems = flow.check_limits(limits, where, step_keys)
    if problems:
        raise DefinitionError("; ".join(problems), {"field": field})
    return [c.model_dump(exclude_none=True) for c in limits]


def _step_limits(step: StepSpec, name: str) -> dict[str, Any]:
    limits = flow.as_list(step.concurrency)
    if not limits:
        return {}
    return {"concurrency": _limits_or_fail(limits, f"step {name!r}", True, "concurrency")}


def _flow(spec: WorkflowSpec, actions: set[str]) -> dict[str, Any]:
    """The workflow-level flow settings, stored only when given (a definition without them is unchanged)."""
    out: dict[str, Any] = {}
    limits = flow.as_list(spec.concurrency)
    if limits:
        out["concurrency"] = _limits_or_fail(limits, "workflow", False, "concurrency")
    if spec.rate_limits:
        unknown = sorted(set(spec.rate_limits) - actions)
        if unknown:
            raise DefinitionError(
                f"rate_limits names actions no step uses: {', '.join(map(repr, unknown))}",
                {"field": "rate_limits", "unknown": unknown},
            )
        out["rate_limits"] = {a: r.stored() for a, r in sorted(spec.rate_limits.items())}
    if spec.priority is not None:
        out["priority"] = spec.priority
    return out


def _step_names(steps: list[StepSpec]) -> list[str]:
    names: list[str] = []
    seen: set[str] = set()
    for i, step in enumerate(steps):
        if not NAME_RE.match(step.action) or step.action == "DLT":
            raise DefinitionError(
                f"invalid action name {step.action!r}: use 1-200 of [A-Za-z0-9._-], not 'DLT'",
                {"step": i, "field": "action"},
            )
        name = step.name if step.name is not None else step.action
        if not NAME_RE.match(name):
            raise DefinitionError(f"invalid step name {name!r}: use 1-200 of [A-Za-z0-9._-]", {"step": i})
        if name in seen:
            raise DefinitionError(
                f"duplicate step name {name!r}: give each step a distinct 'name'", {"step": i, "name": name}
            )
        seen.add(name)
        names.append(name)
    return names


def _check_graph(steps: list[dict[str, Any]]) -> None:
    known = {s["name"] for s in steps}
    for s in steps:
        for dep in s["depends_on"]:
            if dep not in known:
                raise DefinitionError(
                    f"step {s['name']!r} depends on unknown step {dep!r}", {"step": s["name"], "unknown": dep}
                )
            if dep == s["name"]:
                raise DefinitionError(f"step {dep!r} depends on itself", {"cycle": [dep, dep]})
    cycle = find_cycle({s["name"]: s["depends_on"] for s in steps})
    if cycle:
        raise DefinitionError(f"steps form a cycle (each depends on the next): {' -> '.join(cycle)}", {"cycle": cycle})
    _check_templates(steps)


def _references(step: dict[str, Any]) -> set[str]:
    refs = template_refs(step["input"]) | flow.key_refs(step.get("concurrency") or [])
    if step.get("when") is not None:
        try:
            refs |= conditions.parse(step["when"]).refs
        except conditions.ConditionError as exc:
            raise DefinitionError(f"step {step['name']!r}: invalid when: {exc}", {"step": step["name"]}) from None
    return refs


def _check_templates(steps: list[dict[str, Any]]) -> None:
    """Templates and conditions may read only the outputs of their step's ancestors: anything else would be
    null at run time."""
    refs = {s["name"]: _references(s) for s in steps}
    if not any(refs.values()):
        return
    # Ancestor sets as bit masks, built parents first: linear in the edges, whatever the graph's shape.
    bit = {s["name"]: 1 << i for i, s in enumerate(steps)}
    deps = {s["name"]: s["depends_on"] for s in steps}
    ancestors: dict[str, int] = {}
    for name in _topological(deps):
        mask = 0
        for dep in deps[name]:
            mask |= ancestors[dep] | bit[dep]
        ancestors[name] = mask
    for s in steps:
        for ref in sorted(refs[s["name"]]):
            if ref not in bit:
                raise DefinitionError(
                    f"step {s['name']!r} reads unknown step {ref!r} (input template, when or concurrency key)",
                    {"step": s["name"], "unknown": ref},
                )
            if not ancestors[s["name"]] & bit[ref]:
                raise DefinitionError(
                    f"step {s['name']!r} reads step {ref!r}, which is not one of its ancestors "
                    "(add it to depends_on, directly or through a parent)",
                    {"step": s["name"], "not_an_ancestor": ref},
                )


def _topological(deps: dict[str, list[str]]) -> list[str]:
    """Names ordered so that every step comes after its parents (the graph is known to be acyclic)."""
    children: dict[str, list[str]] = {n: [] for n in deps}
    waiting = {n: len(d) for n, d in deps.items()}
    for name, parents in deps.items():
        for parent in parents:
            children[parent].append(name)
    order = [n for n, count in waiting.items() if count == 0]
    for name in order:  # grows while iterated: a queue without pops
        for child in children[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                order.append(child)
    return order


def find_cycle(edges: dict[str, list[str]]) -> list[str] | None:
    """A cycle as a closed path of names (first == last), or None. Iterative DFS: no recursion limit."""
    state: dict[str, int] = {}
    for root in edges:
        if state.get(root):
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, idx = stack.pop()
            if idx == 0:
                state[node] = 1
                path.append(node)
            deps = edges.get(node, [])
            if idx < len(deps):
                stack.append((node, idx + 1))
                nxt = deps[idx]
                if state.get(nxt) == 1:
                    return [*path[path.index(nxt) :], nxt]
                if not state.get(nxt):
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    return None
