"""Around a batch: a NOTIFY whenever one of its jobs changes status.

`GET /batches/{id}/events` streams a listing's progress from one LISTEN connection per api process
(shared/batchwatch.py), so a follower costs no query until one of its jobs moves. Any move of a job
that belongs to a batch notifies, with the batch's id: several moves of one batch in one transaction
are folded into one notification by PostgreSQL (same channel, same payload). NOTIFY is delivered at
commit, after the rows are visible. The previous release ignores the notifications.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

CHANNEL = "luster_batch_changed"


def upgrade() -> None:
    op.execute(
        f"""
        CREATE FUNCTION luster_notify_batch_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', NEW.batch_id::text);
            RETURN NULL;
        END
        $$
        """
    )
    op.execute(
        """
        CREATE TRIGGER jobs_batch_changed_notify AFTER UPDATE OF status ON jobs FOR EACH ROW
        WHEN (OLD.status IS DISTINCT FROM NEW.status AND NEW.batch_id IS NOT NULL)
        EXECUTE FUNCTION luster_notify_batch_changed()
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER jobs_batch_changed_notify ON jobs")
    op.execute("DROP FUNCTION luster_notify_batch_changed()")
