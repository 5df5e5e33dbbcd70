"""Login throttling, Basic credential parsing and the CSRF origin check, as plain functions."""

from __future__ import annotations

import base64

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from services.monitor.auth import client_of, credentials, is_admin
from services.monitor.csrf import same_origin, token_for
from services.monitor.settings import MonitorSettings
from services.monitor.throttle import FailureThrottle


def test_throttle_blocks_after_the_limit_until_the_window_passes() -> None:
    throttle = FailureThrottle(max_failures=3, window_s=60)
    for second in range(3):
        assert throttle.retry_after("1.2.3.4", second) is None
        throttle.failed("1.2.3.4", second)
    assert throttle.retry_after("1.2.3.4", 10) == 50
    assert throttle.retry_after("5.6.7.8", 10) is None  # per client
    assert throttle.retry_after("1.2.3.4", 60.5) is None  # the first failure has aged out


def test_a_success_clears_the_record() -> None:
    throttle = FailureThrottle(max_failures=2, window_s=60)
    throttle.failed("a", 0)
    throttle.succeeded("a")
    throttle.failed("a", 1)
    assert throttle.retry_after("a", 2) is None


def test_throttle_memory_is_bounded() -> None:
    throttle = FailureThrottle(max_failures=2, window_s=60, capacity=100)
    for i in range(1000):
        throttle.failed(f"10.0.{i // 256}.{i % 256}", i / 1000)
    assert len(throttle._failures) <= 100


def _request(**headers: str) -> web.Request:
    return make_mocked_request("POST", "/admin/x", headers={"Host": "monitor.example:8001", **headers})


def test_credentials_are_parsed_from_the_basic_header() -> None:
    encoded = base64.b64encode(b"admin:pa:ss").decode()
    assert credentials(_request(Authorization=f"Basic {encoded}")) == ("admin", "pa:ss")
    assert credentials(_request(Authorization="Bearer x")) is None
    assert credentials(_request(Authorization="Basic !!!")) is None
    assert credentials(_request()) is None


def test_both_username_and_password_must_match() -> None:
    settings = MonitorSettings(admin_password="s3cret-enough")
    assert is_admin(settings, "admin", "s3cret-enough")
    assert not is_admin(settings, "root", "s3cret-enough")
    assert not is_admin(settings, "admin", "s3cret-enougH")


def test_forwarded_for_is_trusted_only_when_configured() -> None:
    request = _request(**{"X-Forwarded-For": "6.6.6.6, 9.9.9.9"})
    assert client_of(request, trust_forwarded_for=True) == "9.9.9.9"  # what the proxy itself saw
    assert client_of(request, trust_forwarded_for=False) != "9.9.9.9"


def test_same_origin_check() -> None:
    assert same_origin(_request(Origin="http://monitor.example:8001"))
    assert same_origin(_request(Origin="https://monitor.example:8001"))  # TLS ends at the proxy
    assert not same_origin(_request(Origin="https://evil.example"))
    assert not same_origin(_request(Origin="null"))
    assert not same_origin(_request(Referer="https://evil.example/page"))
    assert same_origin(_request())  # curl: no Origin, but it still needs the token


def test_csrf_token_changes_with_the_password() -> None:
    assert token_for("admin", "one password") != token_for("admin", "another one")
    assert token_for("admin", "one password") == token_for("admin", "one password")
