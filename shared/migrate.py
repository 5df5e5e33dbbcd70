"""`python -m shared.migrate`: create the database when missing and bring its schema to head."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

from shared.db import ensure_database
from shared.settings import BaseServiceSettings, load_settings

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(dsn: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    driver_dsn = dsn.replace("postgresql://", "postgresql+asyncpg://", 1).replace(
        "postgres://", "postgresql+asyncpg://", 1
    )
    # Alembic's config is ConfigParser-based, so a literal % in a password must be doubled.
    config.set_main_option("sqlalchemy.url", driver_dsn.replace("%", "%%"))
    return config


def migrate(dsn: str) -> None:
    """Blocking: call from a thread when an event loop is already running."""
    asyncio.run(ensure_database(dsn))
    command.upgrade(alembic_config(dsn), "head")


def main() -> None:
    settings = load_settings(BaseServiceSettings)
    migrate(str(settings.database_url))
    print(f"luster: database {(settings.database_url.path or '/').lstrip('/')} is at the schema head")


if __name__ == "__main__":
    main()
