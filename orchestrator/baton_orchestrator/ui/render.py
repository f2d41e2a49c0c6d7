"""Jinja2 templates shipped in the package, with the filters the pages use."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from .. import __version__
from . import views

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.filters.update(
    pretty=views.pretty,
    duration=views.duration,
    short_time=views.short_time,
    clock=views.clock,
    query=lambda d: urlencode(d),
)
templates.env.globals["version"] = __version__


def render(request: Request, name: str, context: dict[str, Any], status: int = 200) -> HTMLResponse:
    auth = bool(request.app.state.settings.api_key_list)
    # no-store: a page's data is never kept by the browser's cache (it may hold a key-protected view).
    headers = {"Cache-Control": "no-store", "Vary": "HX-Request"}
    return templates.TemplateResponse(request, name, {**context, "auth_required": auth}, status, headers)
