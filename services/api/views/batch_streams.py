"""Following a batch: its jobs' changes as Server-Sent Events, and its outputs as one streamed zip."""

from __future__ import annotations

import contextlib
import functools
import stat
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from stream_zip import NO_COMPRESSION_32, AsyncMemberFile, async_stream_zip

from services.api import keys
from services.api.batch_schemas import BatchSummary
from services.api.schemas import JobOut
from services.api.views.batches import load_batch
from shared import batches, batchwatch
from shared.batches import Progress
from shared.domain import JobStatus
from shared.errors import Conflict
from shared.jobs import Job
from shared.storage import Store

log = structlog.get_logger()

# A comment this often keeps proxies and clients from taking a quiet stream for a dead one.
KEEPALIVE_S = 15.0
EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
ZIP_MODE = stat.S_IFREG | 0o644


def _event(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


async def batch_events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: every job as it stands, each change as it happens, then `batch.completed`."""
    batch = await load_batch(request)
    pool, watch = request.app[keys.POOL], request.app[keys.BATCH_WATCH]
    load = functools.partial(batches.batch_jobs, pool, batch.id)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    try:
        async with contextlib.aclosing(batchwatch.follow(watch, batch.id, load, idle_s=KEEPALIVE_S)) as changes:
            async for changed in changes:
                chunks = [_event("job", JobOut.of(job).model_dump_json()) for job in changed]
                await response.write(b"".join(chunks) or b": keepalive\n\n")
        jobs = await load()
        if batchwatch.finished(jobs):
            summary = BatchSummary.of(batch, Progress.of(jobs)).model_dump_json()
            await response.write(_event("batch.completed", summary))
        await response.write_eof()
    except ConnectionResetError:  # the client left: nothing more to send
        log.info("batch.events_closed", batch_id=str(batch.id))
    return response


def _entry_name(index: int, width: int, job: Job, filename: str | None) -> str:
    """`07-<the photo's name>.jpg`, or `07-<job id>.jpg` when it was uploaded without a name."""
    stem = filename.rsplit(".", 1)[0] if filename and filename.rsplit(".", 1)[0] else str(job.id)
    return f"{index:0{width}d}-{stem}.{EXTENSIONS.get(job.output_content_type or '', 'bin')}"


async def _members(store: Store, entries: list[tuple[str, Job]]) -> AsyncIterator[AsyncMemberFile]:
    """One zip member per output, each read only when the archive reaches it."""
    for name, job in entries:
        assert job.output_key is not None  # only succeeded jobs are listed
        try:
            data = await store.get(job.output_key)
        except FileNotFoundError:  # removed since (retention): the archive goes on without it
            log.warning("batch.output_missing", job_id=str(job.id))
            continue
        modified = job.completed_at or job.updated_at
        yield name, modified, ZIP_MODE, NO_COMPRESSION_32, _chunks(data)


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def batch_outputs(request: web.Request) -> web.StreamResponse:
    """Every succeeded job's output in one zip, streamed as it is read from the store."""
    batch = await load_batch(request)
    pool = request.app[keys.POOL]
    jobs = await batches.batch_jobs(pool, batch.id)
    done = [(index, job) for index, job in enumerate(jobs, 1) if job.status is JobStatus.SUCCEEDED and job.output_key]
    if not done:
        raise Conflict("no job of the batch has succeeded yet", field="batch_id")
    names = await batches.asset_names(pool, [job.asset_id for _, job in done])
    width = len(str(len(jobs)))
    entries = [(_entry_name(index, width, job, names.get(job.asset_id)), job) for index, job in done]
    response = web.StreamResponse(
        headers={
            "Content-Type": "application/zip",
            "Content-Disposition": f'attachment; filename="batch-{batch.id}.zip"',
            "Cache-Control": "no-store",
        }
    )
    await response.prepare(request)
    try:
        async for chunk in async_stream_zip(_members(request.app[keys.OUTPUTS], entries)):
            await response.write(chunk)
        await response.write_eof()
    except ConnectionResetError:
        log.info("batch.outputs_closed", batch_id=str(batch.id))
    return response
