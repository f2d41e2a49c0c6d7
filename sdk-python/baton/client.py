"""Clients of the orchestrator's HTTP API: :class:`Client` (blocking) and :class:`AsyncClient` (asyncio).

Both have the same methods, built on httpx with one connection pool per client. Answers are plain JSON
values (dicts and lists, as the API's OpenAPI at ``/openapi.json`` describes them); failures raise the
``ApiError`` subclasses of :mod:`baton.errors`.

    with Client() as client:  # BATON_API_URL, BATON_API_KEY
        run = client.trigger("order", {"id": 42}, idempotency_key="order-42", wait=30)
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, TypeVar

import httpx

from . import __version__, _api
from ._api import ABSENT, Call, Json, Reply, Request
from .config import ClientOptions, client_options
from .errors import ApiConnectionError

__all__ = ["AsyncClient", "Client"]

T = TypeVar("T")


def _headers(options: ClientOptions) -> dict[str, str]:
    headers = {"Accept": "application/json", "User-Agent": f"baton-python/{__version__}"}
    if options.api_key:
        headers["Authorization"] = f"Bearer {options.api_key}"
    return headers


def _request_args(request: Request, timeout: float) -> dict[str, Any]:
    # A long poll is answered when its wait ends: the read timeout covers the wait on top.
    args = {"params": request.params, "headers": request.headers, "timeout": timeout + request.wait}
    return args if request.content is None else {**args, "content": request.content}


def _unreachable(options: ClientOptions, request: Request, exc: httpx.RequestError) -> ApiConnectionError:
    where = f"{request.method} {options.base_url}{request.path}"
    if isinstance(exc, httpx.TimeoutException):
        return ApiConnectionError(f"{where}: no answer within {options.timeout + request.wait:g} s")
    return ApiConnectionError(f"{where}: cannot reach the Baton API ({type(exc).__name__}: {exc})")


class Client:
    """A blocking client of the Baton HTTP API; close it (or use ``with``) to release its connections.

    ``base_url`` defaults to ``BATON_API_URL``, else ``http://127.0.0.1:8080``; ``api_key`` to
    ``BATON_API_KEY`` (sent as ``Authorization: Bearer <key>``); ``timeout`` is per request, in seconds.
    Invalid options raise ``ConfigError``.
    """

    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout: float = 30.0) -> None:
        self._options = client_options(base_url, api_key, timeout)
        self._http = httpx.Client(base_url=self._options.base_url, headers=_headers(self._options))

    @property
    def base_url(self) -> str:
        return self._options.base_url

    @property
    def timeout(self) -> float:
        return self._options.timeout

    def define(self, definition: Json) -> Json:
        """``POST /workflow``: store a definition (a new version when the id exists); the stored definition."""
        return self._run(_api.define(definition))

    def trigger(
        self, workflow_id: str, input: Any = None, idempotency_key: str | None = None, wait: float | None = None
    ) -> Json:
        """``POST /workflow/{id}/trigger``: start a run (a replay of ``idempotency_key`` returns the same run).

        Without ``wait``: ``run_id``, ``workflow_id``, ``workflow_version``, ``idempotency_key``,
        ``created_at``, ``links``. With ``wait`` (seconds): the run's detail once it is terminal, or as it
        stands when the wait ends (check ``status``).
        """
        return self._run(_api.trigger(workflow_id, input, idempotency_key, wait))

    def get_run(self, run_id: str) -> Json:
        """``GET /workflow/run/{id}``: ``status``, ``output``, ``version``, ``steps[].attempts[]``, ..."""
        return self._run(_api.get_run(run_id))

    def wait_for_run(self, run_id: str, timeout: float) -> Json:
        """The run once COMPLETED, FAILED or CANCELLED (long polls of at most 60 s each).

        Raises ``WaitTimeout`` (``.run``: the run as it stood) when ``timeout`` seconds pass first.
        """
        return self._run(_api.wait_for_run(run_id, timeout))

    def list_runs(self, workflow_id: str | None = None, status: str | None = None, limit: int = 50) -> list[Json]:
        """``GET /workflow/runs``: up to ``limit`` runs, newest first, following ``next_cursor``."""
        return self._run(_api.pages("/workflow/runs", limit, {"workflow_id": workflow_id, "status": status}))

    def cancel(self, run_id: str) -> Json:
        """``POST /workflow/run/{id}/cancel``: stop a running run (``Conflict`` when it is not running)."""
        return self._run(_api.run_action(run_id, "cancel"))

    def retry(self, run_id: str) -> Json:
        """``POST /workflow/run/{id}/retry``: re-open a FAILED run's dead-lettered steps."""
        return self._run(_api.run_action(run_id, "retry"))

    def list_dead_letters(self, status: str = "OPEN", workflow_id: str | None = None, limit: int = 50) -> list[Json]:
        """``GET /dlq``: up to ``limit`` dead letters (``OPEN``, ``REDRIVEN`` or ``DISCARDED``), newest first."""
        return self._run(_api.pages("/dlq", limit, {"status": status, "workflow_id": workflow_id}))

    def redrive(self, dead_letter_id: int | str, input: Any = ABSENT) -> Json:
        """``POST /dlq/{id}/redrive``: a fresh attempt budget for the step, with ``input`` when given
        (``None`` is a valid new input, JSON null; leaving it out keeps the step's input)."""
        return self._run(_api.redrive(dead_letter_id, input))

    def discard(self, dead_letter_id: int | str) -> None:
        """``DELETE /dlq/{id}``: close the dead letter without running the step again."""
        self._run(_api.discard(dead_letter_id))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, call: Call[T]) -> T:
        request = next(call)
        while True:
            try:
                request = call.send(self._send(request))
            except StopIteration as done:
                result: T = done.value
                return result

    def _send(self, request: Request) -> Reply:
        try:
            resp = self._http.request(request.method, request.path, **_request_args(request, self.timeout))
        except httpx.RequestError as exc:
            raise _unreachable(self._options, request, exc) from exc
        return _api.reply(resp.status_code, resp.reason_phrase, resp.content)


