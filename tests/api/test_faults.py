"""The api's test-only fault hook: off without LUSTER_API_FAULTS, refused in production, and when on, a
request that asks for a fault gets it and is measured like any other."""

from __future__ import annotations

import pytest

from services.api import faults
from tests.harness.api import ApiFactory


def test_the_hook_is_off_unless_asked_for_and_refused_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faults.ENVIRONMENT_VARIABLE, raising=False)
    assert faults.hook("test") is None
    monkeypatch.setenv(faults.ENVIRONMENT_VARIABLE, "on")
    assert faults.hook("test") is faults.inject
    with pytest.raises(SystemExit, match="LUSTER_API_FAULTS"):
        faults.hook("production")


async def test_without_the_hook_the_header_means_nothing(
    api_factory: ApiFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(faults.ENVIRONMENT_VARIABLE, raising=False)
    api = await api_factory()
    assert (await api.get("/health", headers={faults.HEADER: "error"})).status == 200


async def test_with_the_hook_a_request_gets_the_fault_it_asks_for(
    api_factory: ApiFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(faults.ENVIRONMENT_VARIABLE, "on")
    api = await api_factory()
    response = await api.get("/health", headers={faults.HEADER: "error"})
    assert response.status == 500 and (await response.json())["error"]["code"] == "injected_fault"
    assert (await api.get("/health", headers={faults.HEADER: "slow=nonsense"})).status == 200
    assert (await api.get("/health")).status == 200
