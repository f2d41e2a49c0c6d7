"""Flow control's statements (engine/gate.py decides with them): key locks, slot counts, tokens, held steps.

Slots are derived from the steps and runs carrying a key (a partial GIN index on `flow_keys`), counted
under an advisory lock per key taken in one sorted order; tokens are `rate_limits` rows refilled lazily
by the UPDATE that takes them.
"""

# The one replica releasing held steps this tick (pg_try_advisory_xact_lock).
RELEASER_LOCK_ID = 0x62746E67617465
TRY_RELEASER_LOCK = "SELECT pg_try_advisory_xact_lock(%s)"

LOCK_KEYS = """
SELECT pg_advisory_xact_lock(h)
FROM (SELECT DISTINCT hashtextextended(k, 7) AS h FROM unnest(%s::text[]) k ORDER BY 1) x
"""
# Holders of a step slot, and steps waiting for it (FIFO): over the partial GIN index on flow_keys.
STEP_COUNTS = """
SELECT k,
  (SELECT count(*) FROM steps s JOIN runs r ON r.id = s.run_id
   WHERE s.flow_keys @> ARRAY[k] AND s.flow_keys IS NOT NULL
     AND s.status IN ('QUEUED', 'RUNNING', 'FAILED', 'WAITING')
     AND (s.status IN ('QUEUED', 'RUNNING')
          OR (r.status = 'RUNNING'
              AND (s.status = 'FAILED' OR (s.status = 'WAITING' AND s.wait_reason = 'rate_limit'))))),
  (SELECT count(*) FROM steps s JOIN runs r ON r.id = s.run_id
   WHERE s.flow_keys @> ARRAY[k] AND s.flow_keys IS NOT NULL
     AND s.status IN ('QUEUED', 'RUNNING', 'FAILED', 'WAITING')
     AND s.status = 'WAITING' AND s.wait_reason = 'concurrency' AND r.status = 'RUNNING')
FROM unnest(%s::text[]) k
"""
RUN_COUNTS = """
SELECT k,
  (SELECT count(*) FROM runs r WHERE r.flow_keys @> ARRAY[k] AND r.flow_keys IS NOT NULL AND r.status = 'RUNNING'
     AND r.flow_admitted),
  (SELECT count(*) FROM runs r WHERE r.flow_keys @> ARRAY[k] AND r.flow_keys IS NOT NULL AND r.status = 'RUNNING'
     AND NOT r.flow_admitted)
FROM unnest(%s::text[]) k
"""
# Refill lazily, then take up to n tokens per action; with fifo, none while steps wait for that action.
TAKE_TOKENS = """
WITH want AS (
    SELECT w.action,
           CASE WHEN %(fifo)s AND EXISTS (
               SELECT 1 FROM steps s JOIN runs r ON r.id = s.run_id
               WHERE s.status = 'WAITING' AND s.action = w.action AND s.wait_reason = 'rate_limit'
                 AND r.status = 'RUNNING') THEN 0 ELSE w.n END AS n
    FROM json_to_recordset(%(want)s::json) AS w(action text, n int)
), b AS (
    SELECT b.action, w.n, clock_timestamp() AS t,
           least(b.burst::float8, b.tokens + b.rate_per_s
                 * greatest(0, extract(epoch FROM clock_timestamp() - b.updated_at))::float8) AS avail
    FROM rate_limits b JOIN want w ON w.action = b.action
    ORDER BY b.action FOR UPDATE OF b
)
UPDATE rate_limits r SET tokens = b.avail - least(b.n, floor(b.avail)), updated_at = b.t
FROM b WHERE r.action = b.action
RETURNING r.action, least(b.n, floor(b.avail))::int
"""
WAITING = """
SELECT s.run_id::text AS run_id, s.name, s.action, s.attempt, s.max_attempts, s.input, s.timeout_ms, s.flow_keys,
       s.wait_reason, s.priority, r.workflow_id, r.workflow_version, r.input AS run_input, r.traceparent
FROM steps s JOIN runs r ON r.id = s.run_id
WHERE s.status = 'WAITING' AND r.status = 'RUNNING'
ORDER BY s.priority + floor(extract(epoch FROM now() - s.waiting_since) / %(aging)s) DESC, s.waiting_since,
         s.run_id, s.name
LIMIT %(limit)s
"""
ADMIT_RUN = """
UPDATE runs SET flow_admitted = true
WHERE id = (SELECT id FROM runs WHERE id = %s AND status = 'RUNNING' FOR UPDATE SKIP LOCKED)
"""
