"""api/fast.py: a plain, valid `POST /workflow/{id}/trigger` is answered in front of the router exactly as the
route answers it; every other trigger request reaches the route with its body intact."""

from __future__ import annotations

import re
from typing import Any

import orjson
import pytest

from baton_orchestrator.api import fast

KEYS = "k-one,k-two"
GOOD = {"Authorization": "Bearer k-two", "Content-Type": "application/json"}
NO_TYPE = {"Authorization": "Bearer k-two"}
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")
_HEX = re.compile(rb'"[0-9a-f]{16,32}"')  # job ids, the detail's version


@pytest.fixture
async def pair(start_app: Any, settings: Any) -> tuple[Any, Any]:
    """Two API apps on one schema: with the fast paths, and without them (every request to the routes)."""
    s = settings.model_copy(update={"api_keys": KEYS, "max_payload_bytes": 4096})
    with_fast, plain = await start_app("api", s), await start_app("api", s)
    plain.app.fast_read_keys = None
    resp = await with_fast.http.post("/workflow", json={"id": "one", "steps": [{"action": "t.one"}]}, headers=GOOD)
    assert resp.status_code == 201, resp.text
    return with_fast, plain


def _answer(resp: Any) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body, the new run's id and timestamps masked (each side starts its own run)."""
    body = _HEX.sub(b"<hex>", _TIME.sub(b"<time>", _UUID.sub(b"<uuid>", resp.content)))
    return resp.status_code, dict(resp.headers), body


def _deep(levels: int) -> bytes:
    return b'{"input": ' + b"[" * levels + b"]" * levels + b"}"


PATH = "/workflow/one/trigger"
CASES: list[tuple[str, dict[str, Any], bytes]] = [
    (PATH, GOOD, b'{"input": {"n": 1, "s": "\\u00e9"}}'),
    (PATH, GOOD, b'{"input": null}'),
    (PATH, GOOD, b"{}"),
    (PATH, GOOD, b'{"input": [1, 2.5, true, "x"], "priority": 5}'),
    (PATH, GOOD, b'{"priority": null}'),
    (PATH, GOOD, b'{"input": 1, "priority": 0}'),
    (PATH, GOOD, b'{"input": 1, "priority": 6}'),
    (PATH, GOOD, b'{"input": 1, "priority": true}'),
    (PATH, GOOD, b'{"input": 1, "priority": 3.0}'),
    (PATH, GOOD, b'{"input": 1, "priority": "3"}'),
    (PATH, GOOD, b'{"input": 1, "extra": 2}'),
    (PATH, GOOD, b'{"input": 1, "input": 2}'),
    (PATH, GOOD, b"{"),
    (PATH, GOOD, b""),
    (PATH, GOOD, b"null"),
    (PATH, GOOD, b"[1]"),
    (PATH, GOOD, b'"input"'),
    (PATH, GOOD, b'{"input": "a\\u0000b"}'),
    (PATH, GOOD, b'{"input": {"k\\u0000": 1}}'),
    (PATH, GOOD, b'{"input": "\\ud800"}'),
    (PATH, GOOD, b'{"input": "\xed\xa0\x80"}'),
    (PATH, GOOD, b'{"input": "\xff"}'),
    (PATH, GOOD, _deep(100)),
    (PATH, GOOD, _deep(200)),
    (PATH, GOOD, b'{"input": 99999999999999999999999}'),
    (PATH, GOOD, b'{"input": -9223372036854775808}'),
    (PATH, GOOD, b'{"input": NaN}'),
    (PATH, GOOD, b'{"input": 1e400}'),
    (PATH, GOOD, b'{"input": "' + b"x" * 5000 + b'"}'),
    (PATH, NO_TYPE, b'{"input": 1}'),
    (PATH, {**NO_TYPE, "Content-Type": "text/plain"}, b'{"input": 1}'),
    (PATH, {**NO_TYPE, "Content-Type": "application/json; charset=utf-8"}, b'{"input": 1}'),
    (PATH, {**NO_TYPE, "Content-Type": "Application/JSON"}, b'{"input": 1}'),
    (PATH, {**NO_TYPE, "Content-Type": "application/problem+json"}, b'{"input": 1}'),
    (PATH, {"Content-Type": "application/json"}, b'{"input": 1}'),
    (PATH, {**GOOD, "Authorization": "Bearer nope"}, b'{"input": 1}'),
    (PATH, {**GOOD, "Authorization": "Basic k-one"}, b'{"input": 1}'),
    (PATH, {"Content-Type": "application/json"}, b"{"),
    (PATH, {**GOOD, "Idempotency-Key": ""}, b'{"input": 1}'),
    (PATH, {**GOOD, "Idempotency-Key": "has space"}, b'{"input": 1}'),
    (PATH, {**GOOD, "Idempotency-Key": "k" * 256}, b'{"input": 1}'),
    (PATH, {**GOOD, "Idempotency-Key": "caf\u00e9".encode()}, b'{"input": 1}'),
    ("/workflow/nope/trigger", GOOD, b'{"input": 1}'),
    ("/workflow/a%00b/trigger", GOOD, b'{"input": 1}'),
    ("/workflow/" + "w" * 201 + "/trigger", GOOD, b'{"input": 1}'),
    ("/workflow/one/trigger/", GOOD, b'{"input": 1}'),
    ("/workflow/one/trigger?wait=0", GOOD, b'{"input": 1}'),
    ("/workflow/one/trigger?wait=-1", GOOD, b'{"input": 1}'),
    ("/workflow//trigger", GOOD, b'{"input": 1}'),
]


