"""gpt-image-1's canvases: a photo fitted onto the nearest one, and cut back out of the model's answer."""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

Size = tuple[int, int]
Box = tuple[int, int, int, int]  # left, top, right, bottom, in pixels

# The only sizes gpt-image-1 edits at.
CANVASES: tuple[Size, ...] = ((1024, 1024), (1536, 1024), (1024, 1536))
# Flat mid grey, not the photo's edges replicated or mirrored: smeared edges read as scenery the model
# extends and blends the photo into, and on a panorama half the canvas of stretched sky would sway its
# light and colour. A neutral band is plainly not the scene, adds no cast, and keeps a hard edge.
PAD = (128, 128, 128)


@dataclass(frozen=True)
class Placement:
    """Where a photo sits on a canvas: the canvas's size and the photo's box in canvas pixels."""

    canvas: Size
    box: Box

    @property
    def size(self) -> str:
        """The canvas as the API's ``size`` parameter."""
        return f"{self.canvas[0]}x{self.canvas[1]}"


def nearest_canvas(width: int, height: int) -> Size:
    """The canvas nearest the photo's aspect; on a log scale, so 2:1 and 1:2 are as far from 1:1."""
    aspect = math.log(width / height)
    return min(CANVASES, key=lambda canvas: abs(math.log(canvas[0] / canvas[1]) - aspect))


def place(width: int, height: int) -> Placement:
    """The photo scaled to fit the nearest canvas without stretching, centred on it."""
    canvas_width, canvas_height = nearest_canvas(width, height)
    scale = min(canvas_width / width, canvas_height / height)
    fitted_width = min(canvas_width, max(1, round(width * scale)))
    fitted_height = min(canvas_height, max(1, round(height * scale)))
    left, top = (canvas_width - fitted_width) // 2, (canvas_height - fitted_height) // 2
    return Placement((canvas_width, canvas_height), (left, top, left + fitted_width, top + fitted_height))


def fit(image: Image.Image) -> tuple[Image.Image, Placement]:
    """``image`` (RGB) on its canvas, the rest padded, and where it was put."""
    placement = place(image.width, image.height)
    left, top, right, bottom = placement.box
    canvas = Image.new("RGB", placement.canvas, PAD)
    canvas.paste(image.resize((right - left, bottom - top), Image.Resampling.LANCZOS, reducing_gap=3.0), (left, top))
    return canvas, placement


def cut(answer: Image.Image, placement: Placement) -> Image.Image:
    """The photo's region of an answer to ``placement``'s canvas, whatever size the answer came back at."""
    scale_x, scale_y = answer.width / placement.canvas[0], answer.height / placement.canvas[1]
    left, top, right, bottom = placement.box
    # Rounded inwards: a sliver less photo is invisible, a sliver of grey pad along an edge is not.
    inner_left, inner_top = math.ceil(left * scale_x), math.ceil(top * scale_y)
    inner_right = max(inner_left + 1, math.floor(right * scale_x))
    inner_bottom = max(inner_top + 1, math.floor(bottom * scale_y))
    return answer.crop((inner_left, inner_top, inner_right, inner_bottom))
