"""The current attempt lives in its step; `attempts` holds finished attempts; the outbox says what a row is.

A queued step row carries its open attempt (queued_at, started_at, worker next to job_id and attempt), so
queueing a job writes no attempts row and a heartbeat updates one row; an attempt is appended to
`attempts` once, when it ends (completed, failed, timed out, dead-lettered, cancelled). The run detail
lists `attempts` plus the step's open attempt.

Outbox rows name what they carry in typed columns (kind 'job' or 'dlt', run_id, step, job_id) instead of
a `ref` string parsed in SQL; the timer sweep's "is this job still undelivered" probe uses outbox_job.

Revision ID: 0008
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE steps ADD COLUMN queued_at timestamptz, ADD COLUMN started_at timestamptz, ADD COLUMN worker jsonb;
UPDATE steps s SET queued_at = a.queued_at, started_at = a.started_at, worker = a.worker
FROM attempts a WHERE a.job_id = s.job_id AND s.status IN ('QUEUED', 'RUNNING');
DELETE FROM attempts a USING steps s
WHERE a.job_id = s.job_id AND s.status IN ('QUEUED', 'RUNNING') AND a.status IN ('QUEUED', 'RUNNING');

ALTER TABLE outbox ADD COLUMN kind text, ADD COLUMN run_id uuid, ADD COLUMN step text, ADD COLUMN job_id text;
UPDATE outbox o SET kind = split_part(o.ref, ':', 1), job_id = substr(o.ref, 5) WHERE o.ref ~ '^(job|dlt):';
UPDATE outbox o SET run_id = s.run_id, step = s.name FROM steps s WHERE o.kind IS NOT NULL AND s.job_id = o.job_id;
DROP INDEX IF EXISTS outbox_ref;
ALTER TABLE outbox DROP COLUMN ref;
CREATE INDEX outbox_job ON outbox (job_id) WHERE job_id IS NOT NULL;
"""

DOWNGRADE = """
ALTER TABLE outbox ADD COLUMN ref text;
UPDATE outbox SET ref = kind || ':' || job_id WHERE kind IS NOT NULL;
DROP INDEX IF EXISTS outbox_job;
ALTER TABLE outbox DROP COLUMN kind, DROP COLUMN run_id, DROP COLUMN step, DROP COLUMN job_id;
CREATE INDEX outbox_ref ON outbox (ref);
INSERT INTO attempts (job_id, run_id, step, attempt, status, worker, queued_at, started_at)
SELECT job_id, run_id, name, attempt, status, worker, coalesce(queued_at, now()), started_at FROM steps
WHERE status IN ('QUEUED', 'RUNNING') AND job_id IS NOT NULL ON CONFLICT DO NOTHING;
ALTER TABLE steps DROP COLUMN worker, DROP COLUMN started_at, DROP COLUMN queued_at;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
