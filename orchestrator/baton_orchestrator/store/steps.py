"""The engine's batch statements on steps: one flush per transaction, a run's creation, the gate's hold,
the oversize dead letter. Each batch arrives as JSON documents unpacked with json_to_recordset; why every
row finds its target by primary key and is updated by ctid is in engine/writes.py's docstring.

Per-step changes are not appended to run_events (the step's history is its row and its attempts): they
wake waiters and live views with pg_notify, same channel and lines as migration 0004's trigger
("<run_id> <type> <step>", at most 25 lines a notification). Run-level events still go to run_events.
"""

FLUSH = """
WITH fin AS (
    UPDATE steps s SET status = f.status, output = f.output, error = f.error, next_attempt_at = f.next_at,
           deadline = NULL, updated_at = now()
    FROM (SELECT f.*, t.tid
          FROM json_to_recordset(%(fin)s::json)
               AS f(run_id uuid, name text, status text, astatus text, output jsonb, error jsonb,
                    next_at timestamptz, worker jsonb, started timestamptz, finished timestamptz)
          CROSS JOIN LATERAL (SELECT ctid AS tid FROM steps WHERE run_id = f.run_id AND name = f.name LIMIT 1) t
    ) f
    WHERE s.ctid = f.tid
    -- The open attempt's columns are untouched above: RETURNING hands on what the step held of it.
    RETURNING s.job_id, s.run_id, s.name, s.attempt, f.astatus, f.output, f.error,
              COALESCE(f.worker, s.worker) AS worker, COALESCE(s.queued_at, now()) AS queued_at,
              COALESCE(f.started, s.started_at) AS started_at, COALESCE(f.finished, now()) AS finished_at
), fin_attempts AS (
    -- An attempt enters the history once, when it ends (the step's lock and status guard saw to that).
    INSERT INTO attempts (job_id, run_id, step, attempt, status, output, error, worker, queued_at, started_at,
                          finished_at)
    SELECT job_id, run_id, name, attempt, astatus, output, error, worker, queued_at, started_at, finished_at
    FROM fin
    ON CONFLICT (job_id) DO NOTHING
), q AS (
    -- The status guard makes queueing idempotent: a step already queued or finished is left alone.
    UPDATE steps s SET status = 'QUEUED', attempt = q.attempt, max_attempts = q.max_attempts, job_id = q.job_id,
           input = q.input, deadline = q.deadline, timeout_ms = q.timeout_ms, next_attempt_at = NULL,
           flow_keys = COALESCE(q.flow_keys, s.flow_keys), wait_reason = NULL, wait_key = NULL,
           waiting_since = NULL, queued_at = now(), started_at = NULL, worker = NULL, updated_at = now(),
           dispatch_epoch = q.epoch, dispatch_seq = q.seq, dispatch_trace = q.trace
    FROM (SELECT q.*, t.tid
          FROM json_to_recordset(%(queued)s::json) AS q(run_id uuid, name text, attempt int, max_attempts int,
                                                        job_id text, input jsonb, deadline timestamptz, timeout_ms int,
                                                        flow_keys text[], epoch uuid, seq bigint, trace text)
          CROSS JOIN LATERAL (SELECT ctid AS tid FROM steps WHERE run_id = q.run_id AND name = q.name LIMIT 1) t
    ) q
    WHERE s.ctid = q.tid AND s.status IN ('PENDING', 'FAILED', 'DEAD_LETTERED', 'WAITING')
    RETURNING s.job_id
), ob AS (
    -- Records that are no step's job (dead-letter copies): a queued step is its own job's entry.
    INSERT INTO outbox (topic, key, value, headers, kind, run_id, step, job_id)
    SELECT o.topic, convert_to(o.key, 'UTF8'), convert_to(o.value, 'UTF8'), o.headers, o.kind, o.run_id, o.step,
           o.job_id
    FROM json_to_recordset(%(outbox)s::json)
         AS o(kind text, run_id uuid, step text, job_id text, topic text, key text, value text, headers jsonb)
    RETURNING id, kind, job_id
), ev AS (
    INSERT INTO run_events (run_id, step, type, data)
    SELECT e.run_id, e.step, e.type, e.data
    FROM json_to_recordset(%(events)s::json) AS e(run_id uuid, step text, type text, data jsonb)
), done AS (
    UPDATE runs r SET status = 'COMPLETED', output = d.output, updated_at = now(), finished_at = now()
    FROM (SELECT d.*, t.tid
          FROM json_to_recordset(%(done)s::json) AS d(run_id uuid, output jsonb)
          CROSS JOIN LATERAL (SELECT ctid AS tid FROM runs WHERE id = d.run_id LIMIT 1) t
    ) d
    WHERE r.ctid = d.tid AND r.status = 'RUNNING'
    RETURNING r.id
), sk AS (
    UPDATE steps s SET status = 'SKIPPED', updated_at = now()
    FROM (SELECT k.*, t.tid
          FROM json_to_recordset(%(skipped)s::json) AS k(run_id uuid, name text)
          CROSS JOIN LATERAL (SELECT ctid AS tid FROM steps WHERE run_id = k.run_id AND name = k.name LIMIT 1) t
    ) k
    WHERE s.ctid = k.tid AND s.status = 'PENDING'
), del AS (
    DELETE FROM outbox WHERE id = ANY(%(delete)s::bigint[])
), wm AS (
    UPDATE dispatchers SET acked_upto = %(acked)s, seen_at = now()
    WHERE %(acked)s::bigint IS NOT NULL AND epoch = %(epoch)s::uuid AND acked_upto < %(acked)s::bigint
)
SELECT (SELECT coalesce(json_agg(json_build_array(id, kind, job_id)), '[]'::json) FROM ob),
       (SELECT count(*) FROM done), (SELECT coalesce(json_agg(job_id), '[]'::json) FROM q),
       (SELECT count(pg_notify('baton_events_' || current_schema(), n)) FROM unnest(%(notes)s::text[]) n)
"""


