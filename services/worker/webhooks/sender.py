"""One HTTP attempt at a webhook: signed per Standard Webhooks, to a public address only, timed.

The addresses a receiver's host resolves to are checked when the connection is made, not only when the
job named the URL: DNS may answer differently the second time (rebinding).
"""

from __future__ import annotations

import ipaddress
import math
import socket
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from standardwebhooks import Webhook

from shared.errors import InvalidField
from shared.events import WebhookDelivery
from shared.telemetry.logs import brief
from shared.webhooks.targets import ForbiddenTarget, check_addresses, parse_target

USER_AGENT = "Luster-Webhooks/1"
ERROR_MAX_CHARACTERS = 300


class AttemptOutcome(StrEnum):
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # any other answer, or none in time: worth another attempt
    GONE = "gone"  # 410: the receiver says this endpoint is no more; never again
    REFUSED = "refused"  # a target Luster must not call (a private address): never sent


@dataclass(frozen=True)
class Attempt:
    outcome: AttemptOutcome
    duration_ms: float
    response_status: int | None = None
    error: str | None = None


class GuardedResolver(AbstractResolver):
    """The default resolver, refusing hosts that resolve to addresses Luster must not call."""

    def __init__(self, *, allow_private: bool) -> None:
        self._inner = aiohttp.ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        check_addresses(host, (result["host"] for result in results), allow_private=self._allow_private)
        return results

    async def close(self) -> None:
        await self._inner.close()


def signed_headers(delivery: WebhookDelivery, secret: str, now: datetime) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(math.floor(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(delivery.webhook_id, now, delivery.body),
    }


class WebhookSender:
    """One HTTP session per worker process for every webhook it sends."""

    def __init__(self, *, timeout_s: float, allow_private: bool) -> None:
        self._allow_private = allow_private
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(allow_private=allow_private), limit=100)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=timeout_s), raise_for_status=False
        )

    async def close(self) -> None:
        await self._session.close()

    async def send(self, delivery: WebhookDelivery, secret: str) -> Attempt:
        started = time.perf_counter()
        try:
            self._check_literal_address(delivery.url)
            headers = signed_headers(delivery, secret, datetime.now(UTC))
            async with self._session.post(
                delivery.url, data=delivery.body.encode(), headers=headers, allow_redirects=False
            ) as response:
                status = response.status
        except (ForbiddenTarget, InvalidField) as error:
            return Attempt(AttemptOutcome.REFUSED, _ms_since(started), error=_text(error))
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            return Attempt(AttemptOutcome.FAILED, _ms_since(started), error=_text(error))
        return Attempt(_outcome_of(status), _ms_since(started), response_status=status)

    def _check_literal_address(self, url: str) -> None:
        """aiohttp connects to an IP address in the URL without asking the resolver: check it here."""
        host, _ = parse_target(url)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return  # a name: GuardedResolver checks what it resolves to
        check_addresses(host, [host], allow_private=self._allow_private)


def _outcome_of(status: int) -> AttemptOutcome:
    if 200 <= status < 300:
        return AttemptOutcome.DELIVERED
    return AttemptOutcome.GONE if status == 410 else AttemptOutcome.FAILED


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def _text(error: Any) -> str:
    message = error.message if isinstance(error, InvalidField) else brief(error)
    return str(message)[:ERROR_MAX_CHARACTERS]
