"""Fair share: a job may wait in PostgreSQL, held, until its owner has room in the work queues.

Expand only: rows the previous release writes are not held (both columns default to "not held"), so
during a rollout its jobs go to the broker at once, as they always did.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("held", sa.Boolean, nullable=False, server_default=sa.false()))
    # The job whose release this outbox row waits for; the relay leaves the row alone until then.
    op.add_column("outbox", sa.Column("held_job", postgresql.UUID(as_uuid=True), nullable=True))
    # An owner's queued jobs of a tier, split by held: how many are in the broker, which goes next.
    op.create_index(
        "idx_jobs_owner_tier_queued",
        "jobs",
        ["owner", "tier", "held", "created_at"],
        postgresql_where=sa.text("status = 'queued'"),
    )
    op.create_index("idx_jobs_held", "jobs", ["owner", "tier"], postgresql_where=sa.text("held"))
    op.create_index("idx_outbox_held_job", "outbox", ["held_job"], postgresql_where=sa.text("held_job IS NOT NULL"))


def downgrade() -> None:
    op.drop_index("idx_outbox_held_job", "outbox")
    op.drop_index("idx_jobs_held", "jobs")
    op.drop_index("idx_jobs_owner_tier_queued", "jobs")
    op.drop_column("outbox", "held_job")
    op.drop_column("jobs", "held")
