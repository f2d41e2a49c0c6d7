"""The JSON side of the dashboard: counts, filters, bulk actions and backlog, against the real stack."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from ..conftest import RawWorker, eventually


class Refused(Exception):
    retryable = False


async def _run_ids(client: Any, workflow_id: str, n: int, key: str = "") -> list[str]:
    ids = []
    for i in range(n):
        resp = await client.trigger(workflow_id, {"i": i}, key=f"{key}{i}" if key else None)
        assert resp.status_code == 201, resp.text
        ids.append(resp.json()["run_id"])
    return ids


async def test_bulk_cancel_cancels_only_the_running_runs_the_filter_matches(client):
    for wf in ("held", "other"):
        await client.define({"id": wf, "steps": [{"action": "nobody.home"}]})
    held, (other,) = await _run_ids(client, "held", 3), await _run_ids(client, "other", 1)
    resp = await client.http.post("/workflow/runs/cancel", params={"workflow_id": "held"})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert (body["matched"], body["done"], sorted(body["ids"])) == (3, 3, sorted(held))
    assert [(await client.run(r))["status"] for r in held] == ["CANCELLED"] * 3
    assert (await client.run(other))["status"] == "RUNNING"
    again = (await client.http.post("/workflow/runs/cancel", params={"workflow_id": "held"})).json()
    assert (again["matched"], again["done"]) == (0, 0)
    counts = (await client.http.get("/workflow/runs/counts", params={"workflow_id": "held"})).json()
    assert counts == {"PENDING": 0, "RUNNING": 0, "COMPLETED": 0, "FAILED": 0, "CANCELLED": 3}


async def test_bulk_retry_reopens_every_failed_run_of_the_filter(client, raw_worker):
    await client.define({"id": "flaky", "steps": [{"action": "flaky.once"}]})
    seen: dict[str, int] = {}

    def once(job: dict[str, Any]) -> str:
        seen[job["run_id"]] = seen.get(job["run_id"], 0) + 1
        if seen[job["run_id"]] == 1:
            raise Refused("first time refused")
        return "second time lucky"

    async with raw_worker({"flaky.once": once}):
        runs = await _run_ids(client, "flaky", 2)
        for r in runs:
            assert (await client.wait_run(r))["status"] == "FAILED"
        body = (
            await client.http.post("/workflow/runs/retry", params={"status": "FAILED", "workflow_id": "flaky"})
        ).json()
        assert (body["matched"], body["done"]) == (2, 2)
        done = [await client.wait_run(r, ("COMPLETED",)) for r in runs]
    assert [d["output"] for d in done] == ["second time lucky"] * 2


async def test_dead_letters_are_discarded_and_redriven_by_filter(client, raw_worker):
    await client.define({"id": "dl", "steps": [{"name": "a", "action": "dl.a"}]})
    await client.define({"id": "dl2", "steps": [{"name": "b", "action": "dl.b"}]})
    fixed: set[str] = set()

    def refuse(job: dict[str, Any]) -> str:
        if job["run_id"] in fixed:
            return "ok now"
        raise Refused("no")

    async with raw_worker({"dl.a": refuse, "dl.b": refuse}):
        a_runs, b_runs = await _run_ids(client, "dl", 2), await _run_ids(client, "dl2", 2)
        for r in a_runs + b_runs:
            await client.wait_run(r)
        discarded = (await client.http.post("/dlq/discard", params={"action": "dl.a"})).json()
        assert (discarded["matched"], discarded["done"]) == (2, 2)
        listed = (await client.http.get("/dlq", params={"status": "DISCARDED"})).json()["items"]
        assert sorted(d["run_id"] for d in listed) == sorted(a_runs)
        fixed.update(b_runs)
        redriven = (
            await client.http.post("/dlq/redrive", params={"reason": "non_retryable", "workflow_id": "dl2"})
        ).json()
        assert (redriven["matched"], redriven["done"]) == (2, 2)
        assert [(await client.wait_run(r, ("COMPLETED",)))["output"] for r in b_runs] == ["ok now"] * 2
    assert [(await client.run(r))["status"] for r in a_runs] == ["FAILED"] * 2
    assert (await client.http.post("/dlq/redrive", params={"reason": "bogus"})).status_code == 422


async def test_run_filters_match_a_run_id_an_idempotency_key_and_a_time_range(client):
    await client.define({"id": "f", "steps": [{"action": "nobody.home"}]})
    ids = await _run_ids(client, "f", 3, key="order-")
    one = (await client.http.post("/workflow/runs/cancel", params={"q": "order-1"})).json()
    assert one["ids"] == [ids[1]]
    by_id = (await client.http.post("/workflow/runs/cancel", params={"q": ids[2]})).json()
    assert by_id["ids"] == [ids[2]]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = (await client.http.get("/workflow/runs/counts", params={"created_after": future})).json()
    assert sum(later.values()) == 0
    now = (await client.http.get("/workflow/runs/counts", params={"created_before": future, "workflow_id": "f"})).json()
    assert (now["RUNNING"], now["CANCELLED"]) == (1, 2)
    assert (await client.http.get("/workflow/runs/counts", params={"created_after": "yesterday"})).status_code == 422


async def test_backlog_counts_the_jobs_no_worker_has_taken(client, settings):
    await client.define({"id": "lonely", "steps": [{"action": "nobody.home"}]})
    await _run_ids(client, "lonely", 3)

    async def three_waiting() -> dict[str, Any] | None:
        items = (await client.http.get("/workers/backlog")).json()["items"]
        row = next(i for i in items if i["action"] == "nobody.home")
        return row if row["lag"] == 3 else None

    row = await eventually(three_waiting, timeout=20, every=0.5)
    assert row["workers"] == 0 and row["topic"] == settings.job_topic("nobody.home")


async def test_backlog_is_zero_once_a_worker_group_has_consumed(client, raw_worker, settings):
    await client.define({"id": "served", "steps": [{"action": "served.a"}]})
    async with raw_worker({"served.a": lambda job: "done"}, group="workflow-workers") as worker:
        runs = await _run_ids(client, "served", 2)
        for r in runs:
            assert (await client.wait_run(r))["status"] == "COMPLETED"
        assert isinstance(worker, RawWorker)

        async def drained() -> dict[str, Any] | None:
            items = (await client.http.get("/workers/backlog")).json()["items"]
            row = next(i for i in items if i["action"] == "served.a")
            return row if row["lag"] == 0 and row["groups"] else None

        row = await eventually(drained, timeout=20, every=0.5)
    assert row["groups"] == [{"group_id": "workflow-workers", "lag": 0}]


async def test_with_api_keys_the_dashboard_serves_data_only_with_a_valid_bearer_key(start_app, settings):
    client = await start_app(s=settings.model_copy(update={"api_keys": "k1"}))
    shell = await client.http.get("/ui/")
    assert shell.status_code == 200 and 'data-auth="required"' in shell.text and "<table" not in shell.text
    fragment = {"HX-Request": "true"}
    for path in ("/ui/", "/ui/counts", "/ui/workers/live", "/ui/events", "/ui/runs/confirm?action=cancel"):
        assert (await client.http.get(path, headers=fragment)).status_code == 401, path
        wrong = await client.http.get(path, headers={**fragment, "Authorization": "Bearer nope"})
        assert wrong.status_code == 403, path
    ok = await client.http.get("/ui/", headers={**fragment, "Authorization": "Bearer k1"})
    assert ok.status_code == 200 and 'id="runs"' in ok.text and ok.headers["cache-control"] == "no-store"
    assert (await client.http.get("/ui/static/app.js")).status_code == 200
    docs = await client.http.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text
    assert "default-src 'self'" in docs.headers["content-security-policy"]
    assert (await client.http.get("/docs-assets/redoc.standalone.js")).status_code == 200


async def test_filters_no_run_can_match_answer_with_nothing_not_a_server_error(client):
    await client.define({"id": "odd", "steps": [{"action": "nobody.home"}]})
    await _run_ids(client, "odd", 1)
    for params in ({"q": "a\x00b"}, {"workflow_id": "o\x00dd"}, {"workflow_id": "no such id!"}):
        resp = await client.http.post("/workflow/runs/cancel", params=params)
        if "workflow_id" in params:  # not an id at all: the JSON API says so
            assert resp.status_code == 422 and resp.json()["error"]["code"] == "validation_error", resp.text
        else:
            assert resp.status_code == 200 and resp.json()["matched"] == 0, (params, resp.text)
        page = await client.http.get("/ui/", params=params, headers={"HX-Request": "true"})
        assert page.status_code == 200 and "No runs match" in page.text, params
    for params in ({"action": "x\x00"}, {"run_id": "\x00"}):
        assert (await client.http.post("/dlq/discard", params=params)).json()["matched"] == 0, params
        assert (await client.http.get("/ui/dlq", params=params, headers={"HX-Request": "true"})).status_code == 200
    assert (await client.http.post("/dlq/discard", params={"workflow_id": "\x00"})).status_code == 422
    assert (
        await client.http.get("/ui/dlq", params={"workflow_id": "\x00"}, headers={"HX-Request": "true"})
    ).status_code == 200
    assert (await client.http.get("/ui/workflows/o%00dd", headers={"HX-Request": "true"})).status_code == 404
