"""The `--peer restate` leg: the side-by-side rows and table, the server config, the option checks, and one
real Restate leg (npm install into a temp dir, server + chain service, a closed-loop point, stop by pid)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import tomllib
import types
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))

from peers.compare import compare, headline, markdown, run_peer  # noqa: E402
from peers.restate import Ports, _chain_ok, config, fs_type  # noqa: E402
from run import parse  # noqa: E402


def _point(inflight: int, steps_per_s: float, p50: float, cpu: dict[str, float], workload: str) -> dict[str, Any]:
    total = sum(cpu.values())
    return {
        "workload": workload,
        "inflight": inflight,
        "steps_per_s": steps_per_s,
        "wf_per_s": steps_per_s / 10,
        "latency_ms": {"n": 10, "p50": p50, "p99": p50 * 2},
        "cpu_us_per_step": {**cpu, "sum_groups": total, "machine": total * 1.5, "other": total * 0.5},
        "errors": 0,
    }


def test_compare_pairs_baton_wait_with_the_peer_at_the_same_level() -> None:
    baton = [
        _point(1, 100, 200, {"orchestrator": 1000, "postgres": 500}, "W1-closed-wait"),
        _point(1, 90, 250, {"orchestrator": 1200}, "W1-closed-poll"),
        _point(200, 1000, 2000, {"orchestrator": 400}, "W1-closed-wait"),
    ]
    peer = [
        _point(1, 50, 100, {"restate-server": 600, "service": 300, "driver": 100}, "restate-chain"),
        _point(7, 70, 700, {"restate-server": 600}, "restate-chain"),
    ]
    rows = compare(baton, peer)
    assert [r["inflight"] for r in rows] == [1, 7]
    one = rows[0]
    assert one["baton"]["steps_per_s"] == 100  # the wait point, not the poll point
    assert one["baton"]["cpu_us_per_step"]["orchestrator"] == 1000
    assert one["restate"]["cpu_us_per_step"] == {"restate-server": 600, "service": 300, "driver": 100}
    assert one["baton_over_restate"] == {"steps_per_s": 2.0, "p50_ms": 2.0, "p99_ms": 2.0, "cpu_us_per_step_total": 1.5}
    assert rows[1]["baton"] is None and rows[1]["baton_over_restate"]["steps_per_s"] is None

    result = {"requested_versions": {"restate-server": "1.7.12"}, "chain": "c", "points": peer, "comparison": rows}
    md = "\n".join(markdown(result))
    assert "| 1 | Baton ÷ Restate | 2 | 2 / 2 | | 1.5 | |" in md
    assert "restate-server 600 · service 300 · driver 100" in md
    assert "(no C1 `wait` point at 7)" in md
    assert headline(result) == {
        "restate_closed_inflight": 1,
        "restate_closed_p50_ms": 100,
        "restate_closed_best_steps_per_s": 70,
    }
    assert headline(None) == {} and markdown(None) == []


def test_markdown_reports_a_failed_leg() -> None:
    md = "\n".join(markdown({"requested_versions": {}, "chain": "c", "points": [], "comparison": [], "error": "boom"}))
    assert "The Restate leg failed: boom" in md


def test_server_config_binds_loopback_and_keeps_durability_defaults(tmp_path: Path) -> None:
    cfg = tomllib.loads(config(tmp_path / "da ta", Ports(1001, 1002, 1003, 1004)))
    assert cfg["bind-ip"] == "127.0.0.1" and cfg["listen-mode"] == "tcp" and cfg["bind-port"] == 1003
    assert cfg["ingress"]["bind-port"] == 1001 and cfg["admin"]["bind-port"] == 1002
    assert cfg["base-dir"] == str(tmp_path / "da ta") and cfg["disable-telemetry"] is True
    assert not any("fsync" in k or "wal" in k for k in cfg)  # durability is the server's default


def test_chain_answer_check() -> None:
    ok = _chain_ok(3)
    assert ok(200, {"n": 3, "step": 10})
    assert not ok(200, {"n": 4, "step": 10}) and not ok(200, {"n": 3, "step": 9})
    assert not ok(500, {"n": 3, "step": 10}) and not ok(200, None) and not ok(200, [1])


def test_fs_type_finds_the_mount() -> None:
    assert fs_type(Path("/proc/self/status")) == "proc"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--closed", "abc"], "--closed wants comma-separated client counts"),
        (["--closed", "0,5"], "--closed wants comma-separated client counts"),
        (["--closed", "1,"], "--closed wants comma-separated client counts"),
        (["--peer", "temporal"], "invalid choice"),
        (["--peer", "restate", "--workloads", "W1"], "--peer compares with C1"),
    ],
)
def test_bad_options_are_clear_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_peer_options_parse() -> None:
    args = parse(["--workloads", "C1", "--closed", "1,200", "--peer", "restate"])
    assert args.peer == "restate" and args.closed == "1,200"
    assert parse(["--quick", "--peer", "restate"]).peer == "restate"


def _need_node() -> None:
    missing = [t for t in ("node", "npm") if shutil.which(t) is None]
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail(f"the Restate leg needs {missing} on PATH")
        pytest.skip(f"needs {missing} on PATH")


@pytest.mark.slow
async def test_a_real_restate_leg_runs_and_cleans_up() -> None:
    """npm install, server + service, registration, a 1-client point of 2 s, then nothing left behind."""
    _need_node()
    logs: list[str] = []
    bench = types.SimpleNamespace(args=types.SimpleNamespace(warmup=0.5, measure=2.0), closed=[], log=logs.append)
    tmp_before = set(Path(tempfile.gettempdir()).glob("baton-bench-restate-*"))
    t0 = time.monotonic()
    out = await run_peer(bench, "restate", [1])  # type: ignore[arg-type]
    assert "error" not in out, out.get("error")
    assert out["versions"]["restate-server"] == "1.7.12"
    assert out["knobs"]["log-server.rocksdb-disable-wal-fsync"] is False
    (p,) = out["points"]
    assert p["errors"] == 0 and p["steps_completed_in_window"] > 0 and p["steps_completed_in_window"] % 10 == 0
    assert p["latency_ms"]["p50"] > 0
    assert set(p["cpu_us_per_step"]) >= {"restate-server", "service", "driver", "sum_groups", "machine"}
    assert p["cpu_s"]["restate-server"] > 0
    assert set(out["idle_cores_busy"]) >= {"restate-server", "service", "driver", "machine"}
    assert set(out["pids"]) == {"restate-server", "service"}
    for pid in out["pids"].values():
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert set(Path(tempfile.gettempdir()).glob("baton-bench-restate-*")) == tmp_before
    assert time.monotonic() - t0 < 300
