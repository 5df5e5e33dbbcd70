"""Asset endpoints: upload an original photo."""

from __future__ import annotations

from aiohttp import web

from services.api import keys
from services.api.bodies import read_form
from services.api.schemas import AssetEnvelope, AssetOut
from services.api.uploads import store_asset
from shared.errors import InvalidField, MalformedBody


async def create_asset(request: web.Request) -> web.Response:
    settings = request.app[keys.SETTINGS]
    if request.content_type != "multipart/form-data":
        raise MalformedBody("send the image as multipart/form-data in a part named `file`")
    form = await read_form(request, max_file_bytes=settings.max_upload_bytes)
    if form.file is None:
        raise InvalidField("file is required", field="file")
    asset = await store_asset(
        request.app[keys.POOL], request.app[keys.UPLOADS], form.file, max_pixels=settings.max_image_pixels
    )
    body = AssetEnvelope(asset=AssetOut.of(asset)).model_dump_json()
    return web.json_response(text=body, status=201, headers={"Location": f"/assets/{asset.id}"})
