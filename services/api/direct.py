"""Direct uploads: the client sends the photo straight to the store, then the api checks it as POST /assets would.

The form names an `incoming` key only this asset id uses; completion reads what arrived, decodes it,
and copies exactly the version it checked to the asset's final key, so bytes swapped in after the
check never become an asset. Nothing else names an incoming object: the hourly sweep of unrecorded
uploads removes those never completed.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass

import asyncpg

from services.api.allowance import Allowance
from services.api.uploads import DecodeLimits, Upload, check_image, record, stored_key
from shared.assets import Asset, get_asset
from shared.errors import Conflict, NotFound, PayloadTooLarge, UnsupportedImage
from shared.storage import PresignedUpload, Store


def incoming_key(asset_id: uuid.UUID, owner: str) -> str:
    """Named after the owner too: another owner completing this id looks for a key that was never offered."""
    return f"{asset_id}.{hashlib.sha256(owner.encode()).hexdigest()[:16]}.incoming"


async def offer(store: Store, *, owner: str, max_bytes: int) -> tuple[uuid.UUID, PresignedUpload]:
    asset_id = uuid.uuid4()
    form = await store.upload_form(incoming_key(asset_id, owner), max_bytes=max_bytes)
    if form is None:
        raise Conflict(
            "direct uploads need object storage (STORAGE=s3) on this deployment; send the file to POST /assets",
            code="direct_upload_unavailable",
        )
    return asset_id, form


@dataclass(frozen=True)
class Check:
    owner: str
    allowance: Allowance
    max_bytes: int
    limits: DecodeLimits


async def complete(
    pool: asyncpg.Pool,
    store: Store,
    asset_id: uuid.UUID,
    *,
    owner: str,
    allowance: Allowance,
    max_bytes: int,
    limits: DecodeLimits,
) -> tuple[Asset, bool]:
    """The checked asset, and whether this call created it (a repeated completion returns the first)."""
    existing = await get_asset(pool, asset_id, owner=owner)
    if existing is not None:
        return existing, False
    check = Check(owner, allowance, max_bytes, limits)
    try:
        return await _check_and_record(pool, store, asset_id, check), True
    except (FileNotFoundError, asyncpg.UniqueViolationError):
        # A concurrent completion of the same upload got there first, or nothing ever arrived.
        existing = await get_asset(pool, asset_id, owner=owner)
        if existing is None:
            raise NotFound(f"no upload has arrived for asset {asset_id}", field="asset_id") from None
        return existing, False


async def _check_and_record(pool: asyncpg.Pool, store: Store, asset_id: uuid.UUID, check: Check) -> Asset:
    incoming = incoming_key(asset_id, check.owner)
    arrived = await store.stat(incoming)
    if arrived is None:
        raise FileNotFoundError(incoming)
    if arrived.size > check.max_bytes:
        await store.remove([incoming])
        raise PayloadTooLarge(f"file is larger than the {check.max_bytes} byte limit", field="file")
    check.allowance.require_bytes(arrived.size)
    upload = Upload.of_bytes(await store.get(incoming))
    try:
        info = await check_image(upload.file, check.limits)
    except UnsupportedImage:
        await store.remove([incoming])
        raise
    finally:
        upload.close()
    key = stored_key(asset_id, info)
    await store.copy(incoming, key, if_version=arrived.version)
    asset = await record(pool, asset_id, info, upload, key, owner=check.owner)
    await store.remove([incoming])
    return asset
