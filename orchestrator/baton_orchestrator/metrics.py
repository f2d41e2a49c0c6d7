"""Prometheus metrics, one registry per app so tests can build several apps in one process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs_triggered = Counter("baton_runs_triggered", "Runs created by triggers", registry=r)
        self.runs_finished = Counter("baton_runs_finished", "Runs that reached a final state", ["status"], registry=r)
        self.runs_by_status = Gauge("baton_runs", "Runs by status (read at scrape time)", ["status"], registry=r)
        self.steps_dispatched = Counter("baton_steps_dispatched", "Jobs queued for workers", registry=r)
        self.steps_completed = Counter("baton_steps_completed", "Attempts that completed", registry=r)
        self.steps_failed = Counter("baton_steps_failed", "Attempts that failed (incl. timeouts)", registry=r)
        self.retries = Counter("baton_step_retries", "Retries scheduled", registry=r)
        self.dead_letters = Counter("baton_dead_letters", "Steps given up to the DLT", registry=r)
        self.results_ignored = Counter("baton_results_ignored", "Duplicate or stale results (no-ops)", registry=r)
        self.results_undecodable = Counter("baton_results_undecodable", "Results sent to the results DLT", registry=r)
        self.timeouts = Counter("baton_step_timeouts", "Attempts that missed their deadline", registry=r)
        self.outbox_backlog = Gauge("baton_outbox_backlog", "Outbox rows not yet published", registry=r)
        self.step_latency = Histogram(
            "baton_step_duration_seconds",
            "Handler time reported by workers (finished - started)",
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600),
        )
        self.batch_size = Histogram(
            "baton_engine_batch_size",
            "Results applied per transaction",
            registry=r,
            buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000),
        )
