"""One run of a worker: fetch jobs, run handlers, send results, commit offsets, drain. Private."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
from collections.abc import Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import Tracer, TracerProvider

from . import _kafka
from ._deadline import Supervisor, timeout_error
from ._dispatch import DaemonPool, Handler, Outcome, run_handler
from ._kafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRecord,
    KafkaError,
    TopicPartition,
)
from ._offsets import Committer, Ticket
from ._sender import Sender
from ._tracing import JobSpan, make_tracer
from .config import WorkerSettings
from .context import JobContext
from .protocol import (
    Job,
    Result,
    Undecodable,
    WorkerInfo,
    decode_job,
    encode_result,
    format_time,
)

log = logging.getLogger("baton")

_POLL_MS = 200  # how long one fetch waits for records; also how quickly a stop is noticed
_PAUSE_AFTER_S = 1.0  # full for this long: pause fetching (a short full spell keeps the prefetched records)
_BACKLOG_FACTOR = 4  # finished jobs awaiting Kafka's acknowledgement, per unit of concurrency
_CLOSE_TIMEOUT_S = 5.0  # each shutdown step (final commit, closing a client) gives up after this


@dataclass(frozen=True, slots=True)
class RunReport:
    """What a run did: results acknowledged by Kafka per outcome, and jobs dead-lettered."""

    completed: int = 0
    failed: int = 0
    dead_lettered: int = 0


def _now() -> str:
    return format_time(datetime.now(UTC))


class Runtime:
    """Owns the Kafka clients and the in-flight jobs of one run of a :class:`~baton.Worker`."""

    def __init__(
        self,
        settings: WorkerSettings,
        handlers: Mapping[str, Handler],
        worker: WorkerInfo,
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        self._s, self._handlers, self._worker = settings, dict(handlers), worker
        self._tracer: Tracer = make_tracer(tracer_provider)
        assert settings.max_abandoned is not None
        self._supervisor = Supervisor(settings.deadline_grace, settings.max_abandoned)
        # Room for the abandoned sync handlers whose slots were freed: their threads are still busy.
        self._pool = DaemonPool(settings.concurrency + settings.max_abandoned)
        self._tasks: set[asyncio.Task[None]] = set()  # one per fetched record until it is acknowledged
        self._extra: set[asyncio.Task[None]] = set()  # job heartbeats, presence
        self._running = 0  # handlers running: the concurrency limit applies to these
        self._stopping = asyncio.Event()
        self._wake = asyncio.Event()  # a slot freed, a backlog task finished, or a stop was asked
        self._nudge = asyncio.Event()  # the drain deadline moved
        self._drain_deadline: float | None = None
        self._counts = {"COMPLETED": 0, "FAILED": 0, "DLT": 0}
        self._started_at = _now()
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._committer: Committer | None = None
        self._sender: Sender
        self._closed = False  # set once nothing may be sent any more

    @property
    def report(self) -> RunReport:
        return RunReport(self._counts["COMPLETED"], self._counts["FAILED"], self._counts["DLT"])

    @property
    def in_flight(self) -> int:
        return self._running

    @property
    def stuck_slots(self) -> int:
        return self._supervisor.stuck

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def request_stop(self, timeout: float) -> None:
        """Stop fetching and drain; a later request with a shorter timeout shortens the drain."""
        deadline = asyncio.get_running_loop().time() + max(timeout, 0.0)
        if self._drain_deadline is None or deadline < self._drain_deadline:
            self._drain_deadline = deadline
        self._stopping.set()
        self._wake.set()
        self._nudge.set()

    # ------------------------------------------------------------------ lifecycle
    async def run(self, *, until_idle: bool = False, drain_timeout: float = 30.0) -> RunReport:
        """Run until :meth:`request_stop` (or, with ``until_idle``, until nothing is left to do)."""
        try:
            return await self._run(until_idle, drain_timeout)
        finally:
            self._closed = True
            self.finished.set()

    async def _run(self, until_idle: bool, drain_timeout: float) -> RunReport:
        self._loop = asyncio.get_running_loop()
        job_topics = [self._s.jobs_topic(action) for action in self._handlers]
        topics = [*job_topics, self._s.results_topic, self._s.dead_letter_topic, self._s.workers_topic]
        if not await self._unless_stopped(_kafka.ensure_topics_retrying(self._s, topics, self._worker.id)):
            return self.report
        self._producer = producer = _kafka.make_producer(self._s, self._worker.id)
        self._sender = Sender(self._s, producer, lambda: self._closed)
        try:
            if not await self._unless_stopped(_kafka.start_producer(producer, job_topics)):
                return self.report
            self._consumer = consumer = _kafka.make_consumer(self._s, self._worker.id)
            try:
                if await self._unless_stopped(consumer.start()):
                    self._committer = Committer(consumer)
                    consumer.subscribe(job_topics, listener=self._committer)
                    await self._serve(until_idle, drain_timeout)
            finally:
                await _bounded(consumer.stop(), "closing the consumer")  # only acknowledged jobs were committed
        finally:
            await _bounded(producer.stop(), "closing the producer")
            self._pool.shutdown()
        return self.report

    async def _unless_stopped(self, step: Coroutine[Any, Any, None]) -> bool:
        """Run a start-up step unless a stop is asked first (SIGTERM while Kafka is unreachable, say):
        then cancel it and return False."""
        task = asyncio.ensure_future(step)
        stop = asyncio.create_task(self._stopping.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if task.cancelled():
            log.info("worker %s stopped while starting", self._worker.id)
            return False
        task.result()  # a start-up failure is raised here
        return True

    async def _serve(self, until_idle: bool, drain_timeout: float) -> None:
        assert self._committer is not None
        background = [
            asyncio.create_task(self._presence_loop()),
            asyncio.create_task(self._committer.loop()),
        ]
        self.started.set()
        log.info(
            "worker %s started: actions %s, group %s",
            self._worker.id,
            sorted(self._handlers),
            self._s.group_id,
        )
        try:
            await self._fetch_loop(until_idle)
            if self._drain_deadline is None:
                self._drain_deadline = asyncio.get_running_loop().time() + drain_timeout
            await self._drain()
        finally:
            # Also on cancellation: nothing may send once the clients close. Unfinished jobs stay
            # uncommitted, so Kafka delivers them again.
            await _cancel([*background, *self._tasks])
            await self._supervisor.close()
            await _bounded(self._committer.commit(), "the final offset commit")
            await self._presence("STOPPED", _CLOSE_TIMEOUT_S)
            self._closed = True
            await _cancel(self._extra)
            log.info("worker %s stopped: %s", self._worker.id, self.report)

    async def _drain(self) -> None:
        assert self._consumer is not None and self._drain_deadline is not None
        self._consumer.pause(*self._consumer.assignment())
        self._spawn_extra(self._presence("STOPPING"))
        loop = asyncio.get_running_loop()
        if self._tasks:
            log.info("draining %d jobs", len(self._tasks))
        while self._tasks and (remaining := self._drain_deadline - loop.time()) > 0:
            self._nudge.clear()
            nudged = asyncio.create_task(self._nudge.wait())
            await asyncio.wait({*self._tasks, nudged}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            nudged.cancel()
        if self._tasks:
            log.warning("%d jobs unfinished at the drain timeout: left uncommitted for redelivery", len(self._tasks))

    # ------------------------------------------------------------------ fetching
    def _free_slots(self) -> int:
        return min(
            self._s.concurrency - self._running,
            self._s.concurrency * _BACKLOG_FACTOR - len(self._tasks),
        )

    async def _fetch_loop(self, until_idle: bool) -> None:
        assert self._consumer is not None
        while not self._stopping.is_set():
            free = self._free_slots()
            if free <= 0:
                await self._wait_for_slot()
                continue
            batch = await self._consumer.getmany(timeout_ms=_POLL_MS, max_records=free)
            for records in batch.values():
                for record in records:
                    self._spawn(record)
            if until_idle and not batch and await self._idle():
                return

    async def _woken(self, wait_s: float) -> bool:
        self._wake.clear()
        if self._free_slots() > 0 or self._stopping.is_set():
            return True
        try:
            await asyncio.wait_for(self._wake.wait(), wait_s)
        except TimeoutError:
            return False
        return True

    async def _wait_for_slot(self) -> None:
        if await self._woken(_PAUSE_AFTER_S):
            return
        # Still full: pause the partitions so nothing more is fetched, yet keep polling, because a
        # consumer that does not poll for max.poll.interval.ms is thrown out of its group.
        consumer = self._consumer
        assert consumer is not None
        while self._free_slots() <= 0 and not self._stopping.is_set():
            consumer.pause(*consumer.assignment())
            await consumer.getmany(timeout_ms=0)
            await self._woken(1.0)
        consumer.resume(*consumer.paused())

    async def _idle(self) -> bool:
        """Burst mode: every assigned partition read to its end and every job acknowledged."""
        consumer = self._consumer
        assert consumer is not None
        assignment = consumer.assignment()
        if self._tasks or not assignment:
            return False
        ends = await consumer.end_offsets(list(assignment))
        for tp in assignment:
            if await consumer.position(tp) < ends[tp]:
                return False
        return not self._tasks

    # ------------------------------------------------------------------ one job
    def _spawn(self, record: ConsumerRecord[bytes, bytes]) -> None:
        assert self._committer is not None
        ticket = self._committer.tracker.track(TopicPartition(record.topic, record.partition), record.offset)
        self._running += 1
        task = asyncio.create_task(self._process(record, ticket))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._wake.set()

    def _release(self) -> None:
        self._running -= 1
        self._wake.set()

    async def _process(self, record: ConsumerRecord[bytes, bytes], ticket: Ticket) -> None:
        released = False
        try:
            try:
                job = self._decode(record)
            except Undecodable as exc:
                self._release()
                released = True
                await self._sender.dead_letter(record, exc)
                self._counts["DLT"] += 1
            else:
                result, slot_kept, trace_headers = await self._execute(job, record)
                if not slot_kept:
                    self._release()
                released = True
                status = await self._sender.result(result, _kafka.result_headers(job.job_id, trace_headers))
                self._counts[status] += 1
            assert self._committer is not None
            self._committer.finished(ticket)
        except Exception:
            # A bug, not a job failure: leave the offset uncommitted (the job is redelivered) and say so.
            log.exception("internal error processing %s[%d] offset %d", record.topic, record.partition, record.offset)
        finally:
            if not released:
                self._release()

    def _decode(self, record: ConsumerRecord[bytes, bytes]) -> Job:
        job = decode_job(record.value)
        if job.action not in self._handlers:
            raise Undecodable(f"no handler registered for action {job.action!r}", job.job_id)
        return job

    async def _execute(
        self, job: Job, record: ConsumerRecord[bytes, bytes]
    ) -> tuple[Result, bool, Sequence[tuple[str, bytes]]]:
        """Run the job's handler within its deadline, in its ``baton.handle`` span; the result, whether
        the slot stays taken (an abandoned handler past ``max_abandoned``: released when it returns),
        and the trace headers for the job's results."""
        started = _now()
        live = [True]  # False once abandoned: its late heartbeats are dropped
        span = JobSpan(self._tracer, job, record.topic, self._worker, record.headers)
        heartbeat = functools.partial(self._heartbeat_soon, job, span.headers, started, live)
        ctx = JobContext(job, heartbeat, span.ids)
        handler = self._handlers[job.action]
        token = span.attach()  # the task copies the current context: the handler runs in the span
        try:
            call = asyncio.create_task(run_handler(handler, job.input, ctx, self._pool, self._s.max_payload_bytes))
        finally:
            otel_context.detach(token)
        try:
            outcome = await self._supervisor.wait(call, ctx)
        except asyncio.CancelledError:
            call.cancel()  # the drain was cut short: the job stays uncommitted
            span.span.end()
            raise
        slot_kept = False
        if outcome is None:
            live[0] = False
            slot_kept = not self._supervisor.abandon(call, cancellable=handler.is_async, release=self._release)
            outcome = Outcome("FAILED", error=timeout_error(ctx, self._s.deadline_grace))
            ctx.logger.warning(
                "job %s abandoned past its deadline (%d handlers abandoned, slot %s)",
                job.job_id,
                self._supervisor.stuck,
                "kept: max_abandoned reached" if slot_kept else "freed",
            )
        self._log_failure(ctx, outcome)
        span.finish(outcome)
        result = Result(
            job.job_id,
            job.run_id,
            job.step,
            job.attempt,
            outcome.status,
            self._worker,
            started,
            _now(),
            outcome.output_json,
            outcome.error,
        )
        return result, slot_kept, span.headers

    @staticmethod
    def _log_failure(ctx: JobContext, outcome: Outcome) -> None:
        if outcome.error is None:
            return
        kind = outcome.error["type"]
        if kind in ("SystemExit", "KeyboardInterrupt"):  # not the worker's own: it keeps running
            ctx.logger.error("job %s: handler raised %s; job failed, worker keeps running", ctx.job_id, kind)
        else:
            ctx.logger.warning("job %s failed: %s: %s", ctx.job_id, kind, outcome.error["message"])

    # ------------------------------------------------------------------ heartbeats
    def _heartbeat_soon(self, job: Job, headers: Sequence[tuple[str, bytes]], started: str, live: list[bool]) -> None:
        """``ctx.heartbeat()``: may be called from a handler thread, so hop onto the loop."""
        assert self._loop is not None
        if not live[0]:
            return  # abandoned: its job was answered Timeout already
        try:
            self._loop.call_soon_threadsafe(self._heartbeat_now, job, headers, started, live)
        except RuntimeError:
            pass  # the loop is closed: the worker has stopped and the job is abandoned anyway

    def _heartbeat_now(self, job: Job, headers: Sequence[tuple[str, bytes]], started: str, live: list[bool]) -> None:
        if self._closed or not live[0]:
            return  # abandoned (by the drain or past its deadline) while this call waited for the loop
        beat = Result(job.job_id, job.run_id, job.step, job.attempt, "HEARTBEAT", self._worker, started, None)
        send = self._sender.send(
            self._s.results_topic,
            encode_result(beat),
            job.run_id.encode(),
            _kafka.result_headers(job.job_id, headers),
        )
        self._spawn_extra(send)

    def _spawn_extra(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._extra.add(task)
        task.add_done_callback(self._extra.discard)

    async def _presence_loop(self) -> None:
        while True:
            await self._presence("RUNNING")
            await asyncio.sleep(self._s.presence_interval)

    async def _presence(self, status: str, timeout: float = 10.0) -> None:
        await self._sender.presence(
            self._worker,
            timeout,
            status=status,
            actions=sorted(self._handlers),
            in_flight=self._running,
            details={
                "stuck_slots": self._supervisor.stuck,
                "hostname": socket.gethostname(),
                "pid": os.getpid(),
                "group_id": self._s.group_id,
                "concurrency": self._s.concurrency,
                "started_at": self._started_at,
            },
        )


async def _bounded(step: Coroutine[Any, Any, Any], what: str) -> None:
    """A shutdown step that Kafka being down must not turn into a hang."""
    try:
        await asyncio.wait_for(step, _CLOSE_TIMEOUT_S)
    except (KafkaError, TimeoutError) as exc:
        log.warning("%s did not finish (%r); going on", what, exc)


async def _cancel(tasks: Collection[asyncio.Task[None]]) -> None:
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
