"""Login throttling, client addresses behind proxies, Basic credential parsing, CSRF sessions and the
origin check, as plain functions."""

from __future__ import annotations

import base64
from ipaddress import ip_network
from unittest import mock

from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from multidict import CIMultiDict

from services.monitor.admin.auth import client_of, credentials, is_admin
from services.monitor.admin.csrf import Sessions, same_origin
from services.monitor.admin.throttle import FailureThrottle, LoginThrottle
from services.monitor.settings import MonitorSettings

PROXY = (ip_network("10.0.0.0/8"),)


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
    assert throttle.clients <= 100


def test_per_user_name_lockout_spans_client_addresses() -> None:
    throttle = LoginThrottle(per_client=3, per_user=4, window_s=60)
    for second, client in enumerate(("1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4")):
        assert throttle.retry_after(client, "admin", second) is None
        throttle.failed(client, "admin", second)
    assert throttle.retry_after("5.5.5.5", "admin", 10) == 50  # a fresh address, the same name
    assert throttle.retry_after("5.5.5.5", "someone", 10) is None
    throttle.succeeded("5.5.5.5")  # the operator's own login does not reset a guesser's count
    assert throttle.retry_after("5.5.5.5", "admin", 11) is not None


def _request(*, peer: str = "127.0.0.1", forwarded: tuple[str, ...] = (), **headers: str) -> web.Request:
    all_headers = CIMultiDict({"Host": "monitor.example:8001", **headers})
    for value in forwarded:
        all_headers.add("X-Forwarded-For", value)
    transport = mock.Mock()  # make_mocked_request's own device: the socket peer a request came from
    transport.get_extra_info.side_effect = lambda name, default=None: (peer, 40000) if name == "peername" else default
    return make_mocked_request("POST", "/admin/x", headers=all_headers, transport=transport)


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


def test_forwarded_for_counts_only_from_a_trusted_proxy() -> None:
    from_proxy = _request(peer="10.1.2.3", forwarded=("6.6.6.6, 9.9.9.9",))
    assert client_of(from_proxy, trusted_proxies=PROXY) == "9.9.9.9"  # what the proxy itself saw
    assert client_of(from_proxy, trusted_proxies=()) == "10.1.2.3"  # no proxies configured: the peer
    stranger = _request(peer="203.0.113.7", forwarded=("9.9.9.9",))
    assert client_of(stranger, trusted_proxies=PROXY) == "203.0.113.7"  # anyone can write the header


def test_forwarded_for_is_read_from_the_right_past_our_own_proxies() -> None:
    chain = _request(peer="10.0.0.1", forwarded=("6.6.6.6, 9.9.9.9", "10.0.0.2"))  # two headers, two proxies
    assert client_of(chain, trusted_proxies=PROXY) == "9.9.9.9"
    only_proxies = _request(peer="10.0.0.1", forwarded=("10.0.0.3",))
    assert client_of(only_proxies, trusted_proxies=PROXY) == "10.0.0.3"
    assert client_of(_request(peer="10.0.0.1"), trusted_proxies=PROXY) == "10.0.0.1"


def test_trusted_proxies_setting_takes_cidrs() -> None:
    settings = MonitorSettings(trusted_proxies="10.0.0.0/8, 2001:db8::/32 ,192.0.2.1")
    assert [str(network) for network in settings.trusted_proxies] == ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1/32"]
    assert MonitorSettings().trusted_proxies == ()


def test_same_origin_check() -> None:
    assert same_origin(_request(Origin="http://monitor.example:8001"))
    assert same_origin(_request(Origin="https://monitor.example:8001"))  # TLS ends at the proxy
    assert not same_origin(_request(Origin="https://evil.example"))
    assert not same_origin(_request(Origin="null"))
    assert not same_origin(_request(Referer="https://evil.example/page"))
    assert same_origin(_request())  # curl: no Origin, but it still needs the token


def test_sessions_have_their_own_tokens_and_expire() -> None:
    sessions = Sessions(lifetime_s=60)
    first, second = sessions.start(0), sessions.start(0)
    assert first.id != second.id and first.token != second.token
    assert len(first.token) == 64
    assert sessions.get(first.id, 59) == first
    assert sessions.get(first.id, 60) is None  # expired: the next login gets a new session and token
    assert sessions.get("an id the client made up", 1) is None
    assert sessions.get(None, 1) is None


def test_sessions_are_bounded() -> None:
    sessions = Sessions(lifetime_s=60, capacity=10)
    started = [sessions.start(0) for _ in range(50)]
    assert sessions.get(started[0].id, 1) is None
    assert sessions.get(started[-1].id, 1) == started[-1]
    assert sessions.live == 10
