"""`python -m bench`: every benchmark, one after the other."""

from __future__ import annotations

import asyncio

from bench import tracing_overhead


def main() -> None:
    asyncio.run(tracing_overhead.main())


if __name__ == "__main__":
    main()
