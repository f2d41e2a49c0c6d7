"""Pure workflow logic: what a result means for a step, which steps are ready, what a step gets as input.

No I/O here, so every rule is unit-tested without services.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the model parses conditions, which read values with `dig` from here
    from ..model import Retry, Step

OPEN_STEP = ("QUEUED", "RUNNING")
TERMINAL_STEP = ("COMPLETED", "DEAD_LETTERED", "CANCELLED", "SKIPPED")
TERMINAL_RUN = ("COMPLETED", "FAILED", "CANCELLED")
MAX_RETRY_DELAY_S = 30 * 86_400  # the longest RetryLater delay honoured (README: 30 days)


@dataclass(frozen=True)
class FailureDecision:
    """What to do with a failed attempt: retry after `delay` seconds, or give the step up."""

    retry: bool
    delay: float
    reason: str  # retries_exhausted | non_retryable | timeout (when given up)


def decide_failure(
    policy: Retry,
    attempt: int,
    max_attempts: int,
    error: dict[str, Any],
    rng: random.Random | None = None,
) -> FailureDecision:
    etype = str(error.get("type") or "")
    if not error.get("retryable", True) or etype in policy.non_retryable_errors:
        return FailureDecision(False, 0.0, "non_retryable")
    if attempt >= max_attempts:
        return FailureDecision(False, 0.0, "timeout" if etype == "Timeout" else "retries_exhausted")
    retry_after_ms = error.get("retry_after_ms")
    if isinstance(retry_after_ms, int | float) and not isinstance(retry_after_ms, bool) and retry_after_ms >= 0:
        # Capped: a worker's delay beyond any timestamp would fail the batch that applies it.
        return FailureDecision(True, min(retry_after_ms / 1000.0, MAX_RETRY_DELAY_S), "")
    return FailureDecision(True, retry_delay(policy, attempt, rng), "")


def retry_delay(policy: Retry, attempt: int, rng: random.Random | None = None) -> float:
    """Delay before attempt `attempt + 1`: initial * coefficient^(attempt-1), capped, then jittered."""
    delay = min(policy.initial_interval * policy.backoff_coefficient ** (attempt - 1), policy.max_interval)
    jitter = policy.jitter
    if jitter:
        delay *= 1 + (rng or random).uniform(-jitter, jitter)
    return max(delay, 0.0)


DONE_STEP = ("COMPLETED", "SKIPPED")


def run_outcome(status: dict[str, str]) -> str | None:
    """COMPLETED when every step completed or was skipped; None while anything is still to do."""
    if all(v in DONE_STEP for v in status.values()):
        return "COMPLETED"
    return None


def is_blocked(status: dict[str, str]) -> bool:
    """True when no step can make progress (none open, retrying or pending-ready) but the run is not done."""
    if all(v in DONE_STEP for v in status.values()):
        return False
    return not any(v in ("QUEUED", "RUNNING", "FAILED", "WAITING") for v in status.values())


def plan(
    steps: Sequence[Step],
    status: dict[str, str],
    run_input: Any,
    outputs: dict[str, Any],
) -> tuple[list[str], list[str]]:
    """(steps to queue, steps to skip), updating `status` with the skips.

    A PENDING step is decided once its parents are all COMPLETED or SKIPPED: it is SKIPPED when every
    parent was skipped (a skipped branch stays skipped) or when its `when` condition is false, and it runs
    otherwise; a fan-in with some parents skipped runs with null for their outputs. Skips can unlock
    further skips, so this repeats until nothing changes (definition order is a topological order).
    """
    ready: list[str] = []
    skipped: list[str] = []
    changed = True
    while changed:
        changed = False
        for s in steps:
            name, deps = s.name, s.depends_on
            if status.get(name) != "PENDING" or not all(status.get(d) in DONE_STEP for d in deps):
                continue
            all_skipped = bool(deps) and all(status.get(d) == "SKIPPED" for d in deps)
            cond = s.when
            if all_skipped or (cond is not None and not cond.evaluate(run_input, outputs)):
                status[name] = "SKIPPED"
                skipped.append(name)
                changed = True
            elif name not in ready:
                ready.append(name)
    return ready, skipped


def step_input(step: Step, run_input: Any, outputs: dict[str, Any]) -> Any:
    """Root step: the run input; one parent: its output; several: {parent: output}; `input`: a template."""
    template = step.input
    if template is not None:
        return resolve_template(template, run_input, outputs)
    deps = step.depends_on
    if not deps:
        return run_input
    if len(deps) == 1:
        return outputs.get(deps[0])
    return {d: outputs.get(d) for d in deps}


def resolve_template(template: Any, run_input: Any, outputs: dict[str, Any]) -> Any:
    """Replace "$.input[.path]" and "$.steps.<name>.output[.path]" strings; everything else is literal."""
    if isinstance(template, dict):
        return {k: resolve_template(v, run_input, outputs) for k, v in template.items()}
    if isinstance(template, list):
        return [resolve_template(v, run_input, outputs) for v in template]
    if not isinstance(template, str) or not template.startswith("$."):
        return template
    parts = template[2:].split(".")
    if parts[0] == "input":
        return dig(run_input, parts[1:])
    if parts[0] == "steps" and len(parts) >= 3 and parts[2] == "output":
        return dig(outputs.get(parts[1]), parts[3:])
    return template


def dig(value: Any, path: Sequence[str]) -> Any:
    for key in path:
        if isinstance(value, dict):
            value = value.get(key)
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return None
    return value


def template_refs(template: Any) -> set[str]:
    """Step names a template reads, so definitions can be checked for references to unknown steps."""
    if isinstance(template, dict):
        return set().union(*(template_refs(v) for v in template.values())) if template else set()
    if isinstance(template, list):
        return set().union(*(template_refs(v) for v in template)) if template else set()
    if isinstance(template, str) and template.startswith("$.steps."):
        parts = template.split(".")
        return {parts[2]} if len(parts) > 2 else set()
    return set()
