"""Output: the progress line of a point, the markdown tables, the throughput-vs-latency PNG, and a py-spy
collapsed-stack summary."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from closed import markdown as closed_markdown
from peers.compare import markdown as peer_markdown
from reads import markdown as reads_markdown

GROUPS = ("orchestrator", "postgres", "kafka", "redis", "workers", "loadgen")


def fmt_ms(v: Any) -> str:
    if v is None:
        return "∞"
    return f"{v:.1f}" if v >= 10 else f"{v:.2f}"


def _n(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:g}"


def _d(d: dict[str, Any], *qs: str) -> str:
    """A latency distribution as 'p50 / p99' ('-' when nothing was measured, '∞' when some never finished)."""
    if not d.get("n"):
        return "-"
    return " / ".join(fmt_ms(d[q]) for q in qs)


def point_line(p: dict[str, Any]) -> str:
    """One rate point as a progress line."""
    d = p["dispatch_ms"]
    return (
        f"{p['workload']} {p['target_wf_per_s']:g} wf/s: {p['steps_per_s']:g} steps/s, dispatch p50 "
        f"{fmt_ms(d['p50'])} p99 {fmt_ms(d['p99'])} ms, e2e p99 {fmt_ms(p['e2e_ms']['p99'])} ms, "
        f"orch {p['cpu_us_per_step'].get('orchestrator')} µs/step, PG {p['cpu_us_per_step'].get('postgres')} µs/step, "
        f"{_n(p.get('pg_row_ops_per_step'))} PG row ops/step -> "
        f"{'sustainable' if p['sustainable'] else 'NOT sustainable: ' + p['why_not']}"
    )


def markdown(r: dict[str, Any]) -> str:
    out = [f"## Baton benchmark {r['timestamp']} ({r['knobs']['mode']}, workers: {r['knobs']['workers']})", ""]
    out += [
        "| workload | target wf/s | achieved wf/s | wf/s done | steps/s | dispatch p50 / p95 / p99 / max ms "
        "| e2e p50 / p95 / p99 / max ms | backlog Δ | sustainable |",
        "|---|---:|---:|---:|---:|---|---|---:|---|",
    ]
    for p in r["points"]:
        d, e = p["dispatch_ms"], p["e2e_ms"]
        ok = "yes" if p["sustainable"] else f"no ({p['why_not']})"
        out.append(
            f"| {p['workload']} | {p['target_wf_per_s']:g} | {p['achieved_wf_per_s']:g} | {p['wf_per_s']:g} "
            f"| {_n(p['steps_per_s'])} | {_d(d, 'p50', 'p95', 'p99', 'max')} "
            f"| {_d(e, 'p50', 'p95', 'p99', 'max')} | {p['backlog_growth']} | {ok} |"
        )
    out += [
        "",
        "CPU per completed step (µs, from /proc/<pid>/stat over the measured window; `machine` = all CPU "
        "of the box incl. other users, `other` = machine - groups):",
        "",
        "| workload | wf/s | steps/s | " + " | ".join(GROUPS) + " | sum | machine | other | cores busy (machine) |",
        "|---|---:|---:|" + "---:|" * (len(GROUPS) + 4),
    ]
    for p in r["points"]:
        c = p["cpu_us_per_step"]
        out.append(
            f"| {p['workload']} | {p['target_wf_per_s']:g} | {_n(p['steps_per_s'])} | "
            + " | ".join(_n(c.get(g)) for g in GROUPS)
            + f" | {_n(c.get('sum_groups'))} | {_n(c.get('machine'))} | {_n(c.get('other'))} "
            f"| {p['cores_busy'].get('machine', 0):.2f} |"
        )
    dj = [p for p in r["points"] if p.get("dispatch_result_in_ms")]
    if dj:
        out += [
            "",
            "Dispatch split (ms p50 / p99): result in = parent handler returned → engine transaction that "
            "queued the child began (T0: the T0 engine polled the result); job out = from there → child handler "
            "entered (commit, publish, worker fetch). first step = trigger scheduled → first handler entered; "
            "trigger = scheduled → HTTP 201 received. PG commits/step: pg_stat_database.xact_commit delta over the "
            "window ÷ steps (database-wide: other users count too; approximate). PG rows/step: rows inserted + "
            "updated + deleted in the bench schema (pg_stat_user_tables) over the window ÷ steps completed in it.",
            "",
            "| workload | wf/s | result in | job out | first step | trigger HTTP | e2e server-side p99 "
            "| PG commits/step | PG rows/step |",
            "|---|---:|---|---|---|---|---:|---:|---:|",
        ]
        for p in dj:
            ri, jo, fs, th = (
                p["dispatch_result_in_ms"],
                p["dispatch_job_out_ms"],
                p["first_step_ms"],
                p.get("trigger_http_ms"),
            )
            out.append(
                f"| {p['workload']} | {p['target_wf_per_s']:g} | {_d(ri, 'p50', 'p99')} | {_d(jo, 'p50', 'p99')} "
                f"| {_d(fs, 'p50', 'p99')} | {_d(th or {}, 'p50', 'p99')} "
                f"| {_d(p.get('e2e_server_ms') or {}, 'p99')} | {_n(p.get('pg_commits_per_step_approx'))} "
                f"| {_n(p.get('pg_row_ops_per_step'))} |"
            )
    c = r["correctness"]
    out += [
        "",
        "**Summary** "
        + ", ".join(
            f"`{k}` = {r[k]}"
            for k in (
                "w1_steps_per_s",
                "w1_dispatch_p50_ms",
                "w1_dispatch_p99_ms",
                "w3_dispatch_p50_ms",
                "orchestrator_cpu_us_per_step",
                "lost",
                "duplicated",
                "stuck",
                "w1_steps_per_s_dispatch_p99_le_50ms",
                "w1_closed_wait_p50_ms",
                "w1_closed_poll_p50_ms",
                "wake_p50_ms",
                "wake_p99_ms",
                "get_run_orchestrator_cpu_us",
                "restate_closed_p50_ms",
                "restate_closed_best_steps_per_s",
            )
            if k in r
        ),
        "",
        f"Correctness: {c.get('runs_accepted', 0)} runs accepted; lost {c.get('lost')}, duplicated "
        f"{c.get('duplicated')} (handler calls {c.get('duplicated_handler_calls')}, completed attempts "
        f"{c.get('duplicated_completed_attempts')}), stuck {c.get('stuck')}; outbox rows left "
        f"{c.get('outbox_rows_left')}.",
        f"Peak RSS MB: {', '.join(f'{k} {v:g}' for k, v in r['peak_rss_mb'].items())}.",
        "",
        "Knobs:",
    ]
    for k, v in r["knobs"].items():
        out.append(f"- {k}: {v}")
    prof = r.get("profile")
    if prof:
        out += ["", f"py-spy profile of the orchestrator (pid {prof.get('pid')}):"]
        for fmt in ("raw", "flamegraph"):
            if fmt in prof:
                out.append(f"- {fmt}: {prof[fmt]['file']} (`py-spy {prof[fmt]['argv']}`)")
        for e in prof.get("errors", []):
            out.append(f"- failed: {e}")
        top = prof.get("top")
        if top and top.get("busy"):
            out += ["", f"{top['samples']} samples, {top['idle']} idle (epoll / idle threads), {top['busy']} busy; "
                    "% below are of busy samples.", ""]  # fmt: skip
            for title, key, n in (("where (entry point)", "entry", 20), ("self time by package", "packages", 20),
                                  ("self time by function", "self", 20),
                                  ("inclusive, baton_orchestrator functions", "inclusive_baton", 25)):  # fmt: skip
                out += [f"| % | {title} |", "|---:|---|"]
                out += [f"| {v:.1f} | `{k}` |" for k, v in top.get(key, [])[:n]]
                out.append("")
    if r.get("notes"):
        out += ["", "Notes:"] + [f"- {n}" for n in r["notes"]]
    out += closed_markdown(r.get("closed_loop") or [])
    out += reads_markdown(r.get("reads"))
    out += peer_markdown(r.get("peer"))
    return "\n".join(out)


_FRAME = re.compile(r"^(?P<fn>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
# Leaf frames that mean "waiting", not working: the event loop's epoll, idle thread-pool threads.
_IDLE_LEAVES = {"EpollSelector.select (selectors.py)", "Condition.wait (threading.py)", "Queue.get (queue.py)"}
_PACKAGES = (
    *("psycopg", "sqlalchemy", "aiokafka", "uvicorn", "h11", "starlette", "fastapi", "pydantic", "anyio"),
    *("orjson", "redis", "greenlet", "prometheus_client", "baton_orchestrator", "asyncio", "json", "re"),
)
# Where a busy sample is attributed, first match from the root. SQLAlchemy runs its sync layer in greenlets,
# so those stacks lose their caller: they are reported as "SQL (greenlet, caller not visible)".
_ENTRY_POINTS = (
    ("ResultsLoop.handle", "engine: results loop (apply transaction)"),
    ("Publisher._publish", "engine/API: publish jobs + delete outbox rows"),
    ("ResultsLoop.run", "engine: results loop (poll/commit)"),
    ("TimersLoop", "engine: timers loop"),
    ("RelayLoop", "engine: outbox relay loop"),
    ("PresenceLoop", "engine: presence loop"),
    ("trigger (baton_orchestrator/service.py)", "API: trigger (service.trigger)"),
    ("ProxyHeadersMiddleware", "API: HTTP stack outside service.trigger"),
    ("H11Protocol", "API: HTTP parsing (h11)"),
    ("aiokafka/producer", "aiokafka producer background"),
    ("aiokafka/consumer", "aiokafka consumer background"),
    ("aiokafka/conn", "aiokafka connection I/O"),
    ("Connection.execute (sqlalchemy", "SQL (greenlet, caller not visible)"),
    ("Engine.connect (sqlalchemy", "SQL (greenlet, caller not visible)"),
)


def _frame_name(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if not m:
        return frame.strip()
    f = m.group("file")
    for marker in ("baton_orchestrator/", "site-packages/", "lib/python3"):
        if marker in f:
            f = f[f.index(marker) :]
            break
    return f"{m.group('fn')} ({f})"


def _package(frame: str) -> str:
    f = frame[frame.rfind("(") + 1 : -1]
    for pkg in _PACKAGES:
        if f.startswith((pkg + "/", pkg + ".py")) or f"/{pkg}/" in f:
            return pkg
    if f.startswith(("engine/", "api/", "bus/", "store/")) or f in ("apply.py", "loops.py", "dispatch.py"):
        return "baton_orchestrator"
    return "other (stdlib etc.)"


def summarize_profile(path: Path) -> dict[str, Any]:
    """From py-spy's collapsed ('raw') output: % of busy samples by entry point, by package (self time), by
    function (self and inclusive). Samples whose leaf is an idle wait are counted apart."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    pkgs: Counter[str] = Counter()
    entry: Counter[str] = Counter()
    total = idle = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [_frame_name(f) for f in stack.split(";") if f.strip()]
        frames = [f for f in frames if "(" in f]
        if not frames:
            continue
        total += n
        if frames[-1] in _IDLE_LEAVES:
            idle += n
            continue
        self_c[frames[-1]] += n
        pkgs[_package(frames[-1])] += n
        for f in set(frames):
            incl[f] += n
        joined = ";".join(frames)
        entry[next((label for key, label in _ENTRY_POINTS if key in joined), "other")] += n
    busy = total - idle
    if not busy:
        return {"samples": total, "idle": idle, "busy": 0, "self": [], "inclusive": [], "packages": [], "entry": []}

    def pc(c: Counter[str], n: int) -> list[tuple[str, float]]:
        return [(k, round(100 * v / busy, 1)) for k, v in c.most_common(n)]

    ours = Counter({k: v for k, v in incl.items() if _package(k) == "baton_orchestrator"})
    return {
        "samples": total,
        "idle": idle,
        "busy": busy,
        "entry": pc(entry, 20),
        "packages": pc(pkgs, 20),
        "self": pc(self_c, 40),
        "inclusive": pc(incl, 80),
        "inclusive_baton": pc(ours, 30),
    }


