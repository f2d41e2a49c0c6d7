"""Tracing (R2.8): the run's trigger span context, so every later dispatch span of the run (results,
retries, timeouts, retry_run, DLQ redrive, other engine replicas) joins the run's one trace.

A nullable column without a default: adding it rewrites nothing, and a run from before (or triggered with
tracing off) simply has none.

Revision ID: 0006
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE runs ADD COLUMN traceparent text")


def downgrade() -> None:
    op.execute("ALTER TABLE runs DROP COLUMN IF EXISTS traceparent")
