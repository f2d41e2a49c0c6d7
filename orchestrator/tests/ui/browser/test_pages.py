"""The dashboard in a real browser against the real stack: what an operator does when something is wrong."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, expect

from .conftest import Stack, shot


def _wf(stack: Stack, name: str, steps: list[dict[str, object]], **extra: object) -> str:
    workflow_id = f"{name}-{uuid.uuid4().hex[:6]}"
    stack.define({"id": workflow_id, "steps": steps, **extra})
    return workflow_id


def test_trigger_form_opens_the_run_and_it_completes_live_when_workers_finish(page: Page, stack: Stack) -> None:
    wf = _wf(
        stack,
        "ui-fanout",
        [
            {"name": "start", "action": "ui.echo"},
            {"name": "left", "action": "ui.echo", "depends_on": ["start"]},
            {"name": "right", "action": "ui.echo", "depends_on": ["start"]},
            {"name": "join", "action": "ui.echo", "depends_on": ["left", "right"]},
        ],
        description="fan-out and fan-in on the in-process Python worker",
    )
    page.goto(f"{stack.url}/ui/workflows/{wf}")
    expect(page.locator("svg.dag .node")).to_have_count(4)
    expect(page.locator("#yaml")).to_contain_text("depends_on")
    page.evaluate("window.__notReloaded = true")  # gone if the page reloads
    page.get_by_label("Input (JSON)").fill('{"order": "A-1"}')
    page.get_by_label("Idempotency-Key (optional)").fill(f"ui-{uuid.uuid4().hex[:8]}")
    shot(page, "ui-workflow")
    page.get_by_role("button", name=re.compile("Trigger run")).click()
    expect(page).to_have_url(re.compile(r"/ui/runs/[0-9a-f-]{36}$"))
    detail = page.locator("#run-detail")
    expect(detail).to_have_attribute("data-status", "COMPLETED")
    expect(page.locator('svg.dag .node[data-status="COMPLETED"]')).to_have_count(4)
    assert page.evaluate("window.__notReloaded") is True
    expect(page.locator("#run-output")).to_contain_text("A-1")
    shot(page, "ui-run")


def test_failed_run_shows_its_error_stack_and_worker_language(page: Page, stack: Stack) -> None:
    wf = _wf(
        stack,
        "ui-crash",
        [{"name": "parse", "action": "ui.crash", "retry": {"max_retries": 1, "initial_interval": "0.1s"}}],
    )
    run_id = stack.trigger(wf, {"amount": "12,50"})
    stack.wait_run(run_id, ("FAILED",))
    page.goto(f"{stack.url}/ui/runs/{run_id}")
    attempts = page.locator("tr.attempt")
    expect(attempts).to_have_count(2)
    last = attempts.nth(1)
    expect(last.locator(".err-type")).to_have_text("ValueError")
    expect(last.locator(".err-msg")).to_contain_text("cannot parse amount")
    expect(last.locator(".lang")).to_have_text("python")
    expect(page.locator("#run-error")).to_contain_text("at step parse")
    expect(page.locator('svg.dag .node[data-step="parse"]')).to_have_attribute("data-status", "DEAD_LETTERED")
    expect(page.get_by_role("button", name="Retry from failed")).to_be_visible()
    shot(page, "ui-run-failed")
    stack_trace = last.locator("details.stack pre")
    expect(stack_trace).to_be_hidden()  # folded until asked for
    last.locator("details.stack summary").click()
    expect(stack_trace).to_contain_text("ValueError")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Retry from failed").click()
    # Two more attempts (a fresh budget) appear live, and the unfolded stack trace stays unfolded.
    expect(attempts).to_have_count(4)
    expect(page.locator("#run-detail")).to_have_attribute("data-status", "FAILED")
    expect(attempts.nth(1).locator("details.stack pre")).to_be_visible()


def test_redrive_with_an_edited_input_completes_the_run(page: Page, stack: Stack) -> None:
    wf = _wf(stack, "ui-picky", [{"name": "check", "action": "ui.picky"}])
    run_id = stack.trigger(wf, {"ok": False, "order": "B-7"})
    stack.wait_run(run_id, ("FAILED",))
    page.goto(f"{stack.url}/ui/dlq?run_id={run_id}")
    card = page.locator("article.dl")
    expect(card).to_have_count(1)
    expect(card.locator(".reason")).to_have_text("non retryable")
    expect(card.locator(".err-msg")).to_contain_text("order rejected")
    shot(page, "ui-dlq")
    editor = card.get_by_label("Input for the new attempt (JSON)")
    expect(page.locator("#live")).to_have_attribute("data-state", "on")  # the stream's first re-read is due
    editor.focus()  # from here on no live refresh replaces the card under the cursor
    editor.fill('{"ok": true, "order": ')  # the editor refuses what is not JSON
    expect(card.locator(".error")).to_contain_text("Not valid JSON")
    expect(card.get_by_role("button", name="Redrive")).to_be_disabled()
    editor.fill('{"ok": true, "order": "B-7"}')
    expect(card.get_by_role("button", name="Redrive")).to_be_enabled()
    card.get_by_role("button", name="Redrive").click()
    expect(page.locator(".toast")).to_contain_text("redriven")
    run = stack.wait_run(run_id, ("COMPLETED",))
    assert run["steps"][0]["input"] == {"ok": True, "order": "B-7"} and run["output"] == "accepted"
    page.goto(f"{stack.url}/ui/runs/{run_id}")
    expect(page.locator("#run-detail")).to_have_attribute("data-status", "COMPLETED")


def test_bulk_cancel_touches_exactly_the_filtered_running_runs(page: Page, stack: Stack) -> None:
    held = [{"name": "wait", "action": "ui.nobody"}]  # no worker serves it: the runs stay RUNNING
    wf, other = _wf(stack, "ui-held", held), _wf(stack, "ui-other", held)
    runs = [stack.trigger(wf, i) for i in range(3)]
    control = stack.trigger(other, "keep me")
    page.goto(f"{stack.url}/ui/")
    page.get_by_label("Workflow", exact=True).select_option(wf)
    page.get_by_label("Status", exact=True).select_option("RUNNING")
    page.get_by_role("button", name="Filter", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/ui/\?workflow_id={wf}&status=RUNNING"))  # a view to share
    rows = page.locator("#runs tbody tr[data-run]")
    expect(rows).to_have_count(3)
    expect(page.locator('#counts .n[data-status="RUNNING"]')).to_have_text("3")
    page.get_by_role("button", name="Cancel filtered runs…").click()
    dialog = page.get_by_role("alertdialog")
    expect(dialog).to_contain_text("Cancel 3 runs?")
    shot(page, "ui-bulk-confirm")
    expect(dialog.get_by_role("button", name="Cancel 3")).to_be_focused()
    page.keyboard.press("Tab")  # the focus stays in the dialog; Escape closes it and returns the focus
    expect(dialog.get_by_role("button", name="Back")).to_be_focused()
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel filtered runs…")).to_be_focused()
    page.keyboard.press("Enter")
    dialog.get_by_role("button", name="Cancel 3").click()
    expect(page.locator(".toast")).to_contain_text("Done: 3 of 3")
    # Live, without a reload: the rows turn CANCELLED (or leave this RUNNING-only view when another run's
    # start re-reads the list) and the counts follow.
    expect(page.locator('#runs tbody tr[data-status="RUNNING"]')).to_have_count(0)
    expect(page.locator('#counts .n[data-status="CANCELLED"]')).to_have_text("3")
    expect(page.locator('#counts .n[data-status="RUNNING"]')).to_have_text("0")
    for run_id in runs:
        assert stack.http.get(f"/workflow/run/{run_id}").json()["status"] == "CANCELLED"
    assert stack.http.get(f"/workflow/run/{control}").json()["status"] == "RUNNING"
    stack.http.post(f"/workflow/run/{control}/cancel")
    page.goto(f"{stack.url}/ui/")
    expect(page.locator("#runs tbody tr[data-run]").first).to_be_visible()
    shot(page, "ui-runs")


def test_workers_page_shows_a_python_a_node_and_a_java_worker(page: Page, stack: Stack) -> None:
    _wf(stack, "ui-lonely", [{"name": "x", "action": "ui.unserved"}])
    page.goto(f"{stack.url}/ui/workers")
    for language in ("python", "node", "java"):  # the JVM may still be starting: the page is live
        row = page.locator(f'#workers tr[data-language="{language}"]').first
        try:
            expect(row).to_be_visible(timeout=120_000)
        except AssertionError as exc:
            raise AssertionError(f"no {language} worker: {stack.procs.log(language)}") from exc
    expect(page.locator('#backlog tr[data-action="ui.unserved"]')).to_contain_text("no worker")
    expect(page.locator('#backlog tr[data-action="java.score"]')).to_contain_text("ok")
    shot(page, "ui-workers")
