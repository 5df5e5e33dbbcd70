"""Asset endpoints: upload an original photo through the api, or straight to the store and then complete it."""

from __future__ import annotations

import uuid

from aiohttp import web

from services.api import direct, keys
from services.api.bodies import read_form
from services.api.schemas import AssetEnvelope, AssetOut, DirectUploadEnvelope, DirectUploadOut
from services.api.uploads import store_asset
from shared.assets import Asset
from shared.errors import InvalidField, MalformedBody


def _respond(asset: Asset, status: int) -> web.Response:
    body = AssetEnvelope(asset=AssetOut.of(asset)).model_dump_json()
    return web.json_response(text=body, status=status, headers={"Location": f"/assets/{asset.id}"})


async def create_asset(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    if request.content_type != "multipart/form-data":
        raise MalformedBody("send the image as multipart/form-data in a part named `file`")
    form = await read_form(request, max_file_bytes=settings.max_upload_bytes)
    if form.file is None:
        raise InvalidField("file is required", field="file")
    try:
        request[keys.ALLOWANCE].require_bytes(form.file.size)
        asset = await store_asset(
            request.app[keys.POOL],
            request.app[keys.UPLOADS],
            form.file,
            owner=request[keys.CALLER].owner,
            limits=request.app[keys.DECODES],
        )
    finally:
        form.file.close()
    return _respond(asset, 201)


async def offer_upload(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    owner = request[keys.CALLER].owner
    asset_id, form = await direct.offer(request.app[keys.UPLOADS], owner=owner, max_bytes=settings.max_upload_bytes)
    upload = DirectUploadOut(
        asset_id=asset_id,
        url=form.url,
        fields=form.fields,
        max_bytes=settings.max_upload_bytes,
        expires_in_s=form.expires_s,
        complete_url=f"/assets/{asset_id}/complete",
    )
    return web.json_response(text=DirectUploadEnvelope(upload=upload).model_dump_json(), status=201)


async def complete_upload(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    try:
        asset_id = uuid.UUID(request.match_info["asset_id"])
    except ValueError as error:
        raise InvalidField("asset id is not a UUID", field="asset_id") from error
    asset, created = await direct.complete(
        request.app[keys.POOL],
        request.app[keys.UPLOADS],
        asset_id,
        owner=request[keys.CALLER].owner,
        allowance=request[keys.ALLOWANCE],
        max_bytes=settings.max_upload_bytes,
        limits=request.app[keys.DECODES],
    )
    return _respond(asset, 201 if created else 200)
