"""Flow control specs (concurrency keys, rate limits, priorities) and what a step needs to be dispatched.

Pure: definitions.py validates the specs with these models, and the engine's gate (engine/gate.py) asks
`step_need` / `run_need` what a ready step must get before its job is queued. A workflow that uses none
of this gets None from both, and its steps are queued exactly as before (no new table, no new lock).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from .engine.transitions import resolve_template

if TYPE_CHECKING:  # the model is built from definitions, which validate with this module's specs
    from .model import Limit, Workflow

MAX_LIMIT = 100_000  # most holders one concurrency key allows
MAX_LIMITS = 4  # most concurrency objects one workflow or step declares
MAX_RATE = 1_000_000  # most tokens per period, and the largest burst
DEFAULT_PRIORITY, MIN_PRIORITY, MAX_PRIORITY = 3, 1, 5
PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0}
_INPUT_KEY = re.compile(r"^\$\.input(\.[A-Za-z0-9_-]{1,200}){0,16}$")
_STEP_KEY = re.compile(r"^\$\.steps\.([A-Za-z0-9._-]{1,200})\.output(\.[A-Za-z0-9_-]{1,200}){0,16}$")


class ConcurrencySpec(BaseModel):
    """At most `limit` holders in flight; with `key`, per value of that path (one object without key: the
    workflow- or step-wide limit)."""

    model_config = ConfigDict(extra="forbid")

    key: str | None = Field(None, max_length=1000, description="$.input[.path] or $.steps.<ancestor>.output[.path]")
    limit: int = Field(ge=1, le=MAX_LIMIT, strict=True)


class RateLimitSpec(BaseModel):
    """A token bucket: `limit` tokens per `per`, holding at most `burst` (default: `limit`)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(ge=1, le=MAX_RATE, strict=True)
    per: Literal["second", "minute", "hour"] = "second"
    burst: int | None = Field(None, ge=1, le=MAX_RATE, strict=True)

    def stored(self) -> dict[str, Any]:
        return {"limit": self.limit, "per": self.per, "burst": self.burst or self.limit}


def as_list(value: ConcurrencySpec | list[ConcurrencySpec] | None) -> list[ConcurrencySpec]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def check_limits(limits: list[ConcurrencySpec], where: str, step_keys: bool) -> list[str]:
    """Problems with one workflow's or step's concurrency list (empty when it is fine)."""
    problems = []
    if len(limits) > MAX_LIMITS:
        problems.append(f"{where}: at most {MAX_LIMITS} concurrency limits")
    keys = [c.key for c in limits]
    if len(set(keys)) != len(keys):
        problems.append(f"{where}: each concurrency key (and the keyless limit) may appear once")
    for key in keys:
        if key is None or _INPUT_KEY.match(key) or (step_keys and _STEP_KEY.match(key)):
            continue
        allowed = "'$.input[.field...]'" + (" or '$.steps.<ancestor>.output[.field...]'" if step_keys else "")
        problems.append(f"{where}: concurrency key {key!r} must be a path like {allowed}")
    return problems


def key_refs(limits: list[dict[str, Any]]) -> set[str]:
    """Steps a step's concurrency keys read (they must be its ancestors)."""
    return {m.group(1) for c in limits if c.get("key") and (m := _STEP_KEY.match(c["key"]))}


@dataclass(frozen=True, slots=True)
class Slot:
    key: str  # the slot's identity: scope, workflow, step, limit index and the key's value
    limit: int
    shown: str | None  # the key's value as run detail shows it (None: the keyless limit)


@dataclass(frozen=True, slots=True)
class Need:
    """What a ready step must get before its job is queued: a slot of each concurrency limit, a token."""

    slots: tuple[Slot, ...]
    rate: str | None  # the action whose bucket gives a token (None: not rate-limited)
    priority: int


MAX_KEY_CHARS = 200  # a longer key value (any JSON: a path may lead to a big object) is kept as its digest


def _shown(value: Any) -> str | None:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= MAX_KEY_CHARS else text[: MAX_KEY_CHARS - 1] + "…"


def _encoded(value: Any) -> str:
    # Bounded: slot keys live in an index, whose entries have a size limit a big value would pass.
    text = orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    return text if len(text) <= MAX_KEY_CHARS else '"sha256:' + hashlib.sha256(text.encode()).hexdigest() + '"'


def _slots(prefix: str, limits: Sequence[Limit], run_input: Any, outputs: dict[str, Any]) -> tuple[Slot, ...]:
    out = []
    for i, c in enumerate(limits):
        value = resolve_template(c.key, run_input, outputs) if c.key else None
        shown = _shown(value) if c.key else None
        out.append(Slot(f"{prefix}|{i}|{_encoded(value)}", c.limit, shown))
    return tuple(out)


def run_slots(wf: Workflow, run_input: Any) -> tuple[Slot, ...]:
    """The run-level slots a run of `wf` must hold while it runs (empty: no run-level limit)."""
    return _slots(f"run|{wf.id}", wf.concurrency, run_input, {}) if wf.concurrency else ()


def step_need(wf: Workflow, name: str, run_input: Any, outputs: dict[str, Any], priority: int) -> Need | None:
    step = wf.by_name[name]
    rate = step.action if step.action in wf.rate_limits else None
    if not step.concurrency and rate is None:
        return None
    return Need(_slots(f"step|{wf.id}|{name}", step.concurrency, run_input, outputs), rate, priority)


def held_need(wf: Workflow, name: str, keys: list[str] | None, priority: int, holds_slots: bool) -> Need | None:
    """The need of a step whose slot keys were computed before (a retry, a redrive, a released step):
    `holds_slots` when the step still holds them (only a token is then needed)."""
    step = wf.by_name[name]
    rate = step.action if step.action in wf.rate_limits else None
    slots: tuple[Slot, ...] = ()
    if not holds_slots and keys:
        slots = tuple(_slot_from_key(k, step.concurrency) for k in keys)
    if not slots and rate is None:
        return None
    return Need(slots, rate, priority)


def _slot_from_key(key: str, limits: Sequence[Limit]) -> Slot:
    # key = step|<wf>|<step>|<index>|<json value>: the index names the limit in this version's list (a
    # newer version's list may differ: the slot keeps its identity, the limit is this version's).
    _, _, _, index, value = key.split("|", 4)
    i = int(index)
    limit = limits[i].limit if i < len(limits) else 1
    keyed = i < len(limits) and limits[i].key
    return Slot(key, limit, _shown(orjson.loads(value)) if keyed else None)


def priority_of(wf: Workflow, given: int | None) -> int:
    return given if given is not None else int(wf.priority or DEFAULT_PRIORITY)
