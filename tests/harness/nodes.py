"""A plain broker connection for a test's own use, to whichever node of AMQP_URL answers."""

from __future__ import annotations

import contextlib

import aio_pika
from aio_pika.abc import AbstractConnection


async def connect_any(amqp_url: str, *, name: str) -> AbstractConnection:
    """A plain connection to the first node of `amqp_url` (one URL, or a cluster's, comma-separated) that answers."""
    addresses = amqp_url.split(",")
    for address in addresses[:-1]:
        with contextlib.suppress(Exception):
            return await aio_pika.connect(address, timeout=5, client_properties={"connection_name": name})
    return await aio_pika.connect(addresses[-1], timeout=5, client_properties={"connection_name": name})
