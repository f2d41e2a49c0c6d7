"""A fast path for the hottest read, `GET /workflow/run/{id}`, in front of FastAPI's router (R2.6).

The run detail is built by PostgreSQL and sent as it is (store/queries.py), so what a read cost was the
stack around it: route matching, dependency solving, query validation, the exception middlewares — about
three times the statement itself. `BatonAPI` answers the plain form of that request (GET, no
query string, no body, one path segment after `/workflow/run/`) with the route's exact behaviour: the same
bearer-key check and error bodies, the same 404, the same headers. Anything else (`?wait=`, HEAD, a body,
a root path) goes to the normal route, which stays the documented one in /docs.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from ..store import queries
from .deps import check_bearer

PREFIX = "/workflow/run/"
_JSON = (b"content-type", b"application/json")


class BatonAPI(FastAPI):
    """FastAPI, with the plain run read answered before Starlette's middleware stack is entered.

    In front of the stack, not as one of its middlewares: the layers Starlette and FastAPI keep around
    every middleware (the server-error catcher, FastAPI's body-limit and telemetry wrappers) cost a read as
    much as the answer's own HTTP work did. `fast_read_keys` is None where the API is not served (role
    engine), else the bearer keys (an empty list: no auth)."""

    fast_read_keys: list[str] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        run_id = _plain_run_read(scope) if self.fast_read_keys is not None else None
        if run_id is None:
            await super().__call__(scope, receive, send)
            return
        scope["app"] = self  # as Starlette sets it: the error handlers' Request reads it
        try:
            if self.fast_read_keys:
                check_bearer(self.fast_read_keys, _authorization(scope))
            run = await queries.run_detail(self.state.core.pool, run_id)
        except Exception as exc:
            await _error(self, scope, receive, send, exc)
            return
        headers = [(b"content-length", str(len(run.body)).encode()), _JSON]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": run.body})


def _authorization(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return value.decode("latin-1")  # as Starlette's Headers: the first one counts
    return ""


def _plain_run_read(scope: Scope) -> str | None:
    """The run id of a request this path serves exactly as the route would, else None."""
    if scope["type"] != "http" or scope["method"] != "GET" or scope.get("query_string") or scope.get("root_path"):
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
