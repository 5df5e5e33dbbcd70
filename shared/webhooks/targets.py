"""Which webhook targets Luster will call: no server-side request forgery.

A URL is checked when a job names it (its form, and every address its host resolves to now) and again
when a delivery connects (the addresses it resolves to then, since DNS may answer differently the
second time). Private, loopback, link-local and other non-global addresses are refused unless
`WEBHOOK_ALLOW_PRIVATE_TARGETS` says the receivers live on a private network (local development).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

from shared.errors import InvalidField

URL_MAX_LENGTH = 2048
RESOLVE_TIMEOUT_S = 3.0
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ForbiddenTarget(Exception):
    """A webhook target on an address Luster must not call."""


def is_public(address: IpAddress) -> bool:
    """True for an address on the public internet (an IPv4-mapped IPv6 address is judged as its IPv4)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def check_addresses(host: str, addresses: Iterable[str], *, allow_private: bool) -> None:
    """Raise ForbiddenTarget when any address `host` resolved to may not be called."""
    if allow_private:
        return
    for text in addresses:
        if not is_public(ipaddress.ip_address(text.split("%", 1)[0])):  # an IPv6 scope id is not part of it
            raise ForbiddenTarget(f"{host} resolves to {text}, which is not a public address")


def parse_target(url: str) -> tuple[str, int]:
    """The host and port of a webhook URL, or InvalidField naming what is wrong with it."""
    if len(url) > URL_MAX_LENGTH:
        raise InvalidField(f"webhook_url is longer than {URL_MAX_LENGTH} characters", field="webhook_url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise InvalidField(f"webhook_url is not a URL: {error}", field="webhook_url") from error
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidField("webhook_url must be an http or https URL with a host", field="webhook_url")
    if parts.username is not None or parts.password is not None:
        raise InvalidField("webhook_url must not carry credentials", field="webhook_url")
    if parts.fragment:
        raise InvalidField("webhook_url must not have a fragment", field="webhook_url")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def check_target(url: str, *, allow_private: bool) -> str:
    """`url` when Luster may deliver to it now; InvalidField naming the problem otherwise."""
    host, port = parse_target(url)
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as error:
        raise InvalidField(f"webhook_url's host {host} does not resolve", field="webhook_url") from error
    try:
        check_addresses(host, (str(info[4][0]) for info in infos), allow_private=allow_private)
    except ForbiddenTarget as error:
        raise InvalidField(f"webhook_url is refused: {error}", field="webhook_url") from error
    return url
