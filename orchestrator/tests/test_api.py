"""HTTP API: validation errors, idempotency, pagination, limits, health, metrics, auth."""

from __future__ import annotations

import asyncio
import base64
import time

import orjson
import pytest

from .conftest import eventually, make_settings

ONE_STEP = {"id": "one", "steps": [{"action": "t.one"}]}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"id": "w", "steps": []}, "at least one step"),
        ({"id": "w", "steps": [{"action": "a"}, {"action": "a"}]}, "duplicate step name 'a'"),
        ({"id": "w", "steps": [{"action": "a", "depends_on": ["zzz"]}]}, "unknown step 'zzz'"),
        (
            {
                "id": "w",
                "steps": [
                    {"name": "x", "action": "a", "depends_on": ["y"]},
                    {"name": "y", "action": "a", "depends_on": ["x"]},
                ],
            },
            "x -> y -> x",
        ),
        ({"id": "w", "steps": [{"action": "bad action!"}]}, "invalid action name"),
        ({"id": "w", "steps": [{"action": "DLT"}]}, "invalid action name"),
        ({"id": "w", "steps": [{"action": "a", "retry": {"max_retries": -1}}]}, "greater than or equal to 0"),
        ({"id": "w", "steps": [{"action": "a", "timeout": "soon"}]}, "duration like '30s'"),
        ({"id": "w", "steps": [{"action": "a", "timeout": 0}]}, "timeout must be > 0"),
        ({"id": "runs", "steps": [{"action": "a"}]}, "invalid workflow id"),
        ({"steps": [{"action": "a"}]}, "Field required"),
        ({"id": "w", "steps": [{"action": "a", "bogus": 1}]}, "Extra inputs"),
    ],
)
async def test_definition_is_rejected_with_422_and_a_clear_message_when_invalid(client, body, fragment):
    resp = await client.http.post("/workflow", json=body)
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert fragment in error["message"] + str(error["details"])


async def test_new_post_of_same_id_makes_a_new_version(client):
    first = await client.define(ONE_STEP)
    second = await client.define({**ONE_STEP, "description": "v2"})
    assert (first["version"], second["version"]) == (1, 2)
    latest = (await client.http.get("/workflow/one")).json()
    assert latest["version"] == 2 and latest["steps"][0]["retry"]["max_retries"] == 3
    assert (await client.http.get("/workflow/one?version=1")).json()["description"] is None


async def test_unknown_ids_give_404_json(client):
    for path in ("/workflow/nope", "/workflow/run/4e9c3c1a-0000-4000-8000-000000000000", "/workflow/run/not-a-uuid"):
        resp = await client.http.get(path)
        assert resp.status_code == 404 and resp.json()["error"]["code"].endswith("not_found"), path
    resp = await client.trigger("nope")
    assert resp.status_code == 404 and resp.json()["error"]["code"] == "workflow_not_found"
    assert (await client.http.post("/dlq/999/redrive")).status_code == 404
    assert (await client.http.delete("/dlq/999")).status_code == 404


