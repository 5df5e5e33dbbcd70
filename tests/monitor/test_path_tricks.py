"""Path tricks against the real monitor and api: control characters in a path are refused before any
guard or handler runs, whoever asks, and static files answer only deliberate JSON errors."""

from __future__ import annotations

import re

import aio_pika
import pytest
from aio_pika.abc import AbstractRobustConnection, FieldValue

from services.monitor.routes import ROUTES
from shared.broker import QUEUE_HEADER, REASON_HEADER, Broker
from shared.domain import Tier
from shared.topology import Topology
from tests.conftest import Client
from tests.harness.broker import queue_counts
from tests.harness.monitor import ADMIN, admin_post_headers

pytestmark = pytest.mark.integration

CONTROLS = ("%0A", "%0D", "%00")
# Dead letters whose keys are exactly what a tricked `{key}` decodes to: were any requeue handler
# reached, whether past the guard or with full credentials, its letter would leave the queue.
TRICKED_KEYS = ("x\n", "x\r", "x\x00", "x")


def fill(path: str, after: str = "", *, before: str = "") -> str:
    """The route's path with real-looking values for its parameters, a control character around each."""
    return re.sub(r"{(\w+)}", lambda m: before + ("dashboard.js" if m.group(1) == "name" else "x") + after, path)


def tricked(path: str, control: str) -> list[str]:
    """The route's path with a control character in each place a guard or router might read."""
    concrete = fill(path, "")
    head, _, last = concrete.rpartition("/")
    variants = {concrete + control, f"{head}/{control}{last}", f"{head}/{last}{control}/"}
    if head:
        variants.add(f"{head}{control}/{last}")
    if "{" in path:
        variants |= {fill(path, after=control), fill(path, before=control)}
    return sorted(variants)


ATTEMPTS = sorted({(method, variant) for method, path, _ in ROUTES for c in CONTROLS for variant in tricked(path, c)})


async def _dead_letters(broker: Broker, topology: Topology) -> None:
    for key in TRICKED_KEYS:
        headers: dict[str, FieldValue] = {
            QUEUE_HEADER: topology.work_queue(Tier.FREE),
            REASON_HEADER: "planted by the test",
        }
        message = aio_pika.Message(b"{}", message_id=key, headers=headers)
        await broker.channel.default_exchange.publish(message, routing_key=topology.dead_letter_queue)


def test_every_route_is_tried_with_every_control_character() -> None:
    for method, path, _ in ROUTES:
        for control in CONTROLS:
            assert any((method, variant) in ATTEMPTS for variant in tricked(path, control)), (path, control)
    assert ("POST", "/admin/queues/dead-letters/x%0A/requeue") in ATTEMPTS  # the reported one


async def test_control_characters_never_reach_a_guard_or_a_handler(
    monitor: Client, broker: Broker, amqp: AbstractRobustConnection, topology: Topology
) -> None:
    await _dead_letters(broker, topology)
    assert (await queue_counts(amqp, topology.dead_letter_queue))[0] == len(TRICKED_KEYS)
    admin = await admin_post_headers(monitor)
    for headers in ({}, admin):
        for method, path in ATTEMPTS:
            response = await monitor.request(method, path, headers=headers)
            assert response.status == 400, (method, path, response.status, await response.text())
            body = await response.json()
            assert body["error"]["code"] == "invalid_path", (method, path)
            assert set(body["error"]) <= {"code", "message", "field"}
    # Nothing was requeued or purged: every planted letter is still there, the work queue empty.
    assert (await queue_counts(amqp, topology.dead_letter_queue))[0] == len(TRICKED_KEYS)
    assert (await queue_counts(amqp, topology.work_queue(Tier.FREE)))[0] == 0
    # The same request without the trick, and without credentials, is the guard's 401.
    plain = await monitor.post("/admin/queues/dead-letters/x/requeue")
    assert plain.status == 401 and (await plain.json())["error"]["code"] == "unauthorized"
    assert (await queue_counts(amqp, topology.dead_letter_queue))[0] == len(TRICKED_KEYS)


async def test_a_percent_encoded_percent_is_just_a_character(monitor: Client) -> None:
    """`%250A` decodes to the text `%0A`, not a newline: it is routed, and guarded, as any other key."""
    response = await monitor.post("/admin/queues/dead-letters/x%250A/requeue")
    assert response.status == 401


@pytest.mark.parametrize(
    "path",
    [
        "/admin/static/nope.js",
        "/admin/static/",
        "/admin/static/dashboard.js/",
        "/admin/static/..%2F..%2Fsettings.py",
        "/admin/static/%2e%2e/auth.py",
        "/admin/static/..%5Cauth.py",
        "/admin/static/dashboard.js%20",
        "/admin/static/" + "a" * 2000,
        "/admin/static/%C3%A9.js",
        "/admin/nowhere",
    ],
)
async def test_static_tricks_are_deliberate_json_404s(monitor: Client, path: str) -> None:
    response = await monitor.get(path, headers=ADMIN)
    assert response.status == 404, await response.text()
    assert response.content_type == "application/json"
    assert (await response.json())["error"]["code"] == "not_found"
    anonymous = await monitor.get(path)  # and to a stranger, the same answer as any admin path
    assert anonymous.status == 401


@pytest.mark.parametrize(
    "headers",
    [
        {"Range": "bytes=999999-"},
        {"Range": "bytes=5-2"},
        {"Range": "lines=1-2"},
        {"If-Modified-Since": "not a date"},
        {"If-None-Match": 'W/"unterminated'},
        {"If-Range": "yesterday"},
    ],
    ids=["past-the-end", "backwards", "unknown-unit", "bad-date", "bad-etag", "bad-if-range"],
)
async def test_static_files_ignore_range_and_conditional_tricks(monitor: Client, headers: dict[str, str]) -> None:
    whole = await (await monitor.get("/admin/static/dashboard.js", headers=ADMIN)).read()
    response = await monitor.get("/admin/static/dashboard.js", headers={**ADMIN, **headers})
    assert response.status == 200
    assert await response.read() == whole
    assert response.headers["Content-Type"] == "application/javascript"


async def test_the_api_refuses_control_characters_in_paths_too(api: Client) -> None:
    for control in CONTROLS:
        for method, path in (
            ("GET", f"/jobs/{control}"),
            ("POST", f"/jobs/x{control}/cancel"),
            ("GET", f"/health{control}"),
        ):
            response = await api.request(method, path)
            assert response.status == 400, (method, path)
            assert (await response.json())["error"]["code"] == "invalid_path"
