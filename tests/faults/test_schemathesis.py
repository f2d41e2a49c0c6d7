"""Schemathesis over the orchestrator's OpenAPI schema (a real `baton server`, private schema/prefixes on
the shared stack): no server errors, and responses conform to the schema."""

from __future__ import annotations

import subprocess

from .harness import VENV_BIN, Scenario

CHECKS = ["not_a_server_error", "response_schema_conformance"]


def test_schemathesis_finds_no_server_errors(scenario: Scenario) -> None:
    url = scenario.start_orchestrator()
    scenario.define({"id": "st", "steps": [{"name": "s", "action": "st.s"}]})
    scenario.trigger("st", 1, key="st-1")
    cmd = [
        str(VENV_BIN / "schemathesis"),
        "run",
        f"{url}/openapi.json",
        "--url",
        url,
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        "30",
        "--request-timeout",
        "10",
        "--generation-deterministic",
        "--no-color",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=scenario.workdir)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:] + "\n" + scenario.procs.log("orchestrator")
    assert "Traceback" not in scenario.procs.log("orchestrator", 1_000_000)
    summary = [line for line in out.splitlines() if "passed" in line or "Test cases" in line or "API" in line]
    scenario.report({"server_errors": 0}, summary=" | ".join(s.strip() for s in summary)[:300])