async def test_bad_json_and_bad_trigger_body_are_client_errors(client):
    await client.define(ONE_STEP)
    resp = await client.http.post(
        "/workflow/one/trigger", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"
    resp = await client.http.post("/workflow/one/trigger", json={"input": 1, "extra": 2})
    assert resp.status_code == 422
    assert (await client.http.get("/workflow/runs?limit=0")).status_code == 422
    assert (await client.http.get("/workflow/runs?cursor=garbage")).status_code == 422


async def test_body_over_the_payload_limit_is_413(start_app, settings):
    small = settings.model_copy(update={"max_payload_bytes": 2048})
    client = await start_app(s=small)
    await client.define(ONE_STEP)
    resp = await client.trigger("one", "x" * 5000)
    assert resp.status_code == 413 and resp.json()["error"]["code"] == "payload_too_large"


async def test_fifty_concurrent_triggers_with_one_key_create_one_run_with_identical_responses(client):
    await client.define(ONE_STEP)
    responses = await asyncio.gather(*[client.trigger("one", {"n": 1}, key="order-42") for _ in range(50)])
    bodies = [r.json() for r in responses]
    assert sorted(r.status_code for r in responses) == [200] * 49 + [201]
    assert all(b == bodies[0] for b in bodies)
    runs = (await client.http.get("/workflow/runs?workflow_id=one")).json()["items"]
    assert len(runs) == 1 and runs[0]["run_id"] == bodies[0]["run_id"]


async def test_same_key_with_another_body_is_409(client):
    await client.define(ONE_STEP)
    assert (await client.trigger("one", 1, key="k")).status_code == 201
    resp = await client.trigger("one", 2, key="k")
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "idempotency_key_reused"


async def test_replay_returns_original_run_when_redis_was_flushed(client, settings):
    await client.define(ONE_STEP)
    first = await client.trigger("one", "x", key="flush-me")
    redis = client.app.state.core.redis
    keys = [k async for k in redis.scan_iter(match=f"{settings.redis_prefix}*")]
    await redis.delete(*keys)
    replay = await client.trigger("one", "x", key="flush-me")
    assert (first.status_code, replay.status_code) == (201, 200)
    assert replay.json() == first.json()


async def test_triggers_stay_idempotent_when_redis_is_down(start_app, settings):
    client = await start_app(s=settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"}))
    await client.define(ONE_STEP)
    first, second = await client.trigger("one", 1, key="k"), await client.trigger("one", 1, key="k")
    assert (first.status_code, second.status_code) == (201, 200) and first.json() == second.json()
    health = await client.http.get("/health")
    assert health.status_code == 200 and health.json()["status"] == "degraded"
    assert health.json()["checks"]["redis"]["status"] == "down"
    assert (await client.http.get("/workers")).status_code == 503


async def test_runs_list_pages_with_a_cursor(client):
    await client.define(ONE_STEP)
    ids = {(await client.trigger("one", i)).json()["run_id"] for i in range(5)}
    seen, cursor = [], None
    for _ in range(5):
        page = (
            await client.http.get("/workflow/runs", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        ).json()
        seen += [r["run_id"] for r in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert set(seen) == ids and len(seen) == 5


async def test_health_and_metrics_report_the_services(client):
    await client.define(ONE_STEP)
    await client.trigger("one", 1)
    health = (await client.http.get("/health")).json()
    assert health["status"] == "ok" and set(health["checks"]) == {"postgres", "kafka", "redis"}
    metrics = (await client.http.get("/metrics")).text
    assert "baton_runs_triggered_total 1.0" in metrics and 'baton_runs{status="RUNNING"} 1.0' in metrics
    assert "baton_outbox_backlog" in metrics and "baton_step_duration_seconds_bucket" in metrics


async def test_api_keys_require_a_bearer_token_except_for_health_and_metrics(start_app, settings):
    client = await start_app(s=settings.model_copy(update={"api_keys": "secret-1,secret-2"}))
    assert (await client.http.get("/workflow")).status_code == 401
    bad = await client.http.get("/workflow", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 403 and bad.json()["error"]["code"] == "forbidden"
    ok = await client.http.get("/workflow", headers={"Authorization": "Bearer secret-2"})
    assert ok.status_code == 200
    assert (await client.http.get("/health")).status_code == 200
    assert (await client.http.get("/metrics")).status_code == 200


async def test_startup_fails_with_a_clear_error_when_postgres_is_unreachable(services, unique):
    from baton_orchestrator.app import StartupError, create_app

    s = make_settings(
        services, unique, database_url="postgresql://postgres@127.0.0.1:1/baton", startup_timeout_seconds=1
    )
    app = create_app(s)
    with pytest.raises(StartupError, match="PostgreSQL"):
        async with app.router.lifespan_context(app):
            pass


async def test_workers_endpoint_lists_live_workers_and_drops_stopped_ones(client, settings):
    import orjson
    from aiokafka import AIOKafkaProducer

    beat = {
        "v": 1,
        "worker_id": "py-test-1",
        "language": "python",
        "sdk_version": "0.1.0",
        "actions": ["a"],
        "in_flight": 0,
        "status": "RUNNING",
        "sent_at": "2026-11-23T15:00:00.000Z",
    }
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(settings.workers_topic, orjson.dumps(beat), key=b"py-test-1")

        async def listed():
            items = (await client.http.get("/workers")).json()["items"]
            return items if items and items[0]["worker_id"] == "py-test-1" else None

        items = await eventually(listed, timeout=15)
        assert items[0]["actions"] == ["a"] and items[0]["last_seen"] > 0
        await producer.send_and_wait(settings.workers_topic, orjson.dumps({**beat, "status": "STOPPED"}))

        async def gone():
            return (await client.http.get("/workers")).json()["items"] == []

        await eventually(gone, timeout=15)
    finally:
        await producer.stop()


async def test_requests_get_503_json_when_postgres_goes_away(client, settings):
    from baton_orchestrator.core import api_pool
    from baton_orchestrator.engine.pg import PgPool

    await client.define(ONE_STEP)
    core = client.app.state.core
    live, live_pool = core.db, core.pool
    gone = settings.model_copy(update={"database_url": "postgresql://postgres@127.0.0.1:1/baton"})
    core.db, core.pool = api_pool(gone), PgPool(gone)  # the API's pool, and the triggers' connections
    try:
        for resp in (await client.trigger("one", 1), await client.http.get("/workflow/runs")):
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"]["code"] == "database_unavailable" and resp.headers["retry-after"] == "1"
    finally:
        await core.db.close()
        core.db, core.pool = live, live_pool


async def test_openapi_documents_the_error_responses(client):
    spec = (await client.http.get("/openapi.json")).json()
    trigger = spec["paths"]["/workflow/{workflow_id}/trigger"]["post"]["responses"]
    assert {"404", "409", "413", "422"} <= set(trigger)
    assert "ErrorBody" in spec["components"]["schemas"]


async def test_trigger_runs_the_latest_version_even_when_another_replica_defined_it(client):
    await client.define(ONE_STEP)
    assert (await client.trigger("one", 1)).json()["workflow_version"] == 1
    await client.define(ONE_STEP)
    # As if version 2 had been posted to another API replica: this one's hint still says 1.
    client.app.state.core.definitions.latest["one"] = 1
    resp = await client.trigger("one", 2)
    assert resp.status_code == 201 and resp.json()["workflow_version"] == 2, resp.text
    assert client.app.state.core.definitions.latest["one"] == 2


POISON_INPUTS = {
    "nul": b'{"input": "a\\u0000b"}',
    "nul_in_key": b'{"input": {"k\\u0000": 1}}',
    "lone_surrogate": b'{"input": "bad \\udcff"}',
    "deep": b'{"input": ' + b"[" * 200 + b"]" * 200 + b"}",
    "int_beyond_64_bits": b'{"input": 1180591620717411303424}',
}


@pytest.mark.parametrize("kind", sorted(POISON_INPUTS))
async def test_trigger_and_redrive_inputs_that_cannot_be_stored_are_422_when_posted(client, kind):
    await client.define({"id": "one", "steps": [{"action": "a"}]})
    headers = {"content-type": "application/json"}
    resp = await client.http.post("/workflow/one/trigger", content=POISON_INPUTS[kind], headers=headers)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "validation_error"
    assert "input" in resp.text and "Traceback" not in resp.text
    # Redrive validates before it looks the dead letter up: the same body is a 422 too.
    resp = await client.http.post("/dlq/1/redrive", content=POISON_INPUTS[kind], headers=headers)
    assert resp.status_code == 422, resp.text


@pytest.mark.parametrize(
    "parts",
    [["x\x00"], [1, 2], ["not-a-time", "00000000-0000-0000-0000-000000000000"], ["2030-01-01T00:00:00+00:00", "urn:x"]],
)
async def test_crafted_paging_cursors_are_422_when_they_are_not_ours(client, parts):
    cursor = base64.urlsafe_b64encode(orjson.dumps(parts)).decode().rstrip("=")
    for path in ("/workflow/runs", "/workflow", "/dlq"):
        resp = await client.http.get(f"{path}?cursor={cursor}")
        assert resp.status_code == 422, (path, resp.text)
        assert resp.json()["error"]["code"] == "invalid_cursor"


async def test_a_huge_definition_is_refused_fast_while_health_answers(client):
    body = {"id": "huge", "steps": [{"name": f"s{i}", "action": "a"} for i in range(20_000)]}
    t0 = time.monotonic()
    define, health = await asyncio.gather(client.http.post("/workflow", json=body), client.http.get("/health"))
    assert time.monotonic() - t0 < 3
    assert define.status_code == 422 and "1000" in define.text, define.text[:500]
    assert health.status_code == 200


@pytest.mark.parametrize(
    ("steps", "fragment"),
    [
        ([{"name": f"s{i}", "action": f"a{i}"} for i in range(101)], "at most 100 distinct actions"),
        ([{"name": "a", "action": "x"}, {"name": "b", "action": "x", "input": "$.steps.nope.output"}], "unknown step"),
        (
            [
                {"name": "a", "action": "x"},
                {"name": "b", "action": "x", "depends_on": ["a"]},
                {"name": "c", "action": "x", "depends_on": ["a"], "input": {"v": "$.steps.b.output.v"}},
            ],
            "not one of its ancestors",
        ),
        ([{"name": "a", "action": "x", "input": "a\x00b"}], "NUL"),
    ],
)
async def test_definition_limits_and_template_references_are_422_when_broken(client, steps, fragment):
    resp = await client.http.post("/workflow", json={"id": "limits", "steps": steps})
    assert resp.status_code == 422 and fragment in resp.text, resp.text[:500]


async def test_a_template_may_read_any_ancestor_when_it_is_reached_through_parents(client):
    steps = [
        {"name": "a", "action": "x"},
        {"name": "b", "action": "x", "depends_on": ["a"]},
        {"name": "c", "action": "x", "depends_on": ["b"], "input": {"first": "$.steps.a.output", "in": "$.input"}},
    ]
    resp = await client.http.post("/workflow", json={"id": "anc", "steps": steps})
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/workflow/runs?workflow_id=%00"),
        ("GET", "/workflow/%00"),
        ("POST", "/workflow/a%00b/trigger"),
        ("GET", "/dlq?workflow_id=%00"),
        ("GET", "/workflow/runs?workflow_id=" + "x" * 5000),
        ("POST", "/workflow/runs/cancel?workflow_id=%00"),
    ],
)
async def test_hostile_ids_in_paths_and_filters_are_422_when_sent(client, method, path):
    resp = await client.http.request(method, path, json={})
    assert resp.status_code == 422, (path, resp.status_code, resp.text[:200])
    assert resp.json()["error"]["code"] == "validation_error"


async def test_openapi_documents_the_response_shapes_when_read(client):
    spec = (await client.http.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    assert {"Run", "Step", "Attempt", "RunPage", "DeadLetterPage", "TriggerAnswer", "Workflow"} <= set(schemas)
    run_get = spec["paths"]["/workflow/run/{run_id}"]["get"]["responses"]["200"]
    assert run_get["content"]["application/json"]["schema"]["$ref"].endswith("/Run")
    trigger = spec["paths"]["/workflow/{workflow_id}/trigger"]["post"]["responses"]
    assert {"200", "201", "202"} <= set(trigger)
