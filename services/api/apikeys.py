"""`python -m services.api.apikeys`: create, list and revoke API keys from a shell (DATABASE_URL from the environment).

    python -m services.api.apikeys create --owner acme --plan premium --name "acme website"
    python -m services.api.apikeys list [--owner acme]
    python -m services.api.apikeys revoke <key id>

`create` prints the token once, on its own line last: it is stored only as a hash.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid

import asyncpg

from shared import apikeys
from shared.apikeys import ApiKey
from shared.settings import BaseServiceSettings, load_settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m services.api.apikeys", description="Manage Luster API keys.")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print its token (shown this once)")
    create.add_argument("--owner", required=True, help="whose assets and jobs the key reaches")
    create.add_argument("--plan", required=True, choices=sorted(apikeys.PLANS), help="which tiers it may use")
    create.add_argument("--name", default="", help="what the key is for, shown in listings")
    create.add_argument("--requests-per-minute", type=int, help="uploads and jobs a minute (each)")
    create.add_argument("--jobs-in-flight", type=int, help="jobs queued or processing at once")
    create.add_argument("--bytes-per-day", type=int, help="bytes of photos stored a day")
    listing = commands.add_parser("list", help="list keys (never their tokens)")
    listing.add_argument("--owner")
    revoke = commands.add_parser("revoke", help="revoke a key at once, on every api instance")
    revoke.add_argument("key_id", type=uuid.UUID)
    return parser


def describe(key: ApiKey) -> str:
    state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M}" if key.revoked_at else "active"
    used = f"{key.last_used_at:%Y-%m-%d %H:%M}" if key.last_used_at else "never"
    return f"{key.id}  {key.prefix}…  {key.owner}  {key.plan}  {state}  last used {used}  {key.name}"


async def run(arguments: argparse.Namespace, dsn: str) -> int:
    connection = await asyncpg.connect(dsn)
    try:
        if arguments.command == "create":
            key, token = await apikeys.create_key(
                connection,
                owner=arguments.owner,
                name=arguments.name,
                plan=arguments.plan,
                requests_per_minute=arguments.requests_per_minute,
                jobs_in_flight=arguments.jobs_in_flight,
                bytes_per_day=arguments.bytes_per_day,
            )
            print(describe(key))
            print(token)
        elif arguments.command == "list":
            for key in await apikeys.list_keys(connection, owner=arguments.owner):
                print(describe(key))
        else:
            revoked = await apikeys.revoke(connection, arguments.key_id)
            if revoked is None:
                print(f"luster: no API key {arguments.key_id}", file=sys.stderr)
                return 1
            print(describe(revoked))
    finally:
        await connection.close()
    return 0


def main() -> None:
    arguments = _parser().parse_args()
    settings = load_settings(BaseServiceSettings)
    sys.exit(asyncio.run(run(arguments, str(settings.database_url.get_secret_value()))))


if __name__ == "__main__":
    main()
