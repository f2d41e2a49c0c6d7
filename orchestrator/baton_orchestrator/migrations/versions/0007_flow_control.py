"""Flow control: concurrency slots, rate-limit buckets, priorities, steps held as WAITING.

Slots are not counted in a table of their own: a slot's holders are the rows that hold it (steps with the
key in `flow_keys` that are open or retrying, runs with it that are RUNNING and admitted), counted over
partial indexes under an advisory lock on the key. Every way a step or run ends frees its slot by
changing its status, so no code path can forget to give a slot back. Columns default to what a
workflow without flow control stores, so its hot path writes nothing new.

Revision ID: 0007
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE runs ADD COLUMN priority smallint NOT NULL DEFAULT 3,
                 ADD COLUMN flow_keys text[],
                 ADD COLUMN flow_admitted boolean NOT NULL DEFAULT true;
ALTER TABLE steps ADD COLUMN flow_keys text[],
                  ADD COLUMN wait_reason text,
                  ADD COLUMN wait_key text,
                  ADD COLUMN waiting_since timestamptz,
                  ADD COLUMN priority smallint;
CREATE INDEX steps_flow_keys ON steps USING gin (flow_keys)
    WHERE flow_keys IS NOT NULL AND status IN ('QUEUED', 'RUNNING', 'FAILED', 'WAITING');
CREATE INDEX runs_flow_keys ON runs USING gin (flow_keys) WHERE flow_keys IS NOT NULL AND status = 'RUNNING';
-- The release loop's queue, and the FIFO check of a rate-limited action.
CREATE INDEX steps_waiting ON steps (action, waiting_since) WHERE status = 'WAITING';

CREATE TABLE rate_limits (
    action      text             PRIMARY KEY,
    rate_per_s  double precision NOT NULL,
    burst       integer          NOT NULL,
    tokens      double precision NOT NULL,
    updated_at  timestamptz      NOT NULL DEFAULT clock_timestamp(),
    declared_by text             NOT NULL
);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS rate_limits;
DROP INDEX IF EXISTS steps_waiting, runs_flow_keys, steps_flow_keys;
ALTER TABLE steps DROP COLUMN IF EXISTS priority, DROP COLUMN IF EXISTS waiting_since,
                  DROP COLUMN IF EXISTS wait_key, DROP COLUMN IF EXISTS wait_reason, DROP COLUMN IF EXISTS flow_keys;
ALTER TABLE runs DROP COLUMN IF EXISTS flow_admitted, DROP COLUMN IF EXISTS flow_keys, DROP COLUMN IF EXISTS priority;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
