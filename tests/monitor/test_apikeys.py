"""API keys from the admin side: created with the token shown once, listed without it, revoked for good."""

from __future__ import annotations

import pytest

from tests.conftest import Client
from tests.harness.monitor import ADMIN, admin_json, admin_post_headers

pytestmark = pytest.mark.integration


async def test_an_admin_creates_lists_and_revokes_a_key(monitor: Client, api: Client) -> None:
    headers = await admin_post_headers(monitor)

    created = await monitor.post("/admin/keys", json={"owner": "acme", "plan": "free", "name": "site"}, headers=headers)

    assert created.status == 201
    body = await created.json()
    token, key = body["token"], body["key"]
    assert token.startswith("lus_") and key["owner"] == "acme" and key["plan"] == "free"
    listed = await admin_json(monitor, "/admin/keys")
    assert [k["id"] for k in listed["keys"]].count(key["id"]) == 1
    assert token not in str(listed)
    assert (await api.get("/jobs", headers={"Authorization": f"Bearer {token}"})).status == 200

    revoked = await monitor.post(f"/admin/keys/{key['id']}/revoke", headers=headers)

    assert revoked.status == 200 and (await revoked.json())["key"]["revoked_at"]
    assert (await api.get("/jobs", headers={"Authorization": f"Bearer {token}"})).status == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"owner": "acme", "plan": "gold"}, "plan"),
        ({"owner": "", "plan": "free"}, "owner"),
        ({"owner": "a b", "plan": "free"}, "owner"),
        ({"owner": "acme", "plan": "free", "admin": True}, "admin"),
        ({"owner": "acme", "plan": "free", "requests_per_minute": 0}, "requests_per_minute"),
    ],
)
async def test_a_bad_key_request_is_422_naming_the_field(monitor: Client, body: dict[str, object], field: str) -> None:
    response = await monitor.post("/admin/keys", json=body, headers=await admin_post_headers(monitor))

    assert response.status == 422
    assert (await response.json())["error"]["field"] == field
    assert (await admin_json(monitor, "/admin/keys"))["keys"] == []


async def test_keys_need_the_admin_and_the_csrf_token(monitor: Client) -> None:
    assert (await monitor.get("/admin/keys")).status == 401
    refused = await monitor.post("/admin/keys", json={"owner": "acme", "plan": "free"}, headers=ADMIN)
    assert refused.status == 403
    assert (await admin_json(monitor, "/admin/keys"))["keys"] == []


async def test_revoking_what_does_not_exist_is_404(monitor: Client) -> None:
    headers = await admin_post_headers(monitor)

    missing = await monitor.post("/admin/keys/00000000-0000-4000-8000-000000000000/revoke", headers=headers)
    malformed = await monitor.post("/admin/keys/nope/revoke", headers=headers)

    assert missing.status == 404 and malformed.status == 422
