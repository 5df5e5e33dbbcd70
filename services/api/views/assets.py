"""Asset endpoints: upload an original photo (through the api, or straight to the store and then complete it),
read one, list them."""

from __future__ import annotations

from aiohttp import web

from services.api import direct, keys
from services.api.bodies import parse_model, read_form
from services.api.schemas import (
    AssetEnvelope,
    AssetListQuery,
    AssetOut,
    AssetPage,
    DirectUploadEnvelope,
    DirectUploadOut,
)
from services.api.uploads import store_asset
from shared import assets
from shared.assets import Asset
from shared.errors import InvalidField, MalformedBody, NotFound
from shared.http.params import path_uuid


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
    asset_id = path_uuid(request, "asset_id")
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


async def get_asset(request: web.Request) -> web.Response:
    """The caller's asset; a direct upload is one only once completed (until then it has no row)."""
    asset_id = path_uuid(request, "asset_id")
    asset = await assets.get_asset(request.app[keys.POOL], asset_id, owner=request[keys.CALLER].owner)
    if asset is None:  # another owner's asset is as missing as one never made
        raise NotFound(f"asset {asset_id} does not exist", field="asset_id")
    return web.json_response(text=AssetEnvelope(asset=AssetOut.of(asset)).model_dump_json())


async def list_assets(request: web.Request) -> web.Response:
    query = parse_model(AssetListQuery, dict(request.query))
    page = await assets.list_assets(
        request.app[keys.POOL], owner=request[keys.CALLER].owner, cursor=query.cursor, limit=query.limit
    )
    body = AssetPage(assets=[AssetOut.of(asset) for asset in page.assets], next_cursor=page.next_cursor)
    return web.json_response(text=body.model_dump_json())
