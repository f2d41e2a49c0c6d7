"""Schedules and Kafka triggers: definitions the engine fires runs from.

`schedules.next_fire_at` is the next slot; the scheduler picks due rows with FOR UPDATE SKIP LOCKED and
advances it in the transaction that fires them, so replicas share the work. The run of a slot is found
by its Idempotency-Key (the runs table's unique index is the truth), `last_run_id` only answers the
overlap question cheaply. `kafka_triggers` rows are read by every engine every few seconds.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE schedules (
    id            text        PRIMARY KEY,
    workflow_id   text        NOT NULL,
    spec          jsonb       NOT NULL,
    paused        boolean     NOT NULL DEFAULT false,
    next_fire_at  timestamptz NOT NULL,
    queued_slot   timestamptz,
    last_run_id   uuid,
    last_fired_at timestamptz,
    last_error    jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- The scheduler's sweep reads only active rows in fire order.
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE NOT paused;

CREATE TABLE kafka_triggers (
    id          text        PRIMARY KEY,
    workflow_id text        NOT NULL,
    topic       text        NOT NULL,
    key_path    text,
    group_id    text        NOT NULL,
    start_from  text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS kafka_triggers, schedules")
