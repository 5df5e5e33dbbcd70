"""Throttling failed logins per client and per user name: a few tries, then a wait, so passwords cannot
be guessed at speed, from one address or from many."""

from __future__ import annotations

from collections import deque


class FailureThrottle:
    """At most `max_failures` failed attempts per client within `window_s`; `now` is passed in."""

    def __init__(self, max_failures: int, window_s: float, *, capacity: int = 10_000) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.capacity = capacity
        self._failures: dict[str, deque[float]] = {}

    @property
    def clients(self) -> int:
        """Clients with failures on record: at most `capacity`."""
        return len(self._failures)

    def retry_after(self, client: str, now: float) -> float | None:
        """Seconds the client must wait before trying again; None when it may try now."""
        failures = self._recent(client, now)
        if len(failures) < self.max_failures:
            return None
        return max(failures[0] + self.window_s - now, 0.0) or None

    def failed(self, client: str, now: float) -> None:
        self._recent(client, now)  # drops the expired ones
        self._failures.setdefault(client, deque(maxlen=self.max_failures)).append(now)
        if len(self._failures) > self.capacity:
            self._forget_oldest(now)

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)

    def _recent(self, client: str, now: float) -> deque[float]:
        failures = self._failures.get(client, deque())
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
        return failures

    def _forget_oldest(self, now: float) -> None:
        for client in [c for c, f in self._failures.items() if not f or f[-1] <= now - self.window_s]:
            del self._failures[client]
        while len(self._failures) > self.capacity:
            oldest = min(self._failures, key=lambda c: self._failures[c][-1])
            del self._failures[oldest]


class LoginThrottle:
    """Failed logins counted twice: per client address, and per user name from any address.

    A client's record is cleared when it logs in; a user name's is not, since Basic credentials come
    with every admin request and the operator's own traffic would otherwise reset a guesser's count.
    """

    def __init__(self, *, per_client: int, per_user: int, window_s: float) -> None:
        self.clients = FailureThrottle(per_client, window_s)
        self.users = FailureThrottle(per_user, window_s)

    def retry_after(self, client: str, user: str | None, now: float) -> float | None:
        waits = [self.clients.retry_after(client, now)]
        if user is not None:
            waits.append(self.users.retry_after(user, now))
        return max((wait for wait in waits if wait is not None), default=None)

    def failed(self, client: str, user: str | None, now: float) -> None:
        self.clients.failed(client, now)
        if user is not None:
            self.users.failed(user, now)

    def succeeded(self, client: str) -> None:
        self.clients.succeeded(client)
