"""A webhook receiver as a customer would write one, run as its own process by the webhook system tests.

It verifies every delivery with the Standard Webhooks library (not Luster's code) and the secret it is
given, and keeps what it received for the test to read at `GET /received`. Its paths behave differently:
`/ok` answers 200, `/flaky` 500 to the first attempt at each message and 200 after, `/down` always 500,
`/slow` 200 after a pause (so a worker can be killed while a delivery is in flight).

    python -m tests.system.webhook_receiver PORT SECRET
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

SLOW_S = 2.0


class Receiver:
    def __init__(self, secret: str) -> None:
        self.webhook = Webhook(secret)
        self.received: list[dict[str, Any]] = []
        self.seen: Counter[str] = Counter()
        self.in_flight = 0

    async def receive(self, request: web.Request) -> web.Response:
        body = await request.text()
        try:
            payload = self.webhook.verify(body, dict(request.headers))
            verified = True
        except WebhookVerificationError:
            payload, verified = None, False
        webhook_id = request.headers.get("webhook-id", "")
        self.seen[webhook_id] += 1
        behaviour = request.match_info["behaviour"]
        status = self._status(behaviour, self.seen[webhook_id])
        self.received.append(
            {"webhook_id": webhook_id, "path": behaviour, "verified": verified, "payload": payload, "status": status}
        )
        if behaviour == "slow":
            self.in_flight += 1
            try:
                await asyncio.sleep(SLOW_S)
            finally:
                self.in_flight -= 1
        return web.Response(status=status)

    @staticmethod
    def _status(behaviour: str, seen: int) -> int:
        if behaviour == "down" or (behaviour == "flaky" and seen == 1):
            return 500
        return 200

    async def report(self, _: web.Request) -> web.Response:
        return web.json_response({"received": self.received, "in_flight": self.in_flight})


def main() -> None:
    port, secret = int(sys.argv[1]), sys.argv[2]
    receiver = Receiver(secret)
    app = web.Application()
    app.router.add_post("/{behaviour}", receiver.receive)
    app.router.add_get("/received", receiver.report)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


if __name__ == "__main__":
    main()
