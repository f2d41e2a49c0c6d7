"""Statements the engine's transitions read and lock steps with: the open attempts a batch of outcomes
names (engine/apply.py), a run's steps for the general scheduling rule, heartbeats, due retries and
missed deadlines (engine/loops.py's timers). The batch's writes are store/steps.py's FLUSH.

Rows come back as plain tuples (the engine's row style), in the column order each statement lists.
"""

LOCK_OPEN = """
SELECT s.run_id::text AS run_id, s.name, s.job_id, s.attempt, s.max_attempts, s.action, s.deadline, s.timeout_ms,
       s.workflow_id, s.workflow_version, s.run_status, s.traceparent
FROM json_to_recordset(%s::json) AS x(run_id uuid, name text, job_id text)
-- One primary-key lookup per outcome, locked in the caller's (sorted) order: a LATERAL subquery with
-- FOR UPDATE is never flattened, so no cached plan can turn this into a scan.
CROSS JOIN LATERAL (
    SELECT s.*, r.workflow_id, r.workflow_version, r.status AS run_status, r.traceparent
    FROM steps s JOIN runs r ON r.id = s.run_id
    WHERE s.run_id = x.run_id AND s.name = x.name AND s.job_id = x.job_id AND s.status IN ('QUEUED', 'RUNNING')
    FOR UPDATE OF s
) s
"""
RUN_STEPS = """
SELECT r.id::text AS run_id, r.status AS run_status, r.input AS run_input, s.name, s.status, s.output, s.attempt,
       r.workflow_id, r.workflow_version, r.priority, r.traceparent
FROM runs r JOIN steps s ON s.run_id = r.id WHERE r.id = ANY(%s::uuid[]) ORDER BY r.id, s.position
"""
STEP_INPUT = "SELECT input FROM steps WHERE run_id = %s AND name = %s"
# Rows found as in the batch statement (engine/writes.py): a LATERAL primary-key lookup per beat, updated by ctid.
HEARTBEATS = """
UPDATE steps s SET status = 'RUNNING', updated_at = now(), deadline = now() + s.timeout_ms * interval '1 ms',
       worker = x.worker, started_at = COALESCE(s.started_at, x.started, now())
FROM (SELECT x.worker, x.started, t.tid
      FROM json_to_recordset(%(beats)s::json) AS x(run_id uuid, name text, job_id text, worker jsonb,
                                                    started timestamptz)
      CROSS JOIN LATERAL (
          SELECT ctid AS tid FROM steps WHERE run_id = x.run_id AND name = x.name AND job_id = x.job_id LIMIT 1
      ) t
) x
WHERE s.ctid = x.tid AND s.status IN ('QUEUED', 'RUNNING')
"""
DUE_RETRIES = """
SELECT s.run_id::text AS run_id, s.name, s.action, s.attempt, s.max_attempts, s.input, s.timeout_ms,
       r.workflow_id, r.workflow_version, r.priority, r.traceparent
FROM steps s JOIN runs r ON r.id = s.run_id
WHERE s.status = 'FAILED' AND s.next_attempt_at <= now() AND r.status = 'RUNNING'
ORDER BY s.next_attempt_at LIMIT 500 FOR UPDATE OF s SKIP LOCKED
"""
# A queued job its epoch has not seen acknowledged (above its watermark) may never have been dispatched
# (Kafka unreachable): it cannot time out. The relay restarts its deadline when it finally sends it. An
# epoch without a row was retired after its unacknowledged steps were adopted: the rest were acknowledged.
EXPIRED = """
SELECT s.job_id, s.run_id::text AS run_id, s.name, s.attempt, s.timeout_ms FROM steps s
WHERE s.status IN ('QUEUED', 'RUNNING') AND s.deadline <= now()
  AND (s.status = 'RUNNING' OR s.dispatch_seq IS NULL
       OR s.dispatch_seq <= COALESCE((SELECT d.acked_upto FROM dispatchers d WHERE d.epoch = s.dispatch_epoch),
                                     s.dispatch_seq))
ORDER BY s.deadline LIMIT 500 FOR UPDATE OF s SKIP LOCKED
"""
