"""Initial schema: workflows, runs, steps, attempts, outbox, run_events, dead_letters.

Revision ID: 0001
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE workflows (
    id          text        NOT NULL,
    version     integer     NOT NULL,
    definition  jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (id, version)
);

CREATE TABLE runs (
    id               uuid        PRIMARY KEY,
    workflow_id      text        NOT NULL,
    workflow_version integer     NOT NULL,
    status           text        NOT NULL,
    input            jsonb,
    output           jsonb,
    error            jsonb,
    idempotency_key  text,
    request_hash     text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    FOREIGN KEY (workflow_id, workflow_version) REFERENCES workflows (id, version)
);
-- The truth behind Idempotency-Key when Redis is down or flushed: one run per (workflow, key).
CREATE UNIQUE INDEX runs_idempotency ON runs (workflow_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_list ON runs (created_at DESC, id DESC);
CREATE INDEX runs_by_workflow ON runs (workflow_id, created_at DESC, id DESC);

CREATE TABLE steps (
    run_id          uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name            text        NOT NULL,
    position        integer     NOT NULL,
    action          text        NOT NULL,
    status          text        NOT NULL,
    attempt         integer     NOT NULL DEFAULT 0,
    max_attempts    integer     NOT NULL,
    timeout_ms      integer     NOT NULL,
    job_id          text,
    input           jsonb,
    output          jsonb,
    error           jsonb,
    deadline        timestamptz,
    next_attempt_at timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (run_id, name)
);
-- Sweeps scan only open or retrying steps (partial indexes stay small).
CREATE INDEX steps_deadline ON steps (deadline) WHERE status IN ('QUEUED', 'RUNNING');
CREATE INDEX steps_retry_due ON steps (next_attempt_at) WHERE status = 'FAILED';

CREATE TABLE attempts (
    job_id       text        PRIMARY KEY,
    run_id       uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step         text        NOT NULL,
    attempt      integer     NOT NULL,
    status       text        NOT NULL,
    worker       jsonb,
    output       jsonb,
    error        jsonb,
    queued_at    timestamptz NOT NULL DEFAULT now(),
    started_at   timestamptz,
    finished_at  timestamptz,
    UNIQUE (run_id, step, attempt)
);

CREATE TABLE outbox (
    id          bigserial   PRIMARY KEY,
    topic       text        NOT NULL,
    key         bytea,
    value       bytea       NOT NULL,
    headers     jsonb       NOT NULL DEFAULT '[]',
    ref         text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE run_events (
    id       bigserial   PRIMARY KEY,
    run_id   uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step     text,
    type     text        NOT NULL,
    data     jsonb,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX run_events_by_run ON run_events (run_id, id);

CREATE TABLE dead_letters (
    id          bigserial   PRIMARY KEY,
    run_id      uuid        NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    step        text        NOT NULL,
    job_id      text        NOT NULL,
    action      text        NOT NULL,
    attempt     integer     NOT NULL,
    reason      text        NOT NULL,
    error       jsonb,
    input       jsonb,
    status      text        NOT NULL DEFAULT 'OPEN',
    created_at  timestamptz NOT NULL DEFAULT now(),
    resolved_at timestamptz
);
CREATE INDEX dead_letters_open ON dead_letters (id) WHERE status = 'OPEN';
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS dead_letters, run_events, outbox, attempts, steps, runs, workflows CASCADE")
