"""Baton benchmark harness: real orchestrator, real workers, the shared Kafka/PostgreSQL/Redis.

    .venv/bin/python bench/run.py --quick      # W3 + a short W1 ramp, about a minute
    .venv/bin/python bench/run.py              # T0, W3, W1, W2 rate sweeps, under ~10 minutes
    .venv/bin/python bench/run.py --profile    # + a py-spy profile of the orchestrator under W1 load
    .venv/bin/python bench/run.py --workloads C1 --peer restate   # C1 beside Restate (installed from npm)

See bench/README.md for what each number means. Everything the bench creates is namespaced by a
timestamp (schema bench_<ts>, topics bench-<ts>-*, Redis keys bench-<ts>:*, groups bench-<ts>-*) and
removed at the end; only the processes it started are stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from pathlib import Path

_VENV_PY = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"
try:
    import httpx  # noqa: F401
    import psycopg  # noqa: F401
except ImportError:  # run with the repository's .venv when started by another interpreter
    # A venv python is often a symlink to the same binary as the system one: compare prefixes, not executables.
    if _VENV_PY.exists() and Path(sys.prefix).resolve() != _VENV_PY.parent.parent.resolve():
        os.execv(str(_VENV_PY), [str(_VENV_PY), *sys.argv])
    raise

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stack import RESULTS, ROOT  # noqa: E402
from sweep import Bench  # noqa: E402
from workloads import FLOW  # noqa: E402


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="W3 + a short W1 ramp (about a minute)")
    ap.add_argument(
        "--workloads", default="T0,W3,W1,W2,C1", help="full mode: which workloads (T0,W1,W2,W3; C1 = closed-loop W1)"
    )
    ap.add_argument("--closed", help="C1 clients in flight, e.g. 1,50,200 (quick: 1,20)")
    ap.add_argument(
        "--peer",
        choices=["restate"],
        help="after C1, run the same closed loop against this system (installed from npm into a temporary "
        "directory) and print both side by side",
    )
    ap.add_argument(
        "--flow",
        choices=sorted(FLOW),
        default="none",
        help="W1/W2 with one flow-control feature in force but never binding: limit (workflow-wide run limit), "
        "key (concurrency key per run), rate (rate limit on the action), priority",
    )
    ap.add_argument("--workers", default="python", help="worker processes by language, e.g. python,node,python")
    ap.add_argument(
        "--orchestrator",
        choices=["one", "split"],
        default="one",
        help="one `baton server` (API + engine), or split: `--role api` and `--role engine` processes",
    )
    ap.add_argument("--concurrency", type=int, default=32, help="BATON_WORKER_CONCURRENCY of each worker")
    ap.add_argument("--warmup", type=float, help="seconds of load before each measured window")
    ap.add_argument("--measure", type=float, help="seconds of each measured window")
    ap.add_argument("--w3-measure", type=float, help="seconds of the W3 window")
    ap.add_argument("--drain", type=float, default=15, help="seconds a point may take to drain its backlog")
    ap.add_argument("--final-drain", type=float, default=30)
    for w in ("t0", "w1", "w2", "w3"):
        ap.add_argument(f"--{w}-rates", help=f"comma-separated {w.upper()} workflow arrival rates (wf/s)")
    ap.add_argument("--connections", type=int, default=32, help="load generator HTTP connections")
    ap.add_argument("--inflight-cap", type=int, default=2000, help="open-loop cap on outstanding triggers")
    ap.add_argument("--profile", action="store_true", help="py-spy the orchestrator under W1 load")
    ap.add_argument("--profile-rate", type=float, help="W1 wf/s while profiling (default: best sustainable)")
    ap.add_argument("--profile-seconds", type=float, default=20)
    ap.add_argument("--keep-schema", action="store_true", help="do not drop bench_<ts> (to inspect it)")
    ap.add_argument("--keep-files", action="store_true", help="keep bench/results/tmp-<ts>/ (logs, records)")
    ap.add_argument("--budget", type=float, default=540, help="stop starting new sweep points after this many s")
    ap.add_argument(
        "--refine",
        type=int,
        default=1,
        help="extra points between the last sustainable and the first "
        "unsustainable rate of a ramp (not with explicit --<w>-rates)",
    )
    args = ap.parse_args(argv)
    quick = args.quick
    if args.closed is not None:
        try:
            levels = [int(x) for x in args.closed.split(",")]
        except ValueError:
            levels = []
        if not levels or any(n < 1 or n > 1000 for n in levels):
            ap.error(f"--closed wants comma-separated client counts from 1 to 1000, got {args.closed!r}")
    if args.peer and not quick and "C1" not in [w.strip().upper() for w in args.workloads.split(",")]:
        ap.error("--peer compares with C1: add C1 to --workloads (or use --quick)")
    args.warmup = args.warmup if args.warmup is not None else (2 if quick else 3)
    args.measure = args.measure if args.measure is not None else (5 if quick else 8)
    args.w3_measure = args.w3_measure if args.w3_measure is not None else (6 if quick else 10)
    if quick:
        args.budget = min(args.budget, 90)
        args.drain = min(args.drain, 8)
    return args


async def amain(args: argparse.Namespace) -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    bench = Bench(args)
    failed = False
    try:
        await bench.run()
    except (Exception, KeyboardInterrupt, asyncio.CancelledError) as exc:
        failed = True
        bench.notes.append(f"aborted: {type(exc).__name__}: {exc}")
        print(f"bench aborted: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        try:
            if bench.points or bench.closed or failed:
                bench.output()
        finally:
            await bench.cleanup()
            tmp = bench.stack.tmp
            if not args.keep_files and not failed:
                shutil.rmtree(tmp, ignore_errors=True)
            elif failed:
                print(f"logs kept in {tmp.relative_to(ROOT)}", file=sys.stderr)
    c = bench.correct
    peer_failed = bench.peer is not None and (bench.peer.get("error") or any(p["errors"] for p in bench.peer["points"]))
    return 1 if failed or peer_failed or c.get("lost") or c.get("duplicated") or c.get("stuck") else 0


def main() -> None:
    # uvloop when installed (it is in .venv): the load generator shares the 2 cores with what it measures,
    # so its own CPU per trigger is kept low (measured: ~1.2 ms per trigger on asyncio's default loop).
    try:
        import uvloop
    except ImportError:
        sys.exit(asyncio.run(amain(parse())))
    sys.exit(uvloop.run(amain(parse())))


if __name__ == "__main__":
    main()
