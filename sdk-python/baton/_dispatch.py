"""Calling a handler and turning what happens into a result: shared by the worker and baton.testing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import queue
import re
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from .config import validate_action
from .context import JobContext
from .errors import BatonError, ConfigError, PayloadTooLarge, RetryLater, SerializationError
from .protocol import encode_json

# Bounds of docs/sdk-contract.md ("Round 2 names and bounds"), shared by the three SDKs.
MAX_MESSAGE_BYTES = 4096
MAX_STACKTRACE_BYTES = 16_384
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Handler:
    """A registered handler and how to call it, decided once at registration."""

    action: str
    fn: Callable[..., Any]
    takes_ctx: bool
    is_async: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a handler call ended: COMPLETED with encoded output, or FAILED with an error object (and the
    exception it was made from, for the trace)."""

    status: Literal["COMPLETED", "FAILED"]
    output_json: str = "null"
    error: dict[str, Any] | None = None
    exception: BaseException | None = field(default=None, compare=False, repr=False)


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
    """Run the handler: async ones on the loop, sync ones in the pool; await an awaitable result.

    A sync handler runs in a copy of the caller's context variables (as ``asyncio.to_thread`` does),
    so the current trace span, among others, is the same in its thread."""
    args = (payload, ctx) if handler.takes_ctx else (payload,)
    if handler.is_async:
        value = await handler.fn(*args)
    else:
        call = functools.partial(contextvars.copy_context().run, handler.fn, *args)
        value = await asyncio.wrap_future(pool.submit(call))
    if inspect.isawaitable(value):
        value = await value
    return value


async def run_handler(
    handler: Handler, payload: Any, ctx: JobContext, pool: DaemonPool, max_payload_bytes: int
) -> Outcome:
    """Call the handler and map its return value or exception to an :class:`Outcome`; never raises,
    except when the task running it is cancelled (by the worker: a drain cut short, an abandoned job)."""
    try:
        value = await call_handler(handler, payload, ctx, pool)
    except asyncio.CancelledError as exc:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # our own cancellation, not the handler's doing
        return Outcome("FAILED", error=error_from_exception(exc), exception=exc)
    except BaseException as exc:  # SystemExit, KeyboardInterrupt too: they fail this job, not the worker
        return Outcome("FAILED", error=error_from_exception(exc), exception=exc)
    return encode_output(value, max_payload_bytes)


def encode_output(value: Any, max_payload_bytes: int) -> Outcome:
    """Encode a return value; a value that is not JSON or is too large fails for good, never truncated."""
    try:
        output_json = encode_json(value)
        size = len(output_json.encode())  # lone surrogates fail here (UnicodeEncodeError)
    except Exception as exc:  # TypeError, ValueError, RecursionError, or a failing __iter__/__str__ of a value
        problem = SerializationError(f"handler returned a value that is not JSON-serialisable: {_describe(exc)}")
        return Outcome("FAILED", error=error_from_exception(problem, with_stack=False), exception=problem)
    if size > max_payload_bytes:
        error = PayloadTooLarge(f"output is {size} bytes, over max_payload_bytes={max_payload_bytes}")
        return Outcome("FAILED", error=error_from_exception(error, with_stack=False), exception=error)
    return Outcome("COMPLETED", output_json=output_json)


def error_from_exception(exc: BaseException, *, with_stack: bool = True) -> dict[str, Any]:
    """The result's ``error`` object for an exception (``protocol/README.md``, error table), with the
    message and stack trace cut to their bounds and lone surrogates replaced, so it always encodes."""
    error: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": bounded_text(_describe(exc), MAX_MESSAGE_BYTES),
        "stacktrace": _stacktrace(exc) if with_stack and not isinstance(exc, RetryLater) else None,
        "retryable": exc.retryable if isinstance(exc, BatonError) else True,
    }
    if isinstance(exc, RetryLater):
        error["retry_after_ms"] = exc.delay_ms
    return error


def bounded_text(text: str, max_bytes: int) -> str:
    """``text`` with lone surrogates replaced by U+FFFD, cut to ``max_bytes`` UTF-8 bytes at a character
    boundary; a cut text ends in `` …[cut N bytes]`` (N = the bytes removed), inside the bound."""
    raw = _SURROGATE.sub("\ufffd", text).encode()
    if len(raw) <= max_bytes:
        return raw.decode()
    keep = max_bytes
    while True:  # the marker's length depends on N, which depends on how much is kept
        head = raw[:keep].decode(errors="ignore")  # drops a character split by the cut
        marker = f" …[cut {len(raw) - len(head.encode())} bytes]"
        if len(head.encode()) + len(marker.encode()) <= max_bytes or not head:
            return head + marker
        keep = min(keep - 1, max_bytes - len(marker.encode()))  # strictly shrinking: this ends


def _describe(exc: BaseException) -> str:
    # str() runs the exception's own code, which may raise anything (or return a non-str).
    try:
        return str(exc)
    except BaseException:
        return f"<unprintable {type(exc).__name__}>"


def _stacktrace(exc: BaseException) -> str:
    try:
        text = "".join(traceback.format_exception(exc))
    except BaseException:
        text = f"<stack trace of {type(exc).__name__} could not be formatted>"
    return bounded_text(text, MAX_STACKTRACE_BYTES)
