"""Recent jobs, newest first: filter by status and tier, keyset cursor, bounded page size; and the flagged ones."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_jsonable_python

from services.monitor import keys
from services.monitor.aggregation.flagged import MAX_FLAGGED, recent_flagged
from shared.domain import JobStatus, Tier
from shared.errors import InvalidField
from shared.jobs import Job, list_jobs

MAX_PAGE = 100
QueryT = TypeVar("QueryT", bound=BaseModel)


class JobQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: JobStatus | None = None
    tier: Tier | None = None
    cursor: str | None = None
    limit: int = Field(default=25, ge=1, le=MAX_PAGE)


class FlaggedQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=MAX_FLAGGED, ge=1, le=MAX_FLAGGED)


def _query(request: web.Request, model: type[QueryT]) -> QueryT:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or None
        raise InvalidField(f"{field}: {first['msg']}" if field else first["msg"], field=field) from error


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return round((end - start).total_seconds(), 3) if start and end else None


def _row(job: Job) -> dict[str, Any]:
    return {
        "id": job.id,
        "tier": job.tier,
        "style": job.style,
        "status": job.status,
        "attempts": job.attempts,
        "worker_id": job.worker_id,
        "engine": job.engine,
        "error_code": job.error_code,
        "error_message": job.error_message,
        "cost": Decimal(job.cost),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "completed_at": job.completed_at,
        "queue_wait_s": _seconds(job.created_at, job.started_at),
        "total_s": _seconds(job.created_at, job.completed_at),
    }


async def recent(request: web.Request) -> web.Response:
    query = _query(request, JobQuery)
    page = await list_jobs(
        request.app[keys.POOL], status=query.status, tier=query.tier, cursor=query.cursor, limit=query.limit
    )
    body = {"jobs": [_row(job) for job in page.jobs], "next_cursor": page.next_cursor, "limit": query.limit}
    return web.json_response(to_jsonable_python(body))


async def flagged(request: web.Request) -> web.Response:
    """The structure guard's latest flags, succeeded (delivered flagged) or failed, newest first."""
    query = _query(request, FlaggedQuery)
    found = await recent_flagged(request.app[keys.POOL], limit=query.limit)
    return web.json_response(to_jsonable_python({"jobs": found, "limit": query.limit}))
