"""A local OpenAI-compatible ``images/edits`` server: what it was asked, and what it answers next.

The engine tests serve it in-process; the system tests point a worker process at it.
"""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from aiohttp import web
from PIL import Image

from tests.harness.serving import serving

USAGE = {
    "input_tokens": 1_000,
    "input_tokens_details": {"image_tokens": 900, "text_tokens": 100},
    "output_tokens": 4_000,
    "total_tokens": 5_000,
}
# 100 text tokens at $5/M + 900 image tokens at $10/M + 4000 output tokens at $40/M
USAGE_COST = Decimal("0.169500")


@dataclass(frozen=True)
class Reply:
    """One answer: an image (`status` 200), an unreadable one that is still billed, or an error."""

    status: int = 200
    error_code: str = "rate_limit_exceeded"
    headers: dict[str, str] = field(default_factory=dict)
    broken: bool = False
    # Answered only once the test sets it: the engine's call stays in flight (and holds its slot) till then.
    release: asyncio.Event | None = None
    # The upload with its structure changed, as a generative edit that moves the property would answer.
    moved: bool = False


@dataclass
class FakeOpenAI:
    """``reply`` answers every call, except that a prompt containing a key of ``script`` takes that
    key's next reply (in order) while there is one.
    """

    base_url: str = ""
    reply: Reply = field(default_factory=Reply)
    script: dict[str, list[Reply]] = field(default_factory=dict)
    delay: float = 0.0
    answer_size: tuple[int, int] | None = None  # None: the size asked for, as gpt-image-1 does
    calls: list[dict[str, Any]] = field(default_factory=list)

    def _next(self, prompt: str) -> Reply:
        for key, replies in self.script.items():
            if key in prompt and replies:
                return replies.pop(0)
        return self.reply

    async def edits(self, request: web.Request) -> web.Response:
        form = await _form(request)
        call: dict[str, Any] = {"authorization": request.headers.get("Authorization"), **form}
        self.calls.append(call)
        reply = self._next(str(call.get("prompt", "")))
        await asyncio.sleep(self.delay)
        if reply.release is not None:
            await reply.release.wait()
        if reply.status != 200:
            error = {"message": f"fake {reply.status}", "type": "fake", "code": reply.error_code}
            return web.json_response({"error": error}, status=reply.status, headers=reply.headers)
        if reply.broken:
            image = {"b64_json": base64.b64encode(b"not an image at all").decode()}
            return web.json_response({"created": 0, "data": [image], "usage": USAGE})
        width, height = (int(side) for side in str(form.get("size", "1024x1024")).split("x"))
        # The "edit" is the upload itself, so the pad in the answer is where the engine put it.
        with Image.open(io.BytesIO(call["image"])) as sent:
            call["image_size"] = sent.size
            answer = sent.convert("RGB").resize(self.answer_size or (width, height))
        if reply.moved:
            answer = moved(answer)
        return web.json_response({"created": 0, "data": [{"b64_json": _png_b64(answer)}], "usage": USAGE})


async def serve_fake_openai() -> AsyncIterator[FakeOpenAI]:
    """The body of a fixture: a fake served on a free local port until the test ends."""
    fake = FakeOpenAI()
    app = web.Application(client_max_size=20 * 1024 * 1024)
    app.router.add_post("/v1/images/edits", fake.edits)
    async with serving(app, handler_cancellation=True) as url:
        fake.base_url = f"{url}/v1"
        yield fake


def moved(image: Image.Image) -> Image.Image:
    """``image`` with its structure changed: everything shifted right by a tenth of its width, and a dark
    block covering about 15 % of the frame pasted in the middle (a "new window")."""
    width, height = image.size
    shift = width // 10
    changed = Image.new("RGB", image.size, image.getpixel((0, 0)))
    changed.paste(image.crop((0, 0, width - shift, height)), (shift, 0))
    block_w, block_h = round(width * 0.39), round(height * 0.39)
    left, top = (width - block_w) // 2, (height - block_h) // 2
    changed.paste((25, 30, 35), (left, top, left + block_w, top + block_h))
    return changed


async def _form(request: web.Request) -> dict[str, str | bytes]:
    """The multipart form's fields: a file's bytes, other fields' text.

    Parsed from the whole body rather than by ``request.post()``, whose multipart reader (aiohttp 3.14) calls
    its own deprecated ``unread_data()`` when the body arrives in small pieces: a DeprecationWarning that
    the test suite's ``filterwarnings = error`` turns into a 500, which the engine takes for an outage.
    """
    body = await request.read()
    head = f"Content-Type: {request.headers.get('Content-Type', '')}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    assert isinstance(message, EmailMessage) and message.is_multipart(), "not a multipart form"
    fields: dict[str, str | bytes] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str) and isinstance(payload, bytes), f"a form field without a name: {part}"
        fields[name] = payload if part.get_filename() is not None else payload.decode()
    return fields


def _png_b64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()
