"""Index job_events by time: the monitor rebuilds its last hour from them at every start.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("idx_job_events_created_at", "job_events", ["created_at"])


def downgrade() -> None:
    op.drop_index("idx_job_events_created_at", "job_events")
