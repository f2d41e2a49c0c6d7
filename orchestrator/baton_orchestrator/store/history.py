"""A run's history: finished attempts (`attempts`, one row when an attempt ends) and run-level events.

A step's open attempt lives in its `steps` row (migration 0008); store/steps.py's flush appends an attempt
when it ends, and the run detail (store/queries.py) lists both.
"""

INSERT_RUN_EVENTS = """
INSERT INTO run_events (run_id, step, type, data)
SELECT r, s, t, d::jsonb FROM unnest(%(runs)s::uuid[], %(steps)s::text[], %(types)s::text[], %(data)s::text[])
     AS x(r, s, t, d)
"""

# A cancelled run's open attempts go to the history as they stood (QUEUED or RUNNING, never finished: their
# late results are no-ops), since their steps stop holding them. Run before the steps become CANCELLED.
CANCEL_OPEN_ATTEMPTS = """
INSERT INTO attempts (job_id, run_id, step, attempt, status, worker, queued_at, started_at)
SELECT job_id, run_id, name, attempt, status, worker, COALESCE(queued_at, now()), started_at
FROM steps WHERE run_id = %(id)s AND status IN ('QUEUED', 'RUNNING') AND job_id IS NOT NULL
ON CONFLICT (job_id) DO NOTHING
"""
