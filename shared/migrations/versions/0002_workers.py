"""Workers: liveness the sweeper can trust without the monitor.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("host", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
    )
    # The sweeper looks for processing jobs by age.
    op.create_index(
        "idx_jobs_processing_started", "jobs", ["started_at"], postgresql_where=sa.text("status = 'processing'")
    )


def downgrade() -> None:
    op.drop_index("idx_jobs_processing_started", "jobs")
    op.drop_table("workers")
