"""Credentials for system tests that must never leak: a RabbitMQ user of the test's own, and every
secret setting filled with a value distinctive enough to be found anywhere it escapes to."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True)
class Secrets:
    db_password: str
    broker_user: str
    broker_password: str
    sentry_key: str
    otlp_token: str
    openai_key: str
    admin_password: str

    def values(self) -> dict[str, str]:
        """What must appear nowhere (the broker user name is not a secret)."""
        return {
            "database password": self.db_password,
            "broker password": self.broker_password,
            "Sentry DSN key": self.sentry_key,
            "OTLP header token": self.otlp_token,
            "OpenAI key": self.openai_key,
            "admin password": self.admin_password,
        }


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)


def new_secrets() -> Secrets:
    def token(label: str) -> str:
        return f"{label}{secrets.token_hex(12)}"

    return Secrets(
        db_password=token("dbpw"),
        broker_user=f"luster-test-{secrets.token_hex(4)}",
        broker_password=token("mqpw"),
        sentry_key=secrets.token_hex(16),
        otlp_token=token("otlp"),
        openai_key=f"sk-{token('openai')}",
        admin_password=token("admin"),
    )


@contextmanager
def rabbitmq_user(user: str, password: str) -> Iterator[None]:
    """A broker user of the test's own (the local broker's guest has no secret password to look for)."""
    _rabbitmqctl("add_user", user, password)
    try:
        _rabbitmqctl("set_permissions", "-p", "/", user, ".*", ".*", ".*")
        yield
    finally:
        _rabbitmqctl("delete_user", user)


def with_password(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.hostname}:{parts.port}"))


def environment(base: dict[str, str], found: Secrets, *, sentry_dsn: str, otlp_url: str) -> dict[str, str]:
    """The services' environment with every credential set, each to its distinctive value."""
    dsn = urlsplit(sentry_dsn)
    return {
        **base,
        "DATABASE_URL": with_password(base["DATABASE_URL"], "postgres", found.db_password),  # trust auth ignores it
        "AMQP_URL": with_password(base["AMQP_URL"], found.broker_user, found.broker_password),
        "SENTRY_DSN": urlunsplit(dsn._replace(netloc=f"{found.sentry_key}@{dsn.hostname}:{dsn.port}")),
        "SENTRY_TRACES_SAMPLE_RATE": "1.0",
        "OTLP_ENDPOINT": otlp_url,
        "OTLP_HEADERS": f"Authorization=Bearer {found.otlp_token}",
        "OPENAI_API_KEY": found.openai_key,
        "ADMIN_PASSWORD": found.admin_password,
    }
