"""API keys in the browser, offline API docs, keyboard and narrow windows."""

from __future__ import annotations

import re

from playwright.sync_api import Page, Request, expect

from .conftest import API_KEY, Stack, shot


def test_with_api_keys_nothing_shows_until_a_key_is_given_and_every_call_carries_it(page: Page, stack: Stack) -> None:
    url = stack.auth_server.url
    requests: list[Request] = []
    page.on("request", lambda r: requests.append(r))
    page.goto(f"{url}/ui/")
    expect(page.get_by_label("API key")).to_be_focused()
    expect(page.locator("#main")).to_be_hidden()
    page.get_by_label("API key").fill("wrong")
    page.get_by_role("button", name="Open the dashboard").click()
    expect(page.locator("#key-error")).to_have_text("That key was refused.")
    expect(page.locator("#runs")).to_have_count(0)
    page.get_by_label("API key").fill(API_KEY)
    page.get_by_role("button", name="Open the dashboard").click()
    expect(page.locator("#runs")).to_be_visible()
    expect(page.locator("#live")).to_have_text("live")
    page.get_by_role("link", name="Workflows").click()
    expect(page.locator("#workflows")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('baton-api-key')") == API_KEY
    assert page.evaluate("localStorage.length") == 0
    data_calls = [r for r in requests if r.headers.get("hx-request") or "/ui/events" in r.url]
    assert data_calls and all(
        r.headers.get("authorization") in ("Bearer wrong", f"Bearer {API_KEY}") for r in data_calls
    )
    assert all(API_KEY not in r.url for r in requests), "the key must never be in a URL"


def test_api_docs_render_from_local_assets_only(page: Page, stack: Stack) -> None:
    outside: list[str] = []

    def only_local(route: object) -> None:
        req = route.request  # type: ignore[attr-defined]
        if not req.url.startswith(stack.url):
            outside.append(req.url)
            route.abort()  # type: ignore[attr-defined]
        else:
            route.continue_()  # type: ignore[attr-defined]

    page.route("**/*", only_local)
    page.goto(f"{stack.url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Baton")
    expect(page.locator(".opblock-tag-section").first).to_be_visible()
    shot(page, "ui-docs")
    page.goto(f"{stack.url}/redoc")
    expect(page.locator("redoc h1, [role=main] h1").first).to_contain_text("Baton")
    assert not outside, f"the docs fetched from outside: {outside}"


def test_keyboard_reaches_every_page_and_a_narrow_dark_window_stays_usable(page: Page, stack: Stack) -> None:
    page.goto(f"{stack.url}/ui/")
    expect(page.locator("#counts")).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.locator("a.skip")).to_be_focused()
    for name in ("Baton", "Runs", "Dead letters", "Workers"):
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name=name, exact=True).first).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/ui/workers$"))
    expect(page.locator("#workers")).to_be_visible()
    stack.define({"id": "ui-narrow", "steps": [{"action": "ui.echo"}, {"action": "ui.nobody"}]})
    for i in range(3):
        stack.trigger("ui-narrow", i)
    page.emulate_media(color_scheme="dark")
    page.set_viewport_size({"width": 420, "height": 800})
    page.goto(f"{stack.url}/ui/")
    expect(page.locator("#runs tbody tr[data-run]")).to_have_count(3)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 420, f"the page scrolls sideways at 420 px ({width} px wide)"
    shot(page, "ui-runs-narrow-dark")


def test_a_page_that_cannot_be_shown_says_why(page: Page, stack: Stack) -> None:
    page.goto(f"{stack.url}/ui/runs/00000000-0000-4000-8000-000000000000")
    expect(page.locator("#main .error-box")).to_contain_text("does not exist")
