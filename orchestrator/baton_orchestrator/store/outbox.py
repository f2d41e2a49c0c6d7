"""Outbox statements outside the engine's batch (store/steps.py writes a batch's jobs and dead-letter copies).

A row says what it carries in typed columns: kind 'job' (a step's job: run_id, step, job_id set), 'dlt'
(a dead-letter copy of that job), or NULL (any other record, e.g. one added by the API).
"""

INSERT_OTHER = """
INSERT INTO outbox (topic, key, value, headers)
SELECT t, k, v, h::jsonb FROM unnest(%(topics)s::text[], %(keys)s::bytea[], %(vals)s::bytea[], %(headers)s::text[])
     AS x(t, k, v, h)
RETURNING id
"""

# The idle path: published rows no transaction carried, and the dispatch epoch's watermark when it moved.
DELETE_AND_SAVE = """
WITH del AS (DELETE FROM outbox WHERE id = ANY(%(ids)s::bigint[]))
UPDATE dispatchers SET acked_upto = %(acked)s, seen_at = now()
WHERE %(acked)s::bigint IS NOT NULL AND epoch = %(epoch)s::uuid AND acked_upto < %(acked)s::bigint
"""