class AsyncClient:
    """:class:`Client` for asyncio: the same constructor and methods, awaited; ``async with`` closes it."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, timeout: float = 30.0) -> None:
        self._options = client_options(base_url, api_key, timeout)
        self._http = httpx.AsyncClient(base_url=self._options.base_url, headers=_headers(self._options))

    @property
    def base_url(self) -> str:
        return self._options.base_url

    @property
    def timeout(self) -> float:
        return self._options.timeout

    async def define(self, definition: Json) -> Json:
        return await self._run(_api.define(definition))

    async def trigger(
        self, workflow_id: str, input: Any = None, idempotency_key: str | None = None, wait: float | None = None
    ) -> Json:
        return await self._run(_api.trigger(workflow_id, input, idempotency_key, wait))

    async def get_run(self, run_id: str) -> Json:
        return await self._run(_api.get_run(run_id))

    async def wait_for_run(self, run_id: str, timeout: float) -> Json:
        return await self._run(_api.wait_for_run(run_id, timeout))

    async def list_runs(self, workflow_id: str | None = None, status: str | None = None, limit: int = 50) -> list[Json]:
        return await self._run(_api.pages("/workflow/runs", limit, {"workflow_id": workflow_id, "status": status}))

    async def cancel(self, run_id: str) -> Json:
        return await self._run(_api.run_action(run_id, "cancel"))

    async def retry(self, run_id: str) -> Json:
        return await self._run(_api.run_action(run_id, "retry"))

    async def list_dead_letters(
        self, status: str = "OPEN", workflow_id: str | None = None, limit: int = 50
    ) -> list[Json]:
        return await self._run(_api.pages("/dlq", limit, {"status": status, "workflow_id": workflow_id}))

    async def redrive(self, dead_letter_id: int | str, input: Any = ABSENT) -> Json:
        return await self._run(_api.redrive(dead_letter_id, input))

    async def discard(self, dead_letter_id: int | str) -> None:
        await self._run(_api.discard(dead_letter_id))

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def _run(self, call: Call[T]) -> T:
        request = next(call)
        while True:
            try:
                request = call.send(await self._send(request))
            except StopIteration as done:
                result: T = done.value
                return result

    async def _send(self, request: Request) -> Reply:
        try:
            resp = await self._http.request(request.method, request.path, **_request_args(request, self.timeout))
        except httpx.RequestError as exc:
            raise _unreachable(self._options, request, exc) from exc
        return _api.reply(resp.status_code, resp.reason_phrase, resp.content)
