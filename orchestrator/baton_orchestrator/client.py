"""`baton apply` and `baton trigger`: a small HTTP client for the API (standard library only)."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import yaml

TERMINAL = ("COMPLETED", "FAILED", "CANCELLED")


class ApiError(Exception):
    pass


def call(
    url: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, token: str | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        payload = json.loads(exc.read() or b"null")
        message = (payload or {}).get("error", {}).get("message", exc.reason)
        raise ApiError(f"{method} {path} -> {exc.code}: {message}") from None
    except urllib.error.URLError as exc:
        raise ApiError(f"cannot reach the Baton API at {url}: {exc.reason} (is `make server` running?)") from None


def load_definitions(path: Path) -> list[dict[str, Any]]:
    """A YAML or JSON file with one definition, or several as YAML documents."""
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise ApiError(f"{path}: expected one workflow definition (a mapping) per YAML document")
    return docs


def apply(url: str, files: list[str], token: str | None) -> int:
    for name in files:
        for definition in load_definitions(Path(name)):
            _, created = call(url, "POST", "/workflow", definition, token=token)
            print(f"defined {created['id']} version {created['version']} ({len(created['steps'])} steps)")
    return 0


def trigger(url: str, workflow_id: str, payload: Any, key: str | None, wait: float, token: str | None) -> int:
    headers = {"Idempotency-Key": key} if key else {}
    status, body = call(url, "POST", f"/workflow/{workflow_id}/trigger", {"input": payload}, headers, token)
    print(f"run {body['run_id']} {'started' if status == 201 else 'replayed (idempotent)'}")
    if not wait:
        return 0
    run = watch(url, body["run_id"], wait, token)
    return 0 if run["status"] == "COMPLETED" else 1


def watch(url: str, run_id: str, timeout: float, token: str | None) -> dict[str, Any]:
    deadline, last = time.monotonic() + timeout, ""
    while True:
        _, run = call(url, "GET", f"/workflow/run/{run_id}", token=token)
        line = "  ".join(f"{s['name']}={s['status']}" for s in run["steps"])
        if line != last:
            print(f"  [{run['status']:<9}] {line}", flush=True)
            last = line
        if run["status"] in TERMINAL:
            break
        if time.monotonic() > deadline:
            print(f"run still {run['status']} after {timeout:g}s", file=sys.stderr)
            return run
        time.sleep(0.25)
    for step in run["steps"]:
        worker = (step["attempts"][-1].get("worker") or {}) if step["attempts"] else {}
        print(
            f"  {step['name']:<14} {step['status']:<13} attempts={len(step['attempts'])} "
            f"by={worker.get('language', '-'):<6} output={json.dumps(step['output'])[:100]}"
        )
    print(f"run {run['status']}: output = {json.dumps(run['output'], indent=2)}")
    return run
