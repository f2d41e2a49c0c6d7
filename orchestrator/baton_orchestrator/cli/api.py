"""The HTTP API as the CLI uses it: one httpx client, the error envelope mapped to ApiError."""

from __future__ import annotations

import os
from typing import Any

import httpx


class ApiError(Exception):
    """The API answered with an error (or could not be reached); `code` is the envelope's code."""

    def __init__(self, message: str, status: int = 0, code: str = "unreachable") -> None:
        super().__init__(message)
        self.status, self.code = status, code


class Api:
    def __init__(self, url: str | None = None, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = (url or os.environ.get("BATON_API_URL") or "http://127.0.0.1:8080").rstrip("/")
        token = token or os.environ.get("BATON_API_KEY")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.timeout = timeout
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        wait: float = 0,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> tuple[int, Any]:
        query = {k: v for k, v in params.items() if v is not None}
        try:
            resp = self.http.request(
                method,
                path,
                json=body,
                params=query,
                headers=headers,
                # A long poll is answered by the server when it ends: the client waits that much longer.
                timeout=self.timeout + wait,
            )
        except httpx.HTTPError as exc:
            raise ApiError(f"cannot reach the Baton API at {self.url}: {exc} (is `make server` running?)") from None
        payload = resp.json() if resp.content else None
        if resp.status_code >= 400:
            error = (payload or {}).get("error", {}) if isinstance(payload, dict) else {}
            message = error.get("message") or resp.reason_phrase
            raise ApiError(f"{method} {path} -> {resp.status_code}: {message}", resp.status_code, error.get("code", ""))
        return resp.status_code, payload

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, **params)[1]

    def pages(self, path: str, limit: int, **params: Any) -> list[Any]:
        """Up to `limit` items, following next_cursor."""
        items: list[Any] = []
        cursor = None
        while len(items) < limit:
            page = self.get(path, limit=min(500, limit - len(items)), cursor=cursor, **params)
            items += page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return items
