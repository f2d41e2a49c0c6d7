"""The Baton HTTP API as I/O-free steps, shared by ``Client`` and ``AsyncClient`` (private).

Each operation is a generator that yields the requests it needs and is sent their decoded replies (the
shape of httpx's own ``Auth.auth_flow``), so paging, long polls and error mapping are written once and
the two clients only move bytes.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote

from .errors import (
    ApiError,
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    RequestTooLarge,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
)

T = TypeVar("T")
Json = dict[str, Any]

TERMINAL = frozenset(("COMPLETED", "FAILED", "CANCELLED"))
LONG_POLL_MAX = 60.0  # seconds per GET ?wait=: below the server's cap (300) and most proxies' idle timeouts
PAGE_SIZE = 500  # the API's largest page

_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: RequestTooLarge,
    422: ValidationFailed,
    503: ServiceUnavailable,
}
ABSENT: Any = object()  # redrive(): "no new input", which differs from input=None (JSON null)


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    params: dict[str, str | int | float] = field(default_factory=dict)
    content: bytes | None = None  # JSON, already encoded; None: no body
    headers: dict[str, str] = field(default_factory=dict)
    wait: float = 0.0  # server-side wait: the HTTP timeout is the client's timeout plus this


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: Any  # decoded JSON; None for an empty body (204)


Call = Generator[Request, Reply, T]


def json_request(method: str, path: str, body: Any, **fields: Any) -> Request:
    # allow_nan=False: NaN is not JSON, and the server would refuse the whole request with a 400.
    content = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    headers = {"Content-Type": "application/json", **fields.pop("headers", {})}
    return Request(method, path, content=content, headers=headers, **fields)


def reply(status: int, reason: str, content: bytes) -> Reply:
    """The decoded reply of a 2xx answer; any other status raises its ``ApiError`` subclass."""
    if not 200 <= status < 300:
        raise api_error(status, reason, content)
    try:
        return Reply(status, json.loads(content) if content else None)
    except ValueError:
        raise ApiError("the API answered with a body that is not JSON", status=status) from None


def api_error(status: int, reason: str, content: bytes) -> ApiError:
    """The typed error for an error answer, from its ``{"error": {...}}`` envelope when it has one."""
    try:
        envelope = json.loads(content).get("error") if content else None
    except (ValueError, AttributeError):
        envelope = None  # an HTML page from a proxy, say: its text is never used as a message
    envelope = envelope if isinstance(envelope, dict) else {}
    message, code = envelope.get("message"), envelope.get("code")
    if not isinstance(message, str) or not message:
        message = reason or f"HTTP {status}"
    code = code if isinstance(code, str) else None
    return _BY_STATUS.get(status, ApiError)(message, status=status, error_code=code, details=envelope.get("details"))


def expect(reply: Reply, key: str) -> Json:
    """The reply's body, which must be an object with ``key``: anything else did not come from the Baton API."""
    if not isinstance(reply.body, dict) or key not in reply.body:
        raise ApiError(f"the answer has no {key!r} field: is the URL a Baton API?", status=reply.status)
    return reply.body


def segment(name: str, value: str | int) -> str:
    """One path segment: escaped, so an id can never reach another route."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text:
        raise ValueError(f"{name} must be a non-empty string")
    if not text.strip("."):
        return "%2E" * len(text)  # a literal "." or ".." would be resolved away by URL normalisation
    return quote(text, safe="")


def seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise ValueError(f"{name} must be a non-negative number of seconds")
    return float(value)


def define(definition: Json) -> Call[Json]:
    stored: Json = (yield json_request("POST", "/workflow", definition)).body
    return stored


def trigger(workflow_id: str, input: Any, idempotency_key: str | None, wait: float | None) -> Call[Json]:
    path = f"/workflow/{segment('workflow_id', workflow_id)}/trigger"
    fields: dict[str, Any] = {"headers": {"Idempotency-Key": idempotency_key} if idempotency_key is not None else {}}
    if wait is not None:
        fields["wait"] = seconds("wait", wait)
        fields["params"] = {"wait": fields["wait"]}
    started: Json = (yield json_request("POST", path, {"input": input}, **fields)).body
    return started


def get_run(run_id: str) -> Call[Json]:
    run: Json = (yield Request("GET", f"/workflow/run/{segment('run_id', run_id)}")).body
    return run


def wait_for_run(run_id: str, timeout: float) -> Call[Json]:
    """Long polls of at most ``LONG_POLL_MAX`` s until the run is terminal; ``WaitTimeout`` at the deadline."""
    path = f"/workflow/run/{segment('run_id', run_id)}"
    timeout = seconds("timeout", timeout)
    deadline = time.monotonic() + timeout
    while True:
        # Rounded: a leftover like 1e-05 is sent as a plain decimal.
        wait = round(max(0.0, min(LONG_POLL_MAX, deadline - time.monotonic())), 3)
        run = expect((yield Request("GET", path, {"wait": wait}, wait=wait)), "status")
        if run["status"] in TERMINAL:
            return run
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"run {run_id} is still {run['status']} after {timeout:g} s", run)


def pages(path: str, limit: int, filters: dict[str, str | None]) -> Call[list[Json]]:
    """Up to ``limit`` items of a paged list, following ``next_cursor``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError("limit must be a positive integer")
    params: dict[str, str | int | float] = {k: v for k, v in filters.items() if v is not None}
    items: list[Json] = []
    cursor: str | None = None
    while len(items) < limit:
        query = {**params, "limit": min(PAGE_SIZE, limit - len(items))}
        if cursor:
            query["cursor"] = cursor
        page = expect((yield Request("GET", path, query)), "items")
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return items[:limit]


def run_action(run_id: str, action: str) -> Call[Json]:
    """``cancel`` or ``retry``."""
    answer: Json = (yield Request("POST", f"/workflow/run/{segment('run_id', run_id)}/{action}")).body
    return answer


def redrive(dead_letter_id: int | str, input: Any) -> Call[Json]:
    path = f"/dlq/{segment('dead_letter_id', dead_letter_id)}/redrive"
    # No body keeps the dead job's input; {"input": null} replaces it with null.
    request = Request("POST", path) if input is ABSENT else json_request("POST", path, {"input": input})
    answer: Json = (yield request).body
    return answer


def discard(dead_letter_id: int | str) -> Call[None]:
    yield Request("DELETE", f"/dlq/{segment('dead_letter_id', dead_letter_id)}")
