"""Trust the broker's word, not the client library's: are our consumers really registered?

aio-pika's robust connection has come back from a broker restart with zero consumers
(mosquito/aio-pika #231, #563). The watchdog asks RabbitMQ for each consumed queue's consumer
count; when a queue we consume shows none, or the broker cannot be asked, for longer than
`give_up_after` seconds, it raises, and the service exits non-zero so its platform restarts it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import structlog

from shared.broker import Broker
from shared.errors import DependencyUnavailable
from shared.telemetry.logs import brief
from shared.telemetry.tracing import untraced

log = structlog.get_logger()


async def unserved_queues(broker: Broker, queues: Sequence[str]) -> list[str]:
    """The queues among `queues` that the broker says have no consumer; all of them if it cannot say."""
    try:
        with untraced():
            async with asyncio.timeout(5):
                counts = {name: await broker.consumer_count(name) for name in queues}
    except Exception as error:
        log.warning("watchdog.broker_unreachable", error=brief(error))
        return list(queues)
    return [name for name, count in counts.items() if count == 0]


async def watch(broker: Broker, queues: Sequence[str], *, interval_s: float, give_up_after: float) -> None:
    """Run until cancelled, or raise DependencyUnavailable once consuming has failed for too long."""
    failing_since: float | None = None
    while True:
        await asyncio.sleep(interval_s)
        unserved = await unserved_queues(broker, queues)
        if not unserved:
            if failing_since is not None:
                log.info("watchdog.recovered", after_s=round(time.monotonic() - failing_since, 1))
            failing_since = None
            continue
        failing_since = failing_since or time.monotonic()
        waited = time.monotonic() - failing_since
        log.warning("watchdog.unserved", queues=unserved, for_s=round(waited, 1))
        if waited > give_up_after:
            raise DependencyUnavailable(f"no consumer on {', '.join(unserved)} for {waited:.0f} s")