def plot(points: list[dict[str, Any]], path: Path) -> str | None:
    """Throughput vs latency, one line per workload. Returns a message when the PNG is skipped."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "PNG skipped: matplotlib is not installed (.venv/bin/pip install matplotlib)"
    colors = {"T0": "tab:gray", "W1": "tab:blue", "W2": "tab:green", "W3": "tab:red"}
    if not any(p["workload"] in colors for p in points):
        return "PNG skipped: no open-loop rate points in this run (the closed loop and the peer are tables only)"
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 5))
    for wl in ("T0", "W1", "W2", "W3"):
        pts = [p for p in points if p["workload"] == wl]
        if not pts:
            continue
        xs = [p["steps_per_s"] for p in pts]
        col = colors[wl]
        for ax, key in ((ax1, "dispatch_ms"), (ax2, "e2e_ms")):
            for q, style in (("p50", "--"), ("p99", "-")):
                ys = [p[key][q] if p[key][q] is not None else float("nan") for p in pts]
                ax.plot(xs, ys, style, marker="o", color=col, label=f"{wl} {q}")
            for p in pts:
                if not p["sustainable"]:
                    y = p[key]["p99"]
                    if y is not None:
                        ax.plot([p["steps_per_s"]], [y], "x", color="black", markersize=10)
    for ax, title in ((ax1, "step dispatch latency"), (ax2, "workflow end-to-end latency")):
        ax.set_yscale("log")
        ax.set_xlabel("completed steps/s (measured)")
        ax.set_ylabel("ms")
        ax.set_title(title + " (x = not sustainable)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    ax2.axhline(1000, color="red", linewidth=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
