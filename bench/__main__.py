"""`python -m bench`: every benchmark, one after the other; exits non-zero when a budget is broken."""

from __future__ import annotations

import asyncio
import sys

from bench import tracing_cpu, tracing_overhead


def main() -> None:
    throughput = asyncio.run(tracing_overhead.main())
    asyncio.run(tracing_cpu.main())
    broken = tracing_overhead.over_budget(throughput)
    if broken:
        sys.exit(broken)


if __name__ == "__main__":
    main()