# A job over the payload limit ends its step at once (the rare path): dead letter, failed attempt, run FAILED.
DEAD_LETTER_OVERSIZE = """
WITH x AS (
    SELECT * FROM json_to_recordset(%(rows)s::json) AS x(run_id uuid, name text, attempt int, max_attempts int,
                                                          job_id text, action text, input jsonb, error jsonb)
), st AS (
    UPDATE steps s SET status = 'DEAD_LETTERED', attempt = x.attempt, max_attempts = x.max_attempts,
           job_id = x.job_id, input = x.input, error = x.error, deadline = NULL, next_attempt_at = NULL,
           updated_at = now()
    FROM x WHERE s.run_id = x.run_id AND s.name = x.name AND s.status IN ('PENDING', 'FAILED', 'DEAD_LETTERED')
    RETURNING x.*
), a AS (
    INSERT INTO attempts (job_id, run_id, step, attempt, status, error, finished_at)
    SELECT job_id, run_id, name, attempt, 'FAILED', error, now() FROM st
), d AS (
    INSERT INTO dead_letters (run_id, step, job_id, action, attempt, reason, error, input)
    SELECT run_id, name, job_id, action, attempt, 'payload_too_large', error, input FROM st
), r AS (
    UPDATE runs r SET status = 'FAILED', updated_at = now(), finished_at = now(),
           error = st.error || jsonb_build_object('step', st.name)
    FROM st WHERE r.id = st.run_id AND r.status = 'RUNNING'
    RETURNING r.id
)
INSERT INTO run_events (run_id, step, type, data)
SELECT run_id, name, 'step_dead_lettered',
       jsonb_build_object('attempt', attempt, 'job_id', job_id, 'error', error, 'reason', 'payload_too_large')
FROM st
UNION ALL SELECT id, NULL, 'run_failed', '{"reason": "payload_too_large"}'::jsonb FROM r
"""


