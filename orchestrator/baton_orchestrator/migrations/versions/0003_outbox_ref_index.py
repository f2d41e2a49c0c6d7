"""Index on outbox.ref: the timer sweep asks, for each attempt past its deadline, whether its job is
still in the outbox (never dispatched, so it cannot have timed out). A partial index of open runs:
/metrics counts them without scanning every run ever made.

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE INDEX IF NOT EXISTS outbox_ref ON outbox (ref)")
    op.execute("CREATE INDEX IF NOT EXISTS runs_open ON runs (status) WHERE status IN ('PENDING', 'RUNNING')")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS outbox_ref, runs_open")
