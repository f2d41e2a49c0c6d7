"""baton.Client at the HTTP level, against a small local HTTP server that answers what a test sets: every
status mapped to its error class, bodies that are not the error envelope, what goes on the wire,
keep-alive, timeouts; and the client's options. The API itself is tested in test_client.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from baton import (
    ApiConnectionError,
    ApiError,
    AsyncClient,
    BadRequest,
    Client,
    ConfigError,
    Conflict,
    Forbidden,
    NotFound,
    RequestTooLarge,
    ServiceUnavailable,
    Unauthorized,
    ValidationFailed,
    __version__,
)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    port: int  # the client's side of the connection


@dataclass
class Answer:
    status: int = 200
    body: bytes = b'{"status": "COMPLETED"}'
    content_type: str = "application/json"


class Stub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer = Answer()
        self.seen: list[Seen] = []
        self.hold = threading.Event()  # set: answers wait for `release`
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that timed out closed its end: nothing to report


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real server
    server: Stub

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.seen.append(Seen(self.command, self.path, dict(self.headers), body, self.client_address[1]))
        if self.server.hold.is_set():
            self.server.release.wait(10)
        answer = self.server.answer
        self.send_response(answer.status)  # with the standard reason phrase
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    do_GET = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


def _envelope(code: str = "some_code", message: str = "what went wrong", details: Any = None) -> bytes:
    return json.dumps({"error": {"code": code, "message": message, "details": details}}).encode()


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequest),
        (401, Unauthorized),
        (403, Forbidden),
        (404, NotFound),
        (409, Conflict),
        (413, RequestTooLarge),
        (422, ValidationFailed),
        (503, ServiceUnavailable),
        (500, ApiError),
        (418, ApiError),
    ],
)
def test_each_status_maps_to_its_error_class_when_the_body_is_the_envelope(stub: Stub, status: int, cls: type) -> None:
    stub.answer = Answer(status, _envelope(details={"field": "x"}))
    with Client(stub.url) as client, pytest.raises(ApiError) as err:
        client.get_run("r1")
    assert type(err.value) is cls
    assert (err.value.status, err.value.error_code, err.value.message) == (status, "some_code", "what went wrong")
    assert err.value.details == {"field": "x"} and err.value.code == "BATON_API"
    assert str(err.value) == f"{status} some_code: what went wrong"


def test_the_http_reason_is_the_message_when_the_body_is_html_or_not_an_envelope(stub: Stub) -> None:
    stub.answer = Answer(502, b"<html><body><h1>502 Bad Gateway</h1>nginx</body></html>", "text/html")
    with Client(stub.url) as client:
        with pytest.raises(ApiError) as err:
            client.cancel("r1")
        assert (err.value.status, err.value.error_code, err.value.message) == (502, None, "Bad Gateway")
        assert "<" not in str(err.value)
        stub.answer = Answer(404, b'{"detail": "Not Found"}')
        with pytest.raises(NotFound) as missing:
            client.get_run("r1")
        assert missing.value.message == "Not Found"
        stub.answer = Answer(200, b"<html>a captive portal</html>", "text/html")
        with pytest.raises(ApiError) as odd:
            client.get_run("r1")
        assert odd.value.status == 200 and "not JSON" in odd.value.message and "<" not in str(odd.value)
        stub.answer = Answer(200, b'{"hello": "world"}')  # some other JSON service
        with pytest.raises(ApiError, match="the answer has no 'items' field: is the URL a Baton API"):
            client.list_dead_letters()


def test_requests_carry_the_token_json_bodies_and_the_wait_when_sent(stub: Stub) -> None:
    with Client(stub.url + "/", api_key="k1") as client:
        client.trigger("wf", None, idempotency_key="key-1", wait=2.5)
        client.redrive(7)
        client.redrive(8, None)
        stub.answer = Answer(200, b'{"items": [], "next_cursor": null}')
        client.list_runs(workflow_id="wf", status="FAILED", limit=3)
        stub.answer = Answer(204, b"")
        assert client.discard("9") is None
    trigger, keep, null, runs, discard = stub.seen
    assert (trigger.method, trigger.path, trigger.body) == ("POST", "/workflow/wf/trigger?wait=2.5", b'{"input":null}')
    assert trigger.headers["Idempotency-Key"] == "key-1" and trigger.headers["Content-Type"] == "application/json"
    assert trigger.headers["Authorization"] == "Bearer k1"
    assert trigger.headers["User-Agent"] == f"baton-python/{__version__}"
    assert (keep.path, keep.body) == ("/dlq/7/redrive", b"")  # no input: the step keeps its own
    assert (null.path, null.body) == ("/dlq/8/redrive", b'{"input":null}')
    assert runs.path == "/workflow/runs?workflow_id=wf&status=FAILED&limit=3"
    assert (discard.method, discard.path) == ("DELETE", "/dlq/9")


def test_ids_are_one_escaped_path_segment_when_they_hold_slashes_or_dots(stub: Stub) -> None:
    with Client(stub.url) as client:
        client.get_run("../dlq/1")
        client.get_run("..")
        client.cancel(".")
    assert [s.path for s in stub.seen] == [
        "/workflow/run/..%2Fdlq%2F1",
        "/workflow/run/%2E%2E",
        "/workflow/run/%2E/cancel",
    ]


def test_one_connection_is_reused_when_a_client_makes_many_requests(stub: Stub) -> None:
    with Client(stub.url) as client:
        for _ in range(5):
            client.get_run("r1")
    assert len({s.port for s in stub.seen}) == 1


async def test_one_connection_is_reused_when_an_async_client_makes_many_requests(stub: Stub) -> None:
    async with AsyncClient(stub.url, api_key="k2") as client:
        for _ in range(5):
            await client.get_run("r1")
    assert len({s.port for s in stub.seen}) == 1 and stub.seen[0].headers["Authorization"] == "Bearer k2"


def test_a_slow_answer_raises_api_connection_error_when_the_timeout_passes(stub: Stub) -> None:
    stub.hold.set()
    started = time.monotonic()
    with Client(stub.url, timeout=0.3) as client, pytest.raises(ApiConnectionError) as err:
        client.get_run("r1")
    assert time.monotonic() - started < 3
    assert "no answer within 0.3 s" in str(err.value) and err.value.status is None


def test_options_fall_back_to_the_environment_and_fail_with_config_error_when_invalid(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BATON_API_URL", raising=False)
    assert Client().base_url == "http://127.0.0.1:8080" and Client().timeout == 30.0
    monkeypatch.setenv("BATON_API_URL", "https://baton.example:8443/api/")
    assert Client().base_url == "https://baton.example:8443/api"
    assert Client("http://h:1").base_url == "http://h:1"  # explicit wins
    for kwargs, message in [
        ({"base_url": "ftp://h"}, "base_url must be an http:// or https:// URL"),
        ({"base_url": "h:8080"}, "base_url must be an http:// or https:// URL"),
        ({"api_key": "a\nb"}, "api_key must be printable ASCII without spaces"),
        ({"timeout": 0}, "timeout must be a positive number of seconds"),
        ({"timeout": float("nan")}, "timeout must be a positive number of seconds"),
    ]:
        with pytest.raises(ConfigError, match=f"^{message}$"):
            Client(**kwargs)


def test_bad_arguments_raise_value_error_before_any_request_when_given(stub: Stub) -> None:
    with Client(stub.url) as client:
        for call, message in [
            (lambda: client.get_run(""), "run_id must be a non-empty string"),
            (lambda: client.trigger("wf", wait=-1), "wait must be a non-negative number of seconds"),
            (lambda: client.wait_for_run("r", float("inf")), "timeout must be a non-negative number of seconds"),
            (lambda: client.list_runs(limit=0), "limit must be a positive integer"),
            (lambda: client.trigger("wf", float("nan")), "Out of range float values are not JSON compliant"),
        ]:
            with pytest.raises(ValueError, match=message):
                call()
    assert stub.seen == []