# Steps the gate holds (flow control only): WAITING with why, keeping their place in line when already waiting.
HOLD = """
UPDATE steps s SET status = 'WAITING', wait_reason = h.reason, wait_key = h.key, priority = h.priority,
       waiting_since = CASE WHEN s.status = 'WAITING' THEN s.waiting_since ELSE now() END,
       input = h.input, max_attempts = h.max_attempts, flow_keys = COALESCE(h.flow_keys, s.flow_keys),
       deadline = NULL, next_attempt_at = NULL, updated_at = now()
FROM json_to_recordset(%(rows)s::json) AS h(run_id uuid, name text, reason text, key text, priority int,
                                             input jsonb, max_attempts int, flow_keys text[])
WHERE s.run_id = h.run_id AND s.name = h.name AND s.status IN ('PENDING', 'FAILED', 'DEAD_LETTERED', 'WAITING')
"""


INSERT_RUN = """
WITH cur AS (
    SELECT max(version) AS v FROM workflows WHERE id = %(wf)s
), r AS (
    -- Only when %(v)s is still the latest version (the caller's hint may be stale: it retries).
    -- ON CONFLICT waits for a concurrent insert of the same key to commit: exactly one run per key.
    INSERT INTO runs (id, workflow_id, workflow_version, status, input, output, idempotency_key, request_hash,
                      finished_at, traceparent, priority, flow_keys, flow_admitted)
    SELECT %(id)s, %(wf)s, %(v)s, %(status)s, %(input)s::jsonb, %(output)s::jsonb, %(key)s, %(hash)s,
           CASE WHEN %(status)s = 'COMPLETED' THEN now() END, %(tp)s, %(priority)s, %(flow_keys)s::text[],
           %(admitted)s
    FROM cur WHERE cur.v = %(v)s
    ON CONFLICT (workflow_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, created_at
), s AS (
    INSERT INTO steps (run_id, name, position, action, status, attempt, max_attempts, timeout_ms, job_id, input,
                       deadline, flow_keys, wait_reason, wait_key, priority, waiting_since, queued_at,
                       dispatch_epoch, dispatch_seq, dispatch_trace)
    SELECT r.id, x.name, x.position, x.action, x.status, x.attempt, x.max_attempts, x.timeout_ms, x.job_id, x.input,
           x.deadline, x.flow_keys, x.reason, x.key, x.priority, CASE WHEN x.status = 'WAITING' THEN now() END,
           CASE WHEN x.status = 'QUEUED' THEN now() END, x.epoch, x.seq, x.trace
    FROM r, json_to_recordset(%(steps)s::json) AS x(name text, position int, action text, status text, attempt int,
                                                    max_attempts int, timeout_ms int, job_id text, input jsonb,
                                                    deadline timestamptz, flow_keys text[], reason text, key text,
                                                    priority int, epoch uuid, seq bigint, trace text)
), ob AS (
    INSERT INTO outbox (topic, key, value, headers, kind, run_id, step, job_id)
    SELECT o.topic, convert_to(o.key, 'UTF8'), convert_to(o.value, 'UTF8'), o.headers, o.kind, r.id, o.step, o.job_id
    FROM r, json_to_recordset(%(outbox)s::json)
         AS o(kind text, step text, job_id text, topic text, key text, value text, headers jsonb)
    RETURNING id, kind, job_id
), ev AS (
    INSERT INTO run_events (run_id, step, type, data)
    SELECT r.id, e.step, e.type, e.data
    FROM r, json_to_recordset(%(events)s::json) AS e(step text, type text, data jsonb)
), del AS (
    DELETE FROM outbox WHERE id = ANY(%(delete)s::bigint[])
), wm AS (
    UPDATE dispatchers SET acked_upto = %(acked)s, seen_at = now()
    WHERE %(acked)s::bigint IS NOT NULL AND epoch = %(epoch)s::uuid AND acked_upto < %(acked)s::bigint
)
SELECT (SELECT created_at FROM r), (SELECT coalesce(json_agg(json_build_array(id, kind, job_id)), '[]'::json) FROM ob),
       (SELECT v FROM cur),
       (SELECT count(pg_notify('baton_events_' || current_schema(), n)) FROM r, unnest(%(notes)s::text[]) n)
"""
