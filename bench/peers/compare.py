"""The peer leg of a run (`--peer restate`) and its side-by-side table with Baton's closed loop (C1 `wait`,
i.e. trigger-and-wait): the same N clients in flight, the same warm-up and window, the same client code.

Ratios are Baton ÷ Restate: above 1 for steps/s means Baton moved more; above 1 for latency or CPU means
Baton took longer or spent more.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from peers.restate import SDK_VERSION, SERVER_VERSION, STEPS, PeerError, Restate, closed_point, idle_cores, point_line

if TYPE_CHECKING:
    from sweep import Bench

PEERS = ("restate",)
CHAIN = (
    f"Restate service `Chain.run` calling the no-op service handler `Step.run` {STEPS} times in sequence, each "
    "a separate durable service call (ctx.serviceClient), driven through the ingress `POST /Chain/run` "
    "(request -> response once the chain finished)"
)
BATON_GROUPS = ("orchestrator", "postgres", "kafka", "redis", "workers", "loadgen")
PEER_GROUPS = ("restate-server", "service", "driver")


async def run_peer(bench: Bench, name: str, levels: list[int]) -> dict[str, Any]:
    """Install, start and drive the peer at each level; its processes are stopped and its temporary directory
    removed at the end, also on an error or Ctrl-C. A PeerError is recorded (`error`), not raised."""
    if name not in PEERS:
        raise ValueError(f"unknown peer {name!r}")
    out: dict[str, Any] = {
        "name": name,
        "requested_versions": {"restate-server": SERVER_VERSION, "restate-sdk": SDK_VERSION},
        "chain": CHAIN,
        "points": [],
        "notes": [],
    }
    peer = Restate(bench.log)
    try:
        await peer.start()
        out["versions"], out["knobs"] = peer.versions, peer.knobs
        out["notes"] += peer.notes
        out["pids"] = {k: v[0] for k, v in peer.groups().items() if k != "driver"}
        out["idle_cores_busy"] = await idle_cores(peer)
        bench.log(f"restate: idle for 2 s, cores busy {out['idle_cores_busy']}")
        for n in levels:
            p = await closed_point(peer, n, bench.args.warmup, bench.args.measure)
            out["points"].append(p)
            bench.log(point_line(p))
        out["peak_rss_mb"] = peer.peak_rss_mb()
    except PeerError as exc:
        out["error"] = str(exc)
        bench.log(f"restate leg failed: {exc}")
    finally:
        bench.log("restate: stopping the server and the service, removing the temporary directory")
        peer.close(out["notes"])
    out["comparison"] = compare(bench.closed, out["points"])
    return out


def _side(p: dict[str, Any] | None, groups: tuple[str, ...]) -> dict[str, Any] | None:
    if p is None:
        return None
    c = p["cpu_us_per_step"]
    return {
        "steps_per_s": p["steps_per_s"],
        "wf_per_s": p["wf_per_s"],
        "p50_ms": p["latency_ms"]["p50"],
        "p99_ms": p["latency_ms"]["p99"],
        "cpu_us_per_step": {g: c.get(g) for g in groups},
        "cpu_us_per_step_total": c.get("sum_groups"),
        "machine_us_per_step": c.get("machine"),
    }


def _ratio(a: Any, b: Any) -> float | None:
    return round(a / b, 2) if isinstance(a, int | float) and isinstance(b, int | float) and b else None


def compare(baton_closed: list[dict[str, Any]], peer_points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per level: Baton's C1 `wait` point and the peer's point at the same number in flight."""
    wait = {p["inflight"]: p for p in baton_closed if p["workload"] == "W1-closed-wait"}
    rows = []
    for p in peer_points:
        b, r = _side(wait.get(p["inflight"]), BATON_GROUPS), _side(p, PEER_GROUPS)
        assert r is not None
        ratios = {k: _ratio(b[k], r[k]) if b else None for k in ("steps_per_s", "p50_ms", "p99_ms")}
        ratios["cpu_us_per_step_total"] = _ratio(b["cpu_us_per_step_total"], r["cpu_us_per_step_total"]) if b else None
        rows.append({"inflight": p["inflight"], "baton": b, "restate": r, "baton_over_restate": ratios})
    return rows


def headline(peer: dict[str, Any] | None) -> dict[str, Any]:
    """Summary keys beside Baton's `w1_closed_wait_p50_ms` / `w1_closed_best_steps_per_s`."""
    pts = (peer or {}).get("points") or []
    if not pts:
        return {}
    low = min(pts, key=lambda p: p["inflight"])
    return {
        "restate_closed_inflight": low["inflight"],
        "restate_closed_p50_ms": low["latency_ms"]["p50"],
        "restate_closed_best_steps_per_s": max(p["steps_per_s"] for p in pts),
    }


def _n(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:g}"


def _cpu(side: dict[str, Any]) -> str:
    return " · ".join(f"{g} {_n(v)}" for g, v in side["cpu_us_per_step"].items())


def markdown(peer: dict[str, Any] | None) -> list[str]:
    if not peer:
        return []
    versions = peer.get("versions") or peer["requested_versions"]
    out = [
        "",
        f"Peer: Restate ({', '.join(f'{k} {v}' for k, v in versions.items())}), run after Baton on the same "
        f"machine. Restate: {peer['chain']}. Baton: C1 `wait` (W1, `POST …/trigger?wait=60`). Both: N clients, "
        "each sending the next workflow when its last one was answered; latency = sent → answered. "
        "CPU µs per completed step from /proc; ratio = Baton ÷ Restate.",
        "",
        "| in flight | system | steps/s | per workflow p50 / p99 ms | CPU µs/step by process | total µs/step "
        "| machine µs/step |",
        "|---:|---|---:|---|---|---:|---:|",
    ]
    for row in peer["comparison"]:
        n = row["inflight"]
        for label, side in (("Baton", row["baton"]), ("Restate", row["restate"])):
            if side is None:
                out.append(f"| {n} | {label} | - | - | (no C1 `wait` point at {n}) | - | - |")
                continue
            out.append(
                f"| {n} | {label} | {_n(side['steps_per_s'])} | {_n(side['p50_ms'])} / {_n(side['p99_ms'])} "
                f"| {_cpu(side)} | {_n(side['cpu_us_per_step_total'])} | {_n(side['machine_us_per_step'])} |"
            )
        r = row["baton_over_restate"]
        out.append(
            f"| {n} | Baton ÷ Restate | {_n(r['steps_per_s'])} | {_n(r['p50_ms'])} / {_n(r['p99_ms'])} | "
            f"| {_n(r['cpu_us_per_step_total'])} | |"
        )
    errors = sum(p["errors"] for p in peer["points"])
    if errors:
        out.append(f"\nRestate calls that failed or returned a wrong result: {errors} (see `error_samples`).")
    idle = peer.get("idle_cores_busy")
    if idle:
        out.append(
            "\nRestate idle for 2 s before the load (cores busy; the fixed cost in the 1-client row): "
            + ", ".join(f"{k} {idle.get(k)}" for k in (*PEER_GROUPS, "machine"))
            + "."
        )
    if peer.get("peak_rss_mb"):
        out.append(f"\nRestate peak RSS MB: {', '.join(f'{k} {v:g}' for k, v in peer['peak_rss_mb'].items())}.")
    out += [f"\nNote: {n}" for n in peer.get("notes") or []]
    if peer.get("error"):
        out.append(f"\nThe Restate leg failed: {peer['error']}")
    return out