@pytest.mark.parametrize(("path", "headers", "content"), CASES)
async def test_a_trigger_answers_as_the_route_does(pair, path, headers, content):
    with_fast, plain = pair
    got = _answer(await with_fast.http.post(path, headers=headers, content=content))
    want = _answer(await plain.http.post(path, headers=headers, content=content))
    assert got == want, (path, headers, content[:80])
    assert got[0] < 500


async def test_an_oversize_body_is_the_routes_413(pair):
    with_fast, plain = pair
    content = b'{"input": "' + b"x" * 5000 + b'"}'
    for c in (with_fast, plain):
        resp = await c.http.post(PATH, headers=GOOD, content=content)
        assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large", resp.text


async def test_idempotent_replays_and_conflicts_answer_as_the_route_does(pair):
    with_fast, plain = pair
    headers = {**GOOD, "Idempotency-Key": "order-42"}
    first = await with_fast.http.post(PATH, headers=headers, content=b'{"input": {"n": 1}}')
    assert first.status_code == 201, first.text
    replays = [await c.http.post(PATH, headers=headers, content=b'{"input": {"n": 1}}') for c in (with_fast, plain)]
    assert [r.status_code for r in replays] == [200, 200]
    assert replays[0].content == replays[1].content and replays[0].json()["run_id"] == first.json()["run_id"]
    conflicts = [await c.http.post(PATH, headers=headers, content=b'{"input": {"n": 2}}') for c in (with_fast, plain)]
    assert [r.status_code for r in conflicts] == [409, 409]
    assert conflicts[0].content == conflicts[1].content


async def test_the_fast_path_serves_only_plain_valid_triggers(pair, monkeypatch):
    with_fast, _ = pair
    calls: list[str] = []
    trigger = fast.service.trigger

    async def counting(core: Any, workflow_id: str, *args: Any) -> Any:
        calls.append(workflow_id)
        return await trigger(core, workflow_id, *args)

    # Only the fast path's calls count: the route keeps its own reference to the service module.
    monkeypatch.setattr(fast, "service", type("S", (), {"trigger": staticmethod(counting)}))
    ok = await with_fast.http.post(PATH, headers=GOOD, content=b'{"input": 1, "priority": 2}')
    assert ok.status_code == 201 and calls == ["one"]
    for content in (b'{"input": 1, "extra": 1}', b"{", b'{"input": "a\\u0000"}'):
        assert (await with_fast.http.post(PATH, headers=GOOD, content=content)).status_code in (400, 422)
    assert (await with_fast.http.post(PATH + "?wait=0", headers=GOOD, content=b'{"input": 1}')).status_code in (
        201,
        202,
    )
    assert calls == ["one"]


async def test_a_fast_trigger_starts_a_run_the_read_finds_with_its_priority(pair):
    with_fast, plain = pair
    resp = await with_fast.http.post(PATH, headers=GOOD, content=b'{"input": {"x": [1, 2]}, "priority": 4}')
    assert resp.status_code == 201, resp.text
    run = (await plain.http.get(f"/workflow/run/{resp.json()['run_id']}", headers=GOOD)).json()
    assert run["input"] == {"x": [1, 2]} and run["priority"] == 4 and run["status"] in ("PENDING", "RUNNING")


async def test_a_body_in_several_chunks_is_read_whole_and_a_disconnect_ends_the_request():
    chunks = [
        {"type": "http.request", "body": b'{"inp', "more_body": True},
        {"type": "http.request", "body": b'ut": 1}', "more_body": False},
    ]
    assert await fast._read_body(_receiver(chunks)) == b'{"input": 1}'
    assert await fast._read_body(_receiver([chunks[0], {"type": "http.disconnect"}])) is None


async def test_the_route_receives_the_body_read_already_then_the_connections_messages():
    replay = fast._replay(b'{"input": 1}', _receiver([{"type": "http.disconnect"}]))
    assert await replay() == {"type": "http.request", "body": b'{"input": 1}', "more_body": False}
    assert await replay() == {"type": "http.disconnect"}


def _receiver(messages: list[dict[str, Any]]) -> Any:
    pending = list(reversed(messages))

    async def receive() -> dict[str, Any]:
        return pending.pop()

    return receive


def test_plain_body_rules_match_the_trigger_request_model():
    assert fast._plain_trigger_body(b'{"input": {"a": 1}, "priority": 1}') == ({"a": 1}, 1)
    assert fast._plain_trigger_body(orjson.dumps({})) == (None, None)
    for bad in (b'{"priority": false}', b'{"input": 1, "Input": 1}', b"1", b'{"input": "\\udfff"}'):
        assert fast._plain_trigger_body(bad) is None, bad
