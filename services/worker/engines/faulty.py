"""A test-only engine wrapper that hangs or fails transiently as `LUSTER_FAULTS` asks (see faults.py)."""

from __future__ import annotations

import asyncio

from services.worker.engines import Engine, EnhanceRequest, EnhanceResult
from services.worker.faults import Faults, happens
from shared.errors import TransientEngineError

INJECTED_CODE = "engine_injected"


class FaultyEngine:
    """Delegates to `inner`, except when a configured fault strikes this call."""

    def __init__(self, inner: Engine, faults: Faults) -> None:
        self.name = inner.name
        self._inner = inner
        self._faults = faults

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def enhance(self, request: EnhanceRequest) -> EnhanceResult:
        if happens(self._faults.engine_hang):
            # Like a remote engine that never answers: only the worker's own timeout ends the wait.
            await asyncio.Event().wait()
        if happens(self._faults.engine_transient):
            raise TransientEngineError("injected transient engine failure", code=INJECTED_CODE)
        return await self._inner.enhance(request)
