"""Around a job: signed completion webhooks and whole listings (batches).

Expand only: the previous release never reads the new columns and tables, and a job it writes has no
webhook, no batch and no key recorded (so it is never announced to a receiver).

- `jobs.api_key_id`: the key that submitted the job, whose signing secret signs its webhooks.
- `jobs.webhook_url`, `jobs.webhook_events`: where to announce the job's state changes, and which.
- `api_keys.webhook_secret`: the Standard Webhooks secret (`whsec_` + base64 of 32 random bytes) a
  receiver verifies with. It has to be readable to sign, so it is stored as it is: it only lets someone
  forge deliveries to this owner's receivers, and rotating it is one call.
- `webhook_deliveries`: one row per delivery attempt, shown on the job (or batch).
- `batches`, `jobs.batch_id`: a listing's photos submitted and followed together.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# 32 random bytes for the keys that exist already: two version-4 UUIDs' worth (244 random bits).
BACKFILL_SECRET = """'whsec_' || encode(decode(
    replace(gen_random_uuid()::text, '-', '') || replace(gen_random_uuid()::text, '-', ''), 'hex'), 'base64')"""


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("webhook_secret", sa.Text, nullable=True))
    op.execute(f"UPDATE api_keys SET webhook_secret = {BACKFILL_SECRET}")
    op.alter_column("api_keys", "webhook_secret", nullable=False)

    op.create_table(
        "batches",
        sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("api_key_id", postgresql.UUID(as_uuid=True), nullable=True),
        sa.Column("idempotency_key", sa.Text, nullable=True),
        sa.Column("request_fingerprint", sa.Text, nullable=True),
        sa.Column("webhook_url", sa.Text, nullable=True),
        sa.Column("webhook_events", postgresql.ARRAY(sa.Text), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        # Set once, by whoever finishes its last job: the batch.completed webhook is staged with it.
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("owner", "idempotency_key", name="batches_owner_idempotency_key_key"),
    )
    op.create_index("idx_batches_owner_created", "batches", ["owner", sa.text("created_at DESC"), sa.text("id DESC")])

    op.add_column("jobs", sa.Column("api_key_id", postgresql.UUID(as_uuid=True), nullable=True))
    op.add_column("jobs", sa.Column("webhook_url", sa.Text, nullable=True))
    op.add_column("jobs", sa.Column("webhook_events", postgresql.ARRAY(sa.Text), nullable=True))
    op.add_column(
        "jobs",
        sa.Column(
            "batch_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("batches.id", ondelete="CASCADE"), nullable=True
        ),
    )
    op.create_index("idx_jobs_batch", "jobs", ["batch_id"], postgresql_where=sa.text("batch_id IS NOT NULL"))

    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("job_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("jobs.id", ondelete="CASCADE")),
        sa.Column("batch_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("batches.id", ondelete="CASCADE")),
        # The Standard Webhooks `webhook-id`: one per message, the same on every attempt to deliver it.
        sa.Column("webhook_id", sa.Text, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("response_status", sa.Integer, nullable=True),
        sa.Column("duration_ms", sa.Float, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("idx_webhook_deliveries_job", "webhook_deliveries", ["job_id", "id"])
    op.create_index("idx_webhook_deliveries_batch", "webhook_deliveries", ["batch_id", "id"])


def downgrade() -> None:
    op.drop_table("webhook_deliveries")
    op.drop_index("idx_jobs_batch", "jobs")
    for column in ("batch_id", "webhook_events", "webhook_url", "api_key_id"):
        op.drop_column("jobs", column)
    op.drop_table("batches")
    op.drop_column("api_keys", "webhook_secret")
