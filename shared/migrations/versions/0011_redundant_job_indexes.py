"""Two indexes of `jobs` that others already serve: idx_jobs_status and idx_jobs_created_at.

Each is the leading column of a wider index of the same rows (idx_jobs_status_created_id,
idx_jobs_created_id): any scan one of them served, the wider one serves, so they only cost. And they
cost on every write of a job: its status moves change an indexed column, so none is a HOT update, and
each of a job's three writes (queued, processing, its outcome) added an entry to both. Without them a
job's life writes about 8 % less WAL (bench notes in docs/scale.md).

Dropped concurrently, outside a transaction: writers are never blocked. Contract only in name: the
previous release's queries plan on the wider indexes alike.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

REDUNDANT = {"idx_jobs_status": "status", "idx_jobs_created_at": "created_at"}


def upgrade() -> None:
    with op.get_context().autocommit_block():
        for name in REDUNDANT:
            op.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        for name, column in REDUNDANT.items():
            op.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON jobs ({column})")
