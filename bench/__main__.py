"""`python -m bench`: every benchmark, then docs/benchmarks.md from their reports; non-zero when a budget is broken."""

from __future__ import annotations

import asyncio
import sys

from bench import (
    drain,
    engine_speed,
    fair_share,
    ingest,
    monitor_absorption,
    structure_guard,
    tracing_cpu,
    tracing_overhead,
    worker_scaling,
)
from bench.report import publish


def main() -> None:
    throughput = asyncio.run(tracing_overhead.main())
    asyncio.run(tracing_cpu.main())
    fairness = asyncio.run(fair_share.main())
    guard = structure_guard.main()
    speed = engine_speed.main([])
    scaling = asyncio.run(worker_scaling.main())
    drained = asyncio.run(drain.main())
    ingested = asyncio.run(ingest.main())
    absorption = asyncio.run(monitor_absorption.main())
    budgets = (
        tracing_overhead.over_budget(throughput),
        fair_share.over_budget(fairness),
        structure_guard.over_budget(guard),
        engine_speed.over_budget(speed),
        worker_scaling.over_budget(scaling),
        drain.over_budget(drained),
        ingest.over_budget(ingested),
        monitor_absorption.over_budget(absorption),
    )
    broken = [problem for problem in budgets if problem]
    publish()  # the page first: a broken budget is published with its numbers
    if broken:
        sys.exit("; ".join(broken))


if __name__ == "__main__":
    main()
