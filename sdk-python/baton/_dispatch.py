"""Calling a handler and turning what happens into a result: shared by the worker and baton.testing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import inspect
import queue
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .config import validate_action
from .context import JobContext
from .errors import BatonError, ConfigError, PayloadTooLarge, RetryLater, SerializationError
from .protocol import encode_json

_MAX_STACKTRACE = 32 * 1024


@dataclass(frozen=True, slots=True)
class Handler:
    """A registered handler and how to call it, decided once at registration."""

    action: str
    fn: Callable[..., Any]
    takes_ctx: bool
    is_async: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a handler call ended: COMPLETED with encoded output, or FAILED with an error object."""

    status: Literal["COMPLETED", "FAILED"]
    output_json: str = "null"
    error: dict[str, Any] | None = None


def make_handler(action: str, fn: object) -> Handler:
    """Validate a registration and classify the handler by signature."""
    validate_action(action)
    if not callable(fn):
        raise ConfigError(f"handler for {action!r} must be callable")
    return Handler(action, fn, _takes_ctx(action, fn), _is_async(fn))


def _takes_ctx(action: str, fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False  # some builtins have no signature: call them with the payload only
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_POSITIONAL for p in params) or len(positional) >= 2:
        return True
    if not positional:
        raise ConfigError(f"handler for {action!r} must accept (payload) or (payload, ctx)")
    return False


def _is_async(fn: Callable[..., Any]) -> bool:
    # A callable object with an ``async def __call__`` is async too.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


class DaemonPool:
    """A minimal thread pool for sync handlers.

    Why not ``ThreadPoolExecutor``: its threads are joined at interpreter exit, so one handler stuck
    past the drain timeout would keep a stopped worker process alive forever. Daemon threads let the
    process exit; the stuck job stays uncommitted and is redelivered elsewhere.
    """

    def __init__(self, size: int, name: str = "baton-handler") -> None:
        self._size, self._name = size, name
        self._queue: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]] | None]
        self._queue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, call: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._idle:
                self._idle -= 1  # an idle thread will take it
            elif self._threads < self._size:
                self._threads += 1
                threading.Thread(target=self._serve, name=f"{self._name}-{self._threads}", daemon=True).start()
        self._queue.put((future, call))
        return future

    def _serve(self) -> None:
        while (item := self._queue.get()) is not None:
            future, call = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(call())
                except BaseException as exc:  # handed to the awaiting task, which decides
                    future.set_exception(exc)
            with self._lock:
                self._idle += 1

    def shutdown(self) -> None:
        """Let idle threads exit; busy ones finish their call and exit (they are daemons anyway)."""
        with self._lock:
            count = self._threads
        for _ in range(count):
            self._queue.put(None)


async def call_handler(handler: Handler, payload: Any, ctx: JobContext, pool: DaemonPool) -> Any:
    """Run the handler: async ones on the loop, sync ones in the pool; await an awaitable result."""
    args = (payload, ctx) if handler.takes_ctx else (payload,)
    if handler.is_async:
        value = await handler.fn(*args)
    else:
        value = await asyncio.wrap_future(pool.submit(functools.partial(handler.fn, *args)))
    if inspect.isawaitable(value):
        value = await value
    return value


async def run_handler(
    handler: Handler, payload: Any, ctx: JobContext, pool: DaemonPool, max_payload_bytes: int
) -> Outcome:
    """Call the handler and map its return value or exception to an :class:`Outcome`."""
    try:
        value = await call_handler(handler, payload, ctx, pool)
    except Exception as exc:
        return Outcome("FAILED", error=error_from_exception(exc))
    return encode_output(value, max_payload_bytes)


def encode_output(value: Any, max_payload_bytes: int) -> Outcome:
    """Encode a return value; a value that is not JSON or is too large fails for good, never truncated."""
    try:
        output_json = encode_json(value)
    except (TypeError, ValueError) as exc:
        problem = SerializationError(f"handler returned a value that is not JSON-serialisable: {exc}")
        return Outcome("FAILED", error=error_from_exception(problem, with_stack=False))
    size = len(output_json.encode())
    if size > max_payload_bytes:
        error = PayloadTooLarge(f"output is {size} bytes, over max_payload_bytes={max_payload_bytes}")
        return Outcome("FAILED", error=error_from_exception(error, with_stack=False))
    return Outcome("COMPLETED", output_json=output_json)


def error_from_exception(exc: BaseException, *, with_stack: bool = True) -> dict[str, Any]:
    """The result's ``error`` object for an exception (``protocol/README.md``, error table)."""
    error: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc),
        "stacktrace": _stacktrace(exc) if with_stack and not isinstance(exc, RetryLater) else None,
        "retryable": exc.retryable if isinstance(exc, BatonError) else True,
    }
    if isinstance(exc, RetryLater):
        error["retry_after_ms"] = exc.delay_ms
    return error


def _stacktrace(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    if len(text) > _MAX_STACKTRACE:
        # Keep the end: the innermost frames and the exception line say the most.
        cut = len(text) - _MAX_STACKTRACE
        text = f"[{cut} characters of stack trace omitted]\n{text[cut:]}"
    return text
