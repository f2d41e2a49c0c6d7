"""Hot-path tables without foreign-key checks: steps, attempts and run_events no longer reference runs.

Every row of these tables is written by the engine for a run it has just created or locked in the
same transaction, so the reference holds by construction. The checks were not free: each inserted row
ran a lookup of its run and took a KEY SHARE lock on it (a WAL record), which made them the largest
share of PostgreSQL's work per step after the step updates themselves (docs/design-notes.md).
Nothing deletes runs, so the ON DELETE CASCADE they carried was unused.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLES = ("steps", "attempts", "run_events")


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {table}_run_id_fkey")


def downgrade() -> None:
    for table in TABLES:
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {table}_run_id_fkey "
            "FOREIGN KEY (run_id) REFERENCES runs (id) ON DELETE CASCADE"
        )
