"""A queued step is its own job's outbox entry: (dispatch_epoch, dispatch_seq) and `dispatchers`.

Queueing a job writes no outbox row and its acknowledgement deletes none (engine/epoch.py): the step
row names the process epoch that queued it and its seq there; `dispatchers` holds each epoch's
acknowledged watermark. The relay finds unacknowledged jobs with steps_dispatch. Job rows left in the
outbox by the previous version become steps of a placeholder epoch that no process holds, so the first
relay adopts and resends them.

Revision ID: 0009
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

LEGACY = "00000000-0000-0000-0000-000000000000"

UPGRADE = f"""
-- dispatch_trace: the traceparent naming the job's dispatch span (tracing on), for a resend by the relay.
ALTER TABLE steps ADD COLUMN dispatch_epoch uuid, ADD COLUMN dispatch_seq bigint, ADD COLUMN dispatch_trace text;
CREATE INDEX steps_dispatch ON steps (dispatch_epoch, dispatch_seq) WHERE status = 'QUEUED';
CREATE TABLE dispatchers (
    epoch uuid PRIMARY KEY,
    acked_upto bigint NOT NULL DEFAULT 0,
    seen_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO dispatchers (epoch, acked_upto) VALUES ('{LEGACY}', 0);
UPDATE steps s SET dispatch_epoch = '{LEGACY}', dispatch_seq = o.id
FROM outbox o WHERE o.kind = 'job' AND o.job_id = s.job_id AND s.status = 'QUEUED';
DELETE FROM outbox WHERE kind = 'job';
"""

DOWNGRADE = """
DROP TABLE dispatchers;
DROP INDEX steps_dispatch;
ALTER TABLE steps DROP COLUMN dispatch_epoch, DROP COLUMN dispatch_seq, DROP COLUMN dispatch_trace;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
