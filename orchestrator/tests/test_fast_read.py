"""api/fast.py: `GET /workflow/run/{id}` served in front of the router answers exactly as the route does."""

from __future__ import annotations

from typing import Any

import pytest

from baton_orchestrator.api import fast
from baton_orchestrator.core import api_pool
from baton_orchestrator.engine.pg import PgPool

KEYS = "k-one,k-two"
GOOD = {"Authorization": "Bearer k-two"}


@pytest.fixture
async def pair(start_app: Any, settings: Any) -> tuple[Any, Any, str]:
    """Two API apps on one schema: with the fast path, and without it (the route alone); a run to read.
    Role "api": no engine, so the run stays PENDING and its detail does not change between reads."""
    s = settings.model_copy(update={"api_keys": KEYS})
    with_fast, plain = await start_app("api", s), await start_app("api", s)
    plain.app.fast_read_keys = None  # every request goes through the middleware stack to the route
    resp = await with_fast.http.post("/workflow", json={"id": "one", "steps": [{"action": "t.one"}]}, headers=GOOD)
    assert resp.status_code == 201, resp.text
    run = await with_fast.http.post("/workflow/one/trigger", json={"input": {"é": "x"}}, headers=GOOD)
    return with_fast, plain, run.json()["run_id"]


def _answer(resp: Any) -> tuple[int, dict[str, str], bytes]:
    return resp.status_code, dict(resp.headers), resp.content


RUN = "{run}"
CASES = [
    ("GET", f"/workflow/run/{RUN}", GOOD),
    ("GET", f"/workflow/run/{RUN}/", GOOD),
    ("GET", f"/workflow/run/{RUN}///", GOOD),
    ("GET", f"/workflow/run/{RUN}", {"Authorization": "bearer k-one"}),
    ("GET", f"/workflow/run/{RUN}", {}),
    ("GET", f"/workflow/run/{RUN}", {"Authorization": "Bearer nope"}),
    ("GET", f"/workflow/run/{RUN}", {"Authorization": "Bearer "}),
    ("GET", f"/workflow/run/{RUN}", {"Authorization": "Basic k-one"}),
    ("GET", f"/workflow/run/{RUN}", {"Authorization": "Bearer k-one k-two"}),
    ("GET", f"/workflow/run/{RUN}", {"Authorization": b"Bearer k-\xe9"}),
    ("GET", "/workflow/run/4e9c3c1a-0000-4000-8000-000000000000", GOOD),
    ("GET", "/workflow/run/{hex}", GOOD),
    ("GET", "/workflow/run/{{{hex}}}", GOOD),
    ("GET", "/workflow/run/not-a-uuid", GOOD),
    ("GET", "/workflow/run/a%00b", GOOD),
    ("GET", "/workflow/run/%C3%A9%F0%9F%92%A5", GOOD),
    ("GET", "/workflow/run/%ED%A0%80", GOOD),
    ("GET", "/workflow/run/" + "7" * 5000, GOOD),
    ("GET", "/workflow/run/", GOOD),
    ("GET", "/workflow/run//x", GOOD),
    ("GET", f"/workflow/run/{RUN}/cancel", GOOD),
    ("GET", f"/workflow/run/{RUN}?wait=0", GOOD),
    ("GET", f"/workflow/run/{RUN}?wait=-1", GOOD),
    ("GET", f"/workflow/run/{RUN}?unknown=1", GOOD),
    ("GET", f"/workflow/run/{RUN}?", GOOD),
    ("HEAD", f"/workflow/run/{RUN}", GOOD),
    ("POST", f"/workflow/run/{RUN}", GOOD),
    ("DELETE", f"/workflow/run/{RUN}", GOOD),
    ("OPTIONS", f"/workflow/run/{RUN}", GOOD),
]


@pytest.mark.parametrize(("method", "path", "headers"), CASES)
async def test_a_run_read_answers_as_the_route_does_when_sent(pair, method, path, headers):
    with_fast, plain, run_id = pair
    # {hex}: the run's id uppercase without dashes, a form the route canonicalises (and reads the run).
    path = path.replace(RUN, run_id).replace("{hex}", run_id.replace("-", "").upper())
    got = _answer(await with_fast.http.request(method, path, headers=headers))
    want = _answer(await plain.http.request(method, path, headers=headers))
    assert got == want, (method, path)
    assert got[0] < 500


async def test_a_read_with_a_body_is_left_to_the_route(pair):
    with_fast, plain, run_id = pair
    for c in (with_fast, plain):
        resp = await c.http.request("GET", f"/workflow/run/{run_id}", headers=GOOD, content=b"{}")
        assert resp.status_code == 200 and resp.json()["run_id"] == run_id


async def test_the_run_read_is_served_by_the_fast_path_only_in_its_plain_form(pair, monkeypatch):
    with_fast, _, run_id = pair
    served: list[str | None] = []
    classify = fast._plain_run_read

    def counting(scope: Any) -> str | None:
        served.append(run := classify(scope))
        return run

    monkeypatch.setattr(fast, "_plain_run_read", counting)
    other = "4e9c3c1a-0000-4000-8000-000000000000"
    for path in (f"/workflow/run/{run_id}", f"/workflow/run/{run_id}/", f"/workflow/run/{other}"):
        await with_fast.http.get(path, headers=GOOD)
    await with_fast.http.get(f"/workflow/run/{run_id}", headers={})
    assert served == [run_id, run_id, other, run_id]
    served.clear()
    await with_fast.http.get(f"/workflow/run/{run_id}?wait=0", headers=GOOD)
    await with_fast.http.head(f"/workflow/run/{run_id}", headers=GOOD)
    await with_fast.http.get(f"/workflow/run/{run_id}/cancel", headers=GOOD)
    await with_fast.http.get("/workflow/runs", headers=GOOD)
    assert served == [None, None, None, None]  # left to the router


async def test_a_fast_read_gets_503_json_when_postgres_goes_away(pair, settings):
    with_fast, _, run_id = pair
    core = with_fast.app.state.core
    live, live_pool = core.db, core.pool
    gone = settings.model_copy(update={"database_url": "postgresql://postgres@127.0.0.1:1/baton"})
    core.db, core.pool = api_pool(gone), PgPool(gone)
    try:
        resp = await with_fast.http.get(f"/workflow/run/{run_id}", headers=GOOD)
        assert resp.status_code == 503, resp.text
        assert resp.json()["error"]["code"] == "database_unavailable" and resp.headers["retry-after"] == "1"
    finally:
        await core.db.close()
        core.db, core.pool = live, live_pool


async def test_an_unexpected_error_in_a_fast_read_is_a_json_500_and_logged(pair, monkeypatch, caplog):
    with_fast, _, run_id = pair

    async def broken(pool: Any, rid: str) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(fast.queries, "run_detail", broken)
    resp = await with_fast.http.get(f"/workflow/run/{run_id}", headers=GOOD)
    assert resp.status_code == 500 and resp.json()["error"]["code"] == "internal_error"
    assert "boom" not in resp.text and "unhandled error on GET" in caplog.text


async def test_an_engine_process_has_no_run_reads(start_app, settings):
    engine = await start_app("engine")
    resp = await engine.http.get("/workflow/run/4e9c3c1a-0000-4000-8000-000000000000")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "not_found"
