"""Customers: API keys, an owner on every asset and job, per-owner idempotency keys, rate-limit windows.

Expand only: the previous release keeps working against this schema during a rollout (its INSERTs
get the default owner; it never reads the new columns).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import os

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Rows from before owners existed belong to this owner (DEFAULT_OWNER when migrating, else "default").
DEFAULT_OWNER = os.environ.get("DEFAULT_OWNER") or "default"


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        # The first characters of the token, shown in listings so a key can be recognised, never used alone.
        sa.Column("prefix", sa.Text, nullable=False),
        # SHA-256 of the whole token: a random 256-bit secret needs no slow hash to resist guessing.
        sa.Column("token_sha256", sa.LargeBinary, nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("plan", sa.Text, nullable=False),
        sa.Column("requests_per_minute", sa.Integer, nullable=True),
        sa.Column("jobs_in_flight", sa.Integer, nullable=True),
        sa.Column("bytes_per_day", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("idx_api_keys_owner", "api_keys", ["owner"])
    for table in ("assets", "jobs"):
        op.add_column(table, sa.Column("owner", sa.Text, nullable=False, server_default=DEFAULT_OWNER))
    op.create_index("idx_assets_owner_created", "assets", ["owner", "created_at"])
    op.create_index("idx_jobs_owner_created_id", "jobs", ["owner", sa.text("created_at DESC"), sa.text("id DESC")])
    op.create_index(
        "idx_jobs_owner_in_flight", "jobs", ["owner"], postgresql_where=sa.text("status IN ('queued', 'processing')")
    )
    # An idempotency key is one owner's: two customers may pick the same one.
    op.drop_constraint("jobs_idempotency_key_key", "jobs", type_="unique")
    op.create_unique_constraint("jobs_owner_idempotency_key_key", "jobs", ["owner", "idempotency_key"])
    op.create_table(
        "rate_windows",
        sa.Column("key_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("api_keys.id", ondelete="CASCADE")),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("key_id", "action", "window_start"),
    )


def downgrade() -> None:
    op.drop_table("rate_windows")
    op.drop_constraint("jobs_owner_idempotency_key_key", "jobs", type_="unique")
    op.create_unique_constraint("jobs_idempotency_key_key", "jobs", ["idempotency_key"])
    op.drop_index("idx_jobs_owner_in_flight", "jobs")
    op.drop_index("idx_jobs_owner_created_id", "jobs")
    op.drop_index("idx_assets_owner_created", "assets")
    for table in ("assets", "jobs"):
        op.drop_column(table, "owner")
    op.drop_table("api_keys")
