"""Alembic environment: runs the migrations over asyncpg, the driver the services already use."""

from __future__ import annotations

import asyncio
import functools

import asyncpg
from alembic import context
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from shared.migrate import configured_url


def _dsn() -> str:
    # `python -m shared.migrate` passes its URL; the alembic CLI (the guide's `alembic upgrade head`) reads
    # DATABASE_URL like every service, since alembic.ini names none.
    return context.config.get_main_option("sqlalchemy.url") or configured_url()


def _run(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=None, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    # asyncpg connects itself, from the DSN as the services read it (several hosts included).
    engine = create_async_engine("postgresql+asyncpg://", async_creator=functools.partial(asyncpg.connect, _dsn()))
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(dialect_name="postgresql", literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
