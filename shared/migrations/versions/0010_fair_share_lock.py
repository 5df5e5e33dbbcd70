"""Fair share without a race: an owner's submissions decide `held` one at a time.

Counting an owner's queued jobs in the statement that inserts the next one let submissions that raced
each see room, so a backlog sent many at once passed its share by as many as ran together. The function
takes the owner's transaction-scoped advisory lock, then counts; being VOLATILE, its count reads a
snapshot taken after the lock, so it sees the submission that held the lock before it, committed. Other
owners never wait.

Expand only: the previous release does not call it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE FUNCTION luster_over_fair_share(job_owner text, job_tier text, cap integer) RETURNS boolean
        LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
            IF cap <= 0 THEN
                RETURN false;
            END IF;
            PERFORM pg_advisory_xact_lock(hashtextextended('luster.fair_share/' || job_owner, 0));
            RETURN (
                SELECT count(*) FROM jobs
                WHERE owner = job_owner AND tier = job_tier AND status = 'queued' AND NOT held
            ) >= cap;
        END
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP FUNCTION luster_over_fair_share(text, text, integer)")
