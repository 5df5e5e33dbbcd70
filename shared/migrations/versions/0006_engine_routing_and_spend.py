"""Engines a listing can trust: why a fallback engine ran, the structure guard's verdict, the paid spend.

Expand only: the previous release never writes the new columns (they default to "no fallback, not
checked, not flagged") and never reads the spend tables.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("fallback_reason", sa.Text, nullable=True))
    op.add_column("jobs", sa.Column("structure_score", sa.Float, nullable=True))
    op.add_column("jobs", sa.Column("flagged", sa.Boolean, nullable=False, server_default=sa.false()))
    # The dashboard's list of flagged jobs, newest first, without scanning every job.
    op.create_index("idx_jobs_flagged", "jobs", [sa.text("updated_at DESC")], postgresql_where=sa.text("flagged"))
    # What the paid engine was billed per UTC day: the daily budget's ledger, shared by every worker.
    op.create_table(
        "engine_spend",
        sa.Column("day", sa.Date, primary_key=True),
        sa.Column("spent_usd", sa.Numeric(14, 6), nullable=False, server_default="0"),
    )
    # A call in flight holds its worst-case cost against the day's budget until it settles; a worker that
    # dies mid-call leaves a hold that stops counting once it expires.
    op.create_table(
        "spend_holds",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("amount_usd", sa.Numeric(14, 6), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("idx_spend_holds_day", "spend_holds", ["day", "expires_at"])


def downgrade() -> None:
    op.drop_index("idx_spend_holds_day", "spend_holds")
    op.drop_table("spend_holds")
    op.drop_table("engine_spend")
    op.drop_index("idx_jobs_flagged", "jobs")
    op.drop_column("jobs", "flagged")
    op.drop_column("jobs", "structure_score")
    op.drop_column("jobs", "fallback_reason")
