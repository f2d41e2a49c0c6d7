"""Every statement that appends to run_events notifies `baton_events_<schema>`: API processes LISTEN, so
a waiting request or a dashboard stream is woken by the commit that changed its run (any engine replica,
any process), never by polling the database.

One notification per 25 events (a payload must stay under PostgreSQL's 8,000 bytes: step names are at
most 200 characters); each line is "<run_id> <event type> <step or empty>". Delivered at commit, dropped
on rollback.

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE OR REPLACE FUNCTION baton_notify_run_events() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    chunk text;
BEGIN
    FOR chunk IN
        SELECT string_agg(run_id::text || ' ' || type || ' ' || coalesce(step, ''), E'\\n')
        FROM (SELECT run_id, type, step, (row_number() OVER ()) / 25 AS n FROM new_rows) r
        GROUP BY n
    LOOP
        PERFORM pg_notify('baton_events_' || current_schema(), chunk);
    END LOOP;
    RETURN NULL;
END
$$;
CREATE TRIGGER run_events_notify AFTER INSERT ON run_events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION baton_notify_run_events();
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS run_events_notify ON run_events")
    op.execute("DROP FUNCTION IF EXISTS baton_notify_run_events()")
