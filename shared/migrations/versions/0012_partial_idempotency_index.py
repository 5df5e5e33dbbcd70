"""A job's Idempotency-Key is unique per owner through a partial index: only the jobs that have a key.

The UNIQUE constraint on (owner, idempotency_key) indexed every job, and most jobs are sent without a key.
NULLs never conflict, so those entries enforced nothing; they only cost, and on every write of a job: its
status moves change an indexed column, so none is a HOT update, and each of a job's three writes (queued,
processing, its outcome) added an entry to this index too. The partial index holds the keyed jobs alone
and refuses the same duplicates (a lookup by owner and key, `key = $2`, implies `key IS NOT NULL`, so it
plans on it as before).

Built concurrently, outside a transaction, before the constraint goes: writers are never blocked, and
uniqueness holds throughout. The previous release catches the same UniqueViolationError from either.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

CONSTRAINT = "jobs_owner_idempotency_key_key"
INDEX = "idx_jobs_owner_idempotency_key"


def upgrade() -> None:
    # No IF NOT EXISTS: a concurrent build that failed leaves an invalid index of this name behind, which a
    # rerun must not take for the real one before it drops the constraint. It stops instead, naming it.
    with op.get_context().autocommit_block():
        op.execute(
            f"CREATE UNIQUE INDEX CONCURRENTLY {INDEX} ON jobs (owner, idempotency_key)"
            " WHERE idempotency_key IS NOT NULL"
        )
    op.execute(f"ALTER TABLE jobs DROP CONSTRAINT IF EXISTS {CONSTRAINT}")


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {CONSTRAINT} ON jobs (owner, idempotency_key)")
    op.execute(f"ALTER TABLE jobs ADD CONSTRAINT {CONSTRAINT} UNIQUE USING INDEX {CONSTRAINT}")
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
