"""Abuse: 1,000 concurrent triggers over 100 idempotency keys; a hanging handler (timeout -> retry ->
dead letter -> FAILED -> redrive); API security (bearer keys, size limits, strict validation, no traces)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict

import httpx

from .harness import Scenario, wait_until


def test_1000_concurrent_triggers_over_100_keys_make_exactly_100_runs(scenario: Scenario) -> None:
    url = scenario.start_orchestrator()
    scenario.define({"id": "storm", "steps": [{"name": "s", "action": "i.step"}]})
    scenario.start_worker("python", "worker", ["i.step"])

    async def storm() -> list[tuple[int, int, dict]]:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as http:

            async def one(i: int) -> tuple[int, int, dict]:
                k = i % 100
                resp = await http.post(
                    "/workflow/storm/trigger", json={"input": {"k": k}}, headers={"Idempotency-Key": f"key-{k}"}
                )
                return k, resp.status_code, resp.json()

            return await asyncio.gather(*(one(i) for i in range(1000)))

    t0 = time.monotonic()
    responses = asyncio.run(storm())
    storm_s = time.monotonic() - t0
    codes = Counter(code for _, code, _ in responses)
    assert set(codes) <= {200, 201}, codes
    assert codes[201] == 100 and codes[200] == 900, codes
    bodies: dict[int, list[dict]] = defaultdict(list)
    for k, _, body in responses:
        bodies[k].append(body)
    assert len(bodies) == 100
    for k, same_key in bodies.items():
        assert all(b == same_key[0] for b in same_key), f"key-{k}: inconsistent responses {same_key[:3]}"
        assert same_key[0]["idempotency_key"] == f"key-{k}"
    run_ids = [b[0]["run_id"] for b in bodies.values()]
    assert len(set(run_ids)) == 100
    (n_runs,) = scenario.sql("SELECT count(*) FROM runs")[0]
    assert n_runs == 100
    # The same key with another body is a conflict, never a second run.
    resp = httpx.post(
        f"{url}/workflow/storm/trigger",
        json={"input": {"k": "other"}},
        headers={"Idempotency-Key": "key-1"},
        timeout=10,
    )
    assert resp.status_code == 409 and resp.json()["error"]["code"], resp.text
    scenario.wait_terminal(run_ids, 60)
    counts = scenario.check(run_ids, ["s"])
    scenario.report(counts, triggers=1000, keys=100, created=codes[201], replayed=codes[200], storm_s=round(storm_s, 1))


def test_hanging_handler_times_out_retries_dead_letters_and_redrives(scenario: Scenario) -> None:
    url = scenario.start_orchestrator()
    scenario.define(
        {
            "id": "hang",
            "steps": [
                {"name": "first", "action": "h.ok"},
                {
                    "name": "stuck",
                    "action": "h.hang",
                    "timeout": "1.5s",
                    "retry": {"max_retries": 2, "initial_interval": "0.2s"},
                },
            ],
        }
    )
    scenario.start_worker("python", "hanger", ["h.ok", "h.hang"], LEDGER_HANG_ACTIONS="h.hang")
    run_ids = scenario.trigger_many("hang", range(3))
    t0 = time.monotonic()
    scenario.wait_terminal(run_ids, 60)
    to_failed = time.monotonic() - t0
    assert scenario.statuses(run_ids) == Counter({"FAILED": 3})
    attempts = scenario.sql(
        "SELECT step, status, error->>'type', count(*) FROM attempts GROUP BY 1, 2, 3 ORDER BY 1, 2"
    )
    assert ("stuck", "FAILED", "Timeout", 9) in [tuple(a) for a in attempts], attempts
    steps = dict(scenario.sql("SELECT status, count(*) FROM steps WHERE name = 'stuck' GROUP BY status"))
    assert steps == {"DEAD_LETTERED": 3}, steps
    dlq = httpx.get(f"{url}/dlq", timeout=10).json()
    items = dlq.get("items", dlq.get("dead_letters"))
    assert items is not None and len(items) == 3, dlq
    assert all(d["reason"] and d["step"] == "stuck" for d in items), items
    # The handler is fixed and deployed as a new consumer group (the hung member would otherwise hold its
    # partitions for the 10 s session timeout); it replays the topics from the start, so the old attempts
    # run again too and their late results must be no-ops.
    scenario.procs.kill("hanger")
    scenario.start_worker(
        "python", "fixed", ["h.ok", "h.hang"], BATON_WORKER_GROUP=scenario.env["BATON_WORKER_GROUP"] + "-fixed"
    )
    wait_until(lambda: scenario.ledger.count("done") > 3, 30, what="the fixed worker replays the topics")
    for d in items:
        resp = httpx.post(f"{url}/dlq/{d['id']}/redrive", json={}, timeout=10)
        assert resp.status_code == 200, resp.text
    t1 = time.monotonic()
    scenario.wait_terminal(run_ids, 60)
    counts = scenario.check(run_ids, ["first", "stuck"])
    left = httpx.get(f"{url}/dlq", timeout=10).json()
    assert not left.get("items", left.get("dead_letters")), left
    scenario.report(
        counts,
        timeouts=9,
        dead_letters=3,
        to_failed_s=round(to_failed, 1),
        redrive_to_completed_s=round(time.monotonic() - t1, 1),
    )


def test_api_security_auth_limits_validation_no_traces(scenario: Scenario) -> None:
    url = scenario.start_orchestrator(BATON_API_KEYS="k-one,k-two", BATON_MAX_PAYLOAD_BYTES="4096")
    auth = {"Authorization": "Bearer k-two"}
    seen = []

    def call(method: str, path: str, **kw) -> httpx.Response:
        resp = httpx.request(method, f"{url}{path}", timeout=10, **kw)
        seen.append(resp)
        return resp

    assert call("GET", "/health").status_code == 200
    assert call("GET", "/metrics").status_code == 200
    assert call("GET", "/workflow").status_code == 401
    assert call("GET", "/workflow", headers={"Authorization": "Bearer nope"}).status_code == 403
    assert call("GET", "/workflow", headers={"Authorization": "Basic k-one"}).status_code == 401
    assert call("GET", "/workflow", headers=auth).status_code == 200
    wf = {"id": "sec", "steps": [{"name": "s", "action": "sec.s"}]}
    assert call("POST", "/workflow", json=wf, headers=auth).status_code == 201
    # Size limit: declared and streamed bodies over the limit are 413 before they are parsed.
    big = {"input": "x" * 10_000}
    assert call("POST", "/workflow/sec/trigger", json=big, headers=auth).status_code == 413

    def chunks():
        for _ in range(10):
            yield b"x" * 1000

    assert (
        call(
            "POST", "/workflow/sec/trigger", content=chunks(), headers={**auth, "Content-Type": "application/json"}
        ).status_code
        == 413
    )
    # Strict validation.
    assert (
        call(
            "POST", "/workflow/sec/trigger", content=b"{not json", headers={**auth, "Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert call("POST", "/workflow/sec/trigger", json={"input": 1, "extra": 2}, headers=auth).status_code == 422
    assert (
        call(
            "POST", "/workflow/sec/trigger", json={"input": 1}, headers={**auth, "Idempotency-Key": "bad key"}
        ).status_code
        == 422
    )
    assert call("POST", "/workflow", json={"id": "bad id!", "steps": []}, headers=auth).status_code == 422
    assert call("POST", "/workflow", json={"id": "x", "steps": [{"action": "DLT"}]}, headers=auth).status_code == 422
    assert call("GET", "/workflow/run/not-a-uuid", headers=auth).status_code in (404, 422)
    assert call("GET", "/workflow/runs?limit=100000", headers=auth).status_code == 422
    assert call("GET", "/workflow/runs?cursor=%00garbage", headers=auth).status_code in (400, 422)
    assert call("POST", "/dlq/99999999999999999999999/redrive", headers=auth).status_code in (404, 422)
    assert call("DELETE", "/workflow/sec", headers=auth).status_code == 405
    for resp in seen:
        assert resp.status_code < 500, (resp.request.url, resp.status_code, resp.text)
        text = resp.text
        assert "Traceback" not in text and 'File "' not in text, text
        if resp.status_code >= 400:
            err = resp.json()["error"]
            assert err["code"] and err["message"], resp.text
    assert "Traceback" not in scenario.procs.log("orchestrator", 100_000), "unexpected server error logged"
    scenario.report({"requests": len(seen), "server_errors": 0})
