"""Response shapes, for /docs and /openapi.json. The routes send JSON built elsewhere (the run detail by
PostgreSQL itself), so these models document the bodies; they are not a second serialisation pass."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RunStatus = Literal["PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED"]
StepStatus = Literal[
    "PENDING", "WAITING", "QUEUED", "RUNNING", "COMPLETED", "FAILED", "DEAD_LETTERED", "CANCELLED", "SKIPPED"
]


class _Doc(BaseModel):
    model_config = ConfigDict(extra="allow")


class ErrorInfo(_Doc):
    type: str | None = Field(None, description="the handler's error class, or Timeout, invalid_result, PayloadTooLarge")
    message: str | None = None
    stacktrace: str | None = None
    retryable: bool | None = None
    retry_after_ms: float | None = None


class Worker(_Doc):
    id: str
    language: str
    sdk_version: str


class Attempt(_Doc):
    attempt: int
    job_id: str
    status: Literal["QUEUED", "RUNNING", "COMPLETED", "FAILED"]
    worker: Worker | None = None
    queued_at: str
    started_at: str | None = None
    finished_at: str | None = None
    output: Any = None
    error: ErrorInfo | None = None


class Waiting(_Doc):
    reason: Literal["concurrency", "rate_limit"]
    scope: Literal["run", "step"] = Field(description="run: a run-level limit holds the run's first steps")
    key: str | None = Field(None, description="the concurrency key's value (null: the keyless limit), or the action")
    since: str
    priority: int = Field(description="the run's priority (1-5); held steps are released by effective priority")


class Step(_Doc):
    name: str
    action: str
    status: StepStatus
    attempt: int
    max_attempts: int
    input: Any = None
    output: Any = None
    error: ErrorInfo | None = None
    deadline: str | None = Field(None, description="when the open attempt times out")
    next_attempt_at: str | None = Field(None, description="when a FAILED step is retried")
    waiting: Waiting | None = Field(None, description="why a WAITING step is held (flow control)")
    attempts: list[Attempt]


class RunSummary(_Doc):
    run_id: str
    workflow_id: str
    workflow_version: int
    status: RunStatus
    idempotency_key: str | None = None
    created_at: str
    updated_at: str
    finished_at: str | None = None


class Run(RunSummary):
    input: Any = None
    output: Any = None
    error: Any = None
    priority: int = Field(3, description="1 (lowest) to 5: orders the run's held steps (flow control)")
    steps: list[Step]
    version: str = Field(description="changes whenever a step or attempt moves (for ?wait=&changed_from=)")


class TriggerAnswer(_Doc):
    """A trigger's answer: the run it started (without ?wait), or with ?wait= the run's detail (as
    GET /workflow/run/{id}: status, steps, output, version, ...)."""

    run_id: str
    workflow_id: str
    workflow_version: int
    idempotency_key: str | None = None
    created_at: str
    links: dict[str, str] | None = Field(None, description="without ?wait")
    status: RunStatus | None = Field(None, description="with ?wait")
    steps: list[Step] | None = Field(None, description="with ?wait")
    output: Any = None


class RunPage(_Doc):
    items: list[RunSummary]
    next_cursor: str | None = None


class Workflow(_Doc):
    id: str
    version: int
    description: str | None = None
    steps: list[dict[str, Any]] = Field(description="normalised steps: name, action, depends_on, retry, timeout")
    created_at: str


class WorkflowPage(_Doc):
    items: list[Workflow]
    next_cursor: str | None = None


class DeadLetter(_Doc):
    id: int
    run_id: str
    workflow_id: str | None = None
    step: str
    action: str
    job_id: str
    attempt: int
    reason: str = Field(description="retries_exhausted, non_retryable, timeout, payload_too_large")
    error: ErrorInfo | None = None
    input: Any = None
    status: Literal["OPEN", "REDRIVEN", "DISCARDED"]
    created_at: str
    resolved_at: str | None = None


class DeadLetterPage(_Doc):
    items: list[DeadLetter]
    next_cursor: str | None = None


class RunChange(_Doc):
    run_id: str
    status: RunStatus


class Redriven(_Doc):
    id: int
    run_id: str
    step: str
    status: Literal["REDRIVEN"]


class Presence(_Doc):
    worker_id: str
    language: str
    sdk_version: str
    actions: list[str]
    in_flight: int
    stuck_slots: int | None = Field(None, description="handlers past their deadline plus grace, abandoned")
    status: str
    last_seen: float


class Workers(_Doc):
    items: list[Presence]


def doc(model: type[BaseModel], status: int = 200, description: str = "") -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route whose body is built elsewhere: documented, not re-validated."""
    return {status: {"model": model, "description": description or model.__doc__ or model.__name__}}
