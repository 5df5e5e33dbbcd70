"""Around a job: a NOTIFY when it finishes, and an index for its place in its tier's queue.

The notification lets a client waiting on a job (`Prefer: wait`) cost no query until then. Only the move
into succeeded, failed or canceled notifies: one notification per job, whoever wrote it (a worker, the
sweeper, a cancel). NOTIFY is delivered at commit, after the row is visible. The previous release ignores
the notifications and the index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

CHANNEL = "luster_job_finished"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION luster_notify_job_finished() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', NEW.id::text);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER jobs_finished_notify AFTER UPDATE OF status ON jobs FOR EACH ROW
        WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.status IN ('succeeded', 'failed', 'canceled'))
        EXECUTE FUNCTION luster_notify_job_finished()
        """
    )

    # `queue_position` (shared/progress.py) counts a tier's queued jobs ahead of one: index-only with this.
    op.create_index(
        "idx_jobs_tier_queued",
        "jobs",
        ["tier", "held", "created_at", "id"],
        postgresql_where=sa.text("status = 'queued'"),
    )


def downgrade() -> None:
    op.drop_index("idx_jobs_tier_queued", "jobs")
    op.execute("DROP TRIGGER jobs_finished_notify ON jobs")
    op.execute("DROP FUNCTION luster_notify_job_finished()")
