"""Fast paths for the two hottest requests, answered before FastAPI's middleware stack and router (R2.6).

`GET /workflow/run/{id}`: the run detail is built by PostgreSQL and sent as it is (store/queries.py), so
what a read cost was the stack around it: route matching, dependency solving, query validation, the
exception middlewares — about three times the statement itself. Its plain form (GET, no query string, no
body, one path segment after `/workflow/run/`) is answered with the route's exact behaviour: the same
bearer-key check and error bodies, the same 404, the same headers.

`POST /workflow/{id}/trigger`: FastAPI's routing and dependency solving were a quarter of a trigger's CPU.
A trigger whose request is plain and valid (no query string, `content-type: application/json`, a
content-length within the limit, a well-formed Idempotency-Key if any, a body of `input` and an optional
valid `priority` whose input may be stored) calls the same service function as the route. Anything else —
a body the route would refuse included — is handed to the route with the body already read replayed, so
every error is the route's own.

Anything else (`?wait=`, HEAD, a root path) goes to the normal routes, which stay the documented ones in /docs.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from .. import flow, service, tracing
from ..bus.values import InvalidValue, check_raw
from ..store import queries
from .deps import check_bearer

PREFIX = "/workflow/run/"
_JSON = (b"content-type", b"application/json")
# As the route's WorkflowId path parameter and IdemKey header declare them.
_TRIGGER = re.compile(r"/workflow/([A-Za-z0-9._-]{1,200})/trigger")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_BODY_KEYS = frozenset({"input", "priority"})


class BatonAPI(FastAPI):
    """FastAPI, with the plain run read and trigger answered before Starlette's middleware stack is entered.

    In front of the stack, not as one of its middlewares: the layers Starlette and FastAPI keep around
    every middleware (the server-error catcher, FastAPI's body-limit and telemetry wrappers) cost a read as
    much as the answer's own HTTP work did. `fast_read_keys` is None where the API is not served (role
    engine; both fast paths off), else the bearer keys (an empty list: no auth)."""

    fast_read_keys: list[str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_read_keys is not None and scope["type"] == "http":
            if (run_id := _plain_run_read(scope)) is not None:
                await self._read(scope, receive, send, run_id)
                return
            if (trigger := _plain_trigger(scope, self.state.settings.max_payload_bytes)) is not None:
                await self._trigger(scope, receive, send, *trigger)
                return
        await super().__call__(scope, receive, send)

    async def _read(self, scope: Scope, receive: Receive, send: Send, run_id: str) -> None:
        scope["app"] = self  # as Starlette sets it: the error handlers' Request reads it
        try:
            self._check_key(scope)
            run = await queries.run_detail(self.state.core.pool, run_id)
        except Exception as exc:
            await _error(self, scope, receive, send, exc)
            return
        await _answer(send, 200, run.body)

    async def _trigger(self, scope: Scope, receive: Receive, send: Send, workflow_id: str, key: str | None) -> None:
        body = await _read_body(receive)
        if body is None:  # the client went away mid-body
            return
        plain = _plain_trigger_body(body)
        if plain is None:  # the route answers it, errors included, from the body read here
            await super().__call__(scope, _replay(body, receive), send)
            return
        scope["app"] = self
        try:
            self._check_key(scope)
            parent = _header(scope, b"traceparent") if tracing.TRACER is not None else None
            run_input, priority = plain
            status, payload = await service.trigger(self.state.core, workflow_id, run_input, key, priority, parent)
        except Exception as exc:
            await _error(self, scope, receive, send, exc)
            return
        await _answer(send, status, orjson.dumps(payload))

    def _check_key(self, scope: Scope) -> None:
        if self.fast_read_keys:
            check_bearer(self.fast_read_keys, _header(scope, b"authorization") or "")


async def _answer(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-length", str(len(body)).encode()), _JSON]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return value.decode("latin-1")  # as Starlette's Headers: the first one counts
    return None


def _plain_trigger(scope: Scope, max_bytes: int) -> tuple[str, str | None] | None:
    """(workflow id, Idempotency-Key) of a trigger request the fast path may serve, else None."""
    if scope["method"] != "POST" or scope.get("query_string") or scope.get("root_path"):
        return None
    match = _TRIGGER.fullmatch(scope["path"])
    if match is None:
        return None
    seen: dict[bytes, bytes] = {}
    for name, value in scope["headers"]:
        if name in (b"content-type", b"content-length", b"idempotency-key", b"transfer-encoding"):
            if name in seen:  # a repeated header: the route's reading of it decides
                return None
            seen[name] = value
    length, key = seen.get(b"content-length", b""), seen.get(b"idempotency-key")
    if seen.get(b"content-type") != b"application/json" or b"transfer-encoding" in seen:
        return None
    if not length.isdigit() or int(length) > max_bytes:  # errors.BodyLimit's 413 is the route's
        return None
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key.decode("latin-1")):
        return None
    return match.group(1), None if key is None else key.decode("latin-1")


def _plain_trigger_body(body: bytes) -> tuple[Any, int | None] | None:
    """(input, priority) when the route's TriggerRequest would accept `body` as they are, else None."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or not doc.keys() <= _BODY_KEYS:
        return None
    priority = doc.get("priority")
    if priority is not None and (type(priority) is not int or not flow.MIN_PRIORITY <= priority <= flow.MAX_PRIORITY):
        return None
    try:
        check_raw(body, doc, "input")  # as the codec checks a result orjson decoded: a long literal is a float here
    except InvalidValue:
        return None
    return doc.get("input"), priority


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for the route: the body read already, then the connection's own messages."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


def _plain_run_read(scope: Scope) -> str | None:
    """The run id of a request this path serves exactly as the route would, else None."""
    if scope["method"] != "GET" or scope.get("query_string") or scope.get("root_path"):
        return None
    path: str = scope["path"]
    if not path.startswith(PREFIX) or path.startswith(PREFIX + "/"):
        return None
    # As errors.OptionalTrailingSlash: `/workflow/run/<id>/` is `/workflow/run/<id>`.
    run_id = path[len(PREFIX) :].rstrip("/")
    if not run_id or "/" in run_id:
        return None
    for name, _ in scope["headers"]:
        if name in (b"content-length", b"transfer-encoding"):  # a body: errors.BodyLimit's rules apply
            return None
    return run_id


async def _error(app: FastAPI, scope: Scope, receive: Receive, send: Send, exc: Exception) -> None:
    """The response the app's own exception handler (api/errors.py) gives for `exc`."""
    handlers: dict[Any, Any] = app.exception_handlers
    handler = next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
    if handler is None:  # errors.install registers one for Exception; without it, the server's 500
        raise exc
    response = await handler(Request(scope, receive), exc)
    await response(scope, receive, send)
