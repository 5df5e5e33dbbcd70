"""The local engine, judged by the statistics of what it produces from synthetic photos."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import numpy as np
import pytest
from PIL import ExifTags, Image

from services.worker.engines import EnhanceRequest, EnhanceResult, curves, tone
from services.worker.engines.local import LocalEngine, enhance_sync
from services.worker.engines.styles import TIER_OUTPUT, Adjustments, adjustments_for, requested_nudges
from shared.domain import Style, Tier
from shared.errors import PermanentEngineError
from tests.worker import photos

MAX_PIXELS = 4_000_000
TUNGSTEN = np.array(photos.TUNGSTEN_CAST, dtype=np.float32)

PHOTOS: dict[str, Callable[[], bytes]] = {
    "house": lambda: photos.encode(photos.house()),
    "portrait": lambda: photos.encode(photos.house(300, 400)),
    "dark": lambda: photos.encode(photos.house() * np.float32(0.3)),
    "tungsten": lambda: photos.encode(photos.room() * TUNGSTEN),
    "overcast": lambda: photos.encode(photos.house(sky=photos.OVERCAST_SKY)),
    "patchy": lambda: photos.encode(photos.house(patchy_lawn=True)),
    "gps": lambda: photos.encode(photos.house(), exif=photos.gps_exif()),
    "interior": lambda: photos.encode(photos.interior()),
    "ramp": lambda: photos.encode(photos.shadow_ramp(), "PNG"),
}


@functools.cache
def source(name: str) -> bytes:
    return PHOTOS[name]()


@functools.cache
def enhanced(name: str, style: Style = Style.DEFAULT, prompt: str = "", tier: Tier = Tier.FREE) -> EnhanceResult:
    """The engine is a pure function of its request, so tests share each result."""
    return enhance_sync(EnhanceRequest(source(name), prompt, tier, style), max_pixels=MAX_PIXELS)


def pixels_of(name: str, style: Style = Style.DEFAULT, prompt: str = "") -> photos.Pixels:
    return photos.decode(enhanced(name, style, prompt).image)


def test_an_underexposed_photo_comes_out_brighter() -> None:
    before = photos.mean_luminance(photos.decode(source("dark")))
    after = photos.mean_luminance(pixels_of("dark"))

    assert after - before > 0.2, (before, after)


def test_a_colour_cast_is_reduced() -> None:
    before = photos.cast_spread(photos.decode(source("tungsten")))
    after = photos.cast_spread(pixels_of("tungsten"))

    assert after < 0.6 * before, (before, after)


def test_dusk_is_warmer_than_default() -> None:
    default = photos.red_blue_ratio(pixels_of("house"))
    dusk = photos.red_blue_ratio(pixels_of("house", Style.DUSK))

    assert dusk > 1.1 * default, (default, dusk)


def test_bright_airy_is_brighter_than_default() -> None:
    default = photos.mean_luminance(pixels_of("house"))
    airy = photos.mean_luminance(pixels_of("house", Style.BRIGHT_AIRY))

    assert airy - default > 0.04, (default, airy)


def test_sky_replacement_turns_an_overcast_sky_blue() -> None:
    def blueness(pixels: photos.Pixels) -> float:
        top = pixels[: pixels.shape[0] // 5]
        return float((top[..., 2] - top[..., 0]).mean())

    default = blueness(pixels_of("overcast"))
    replaced = blueness(pixels_of("overcast", Style.SKY_REPLACEMENT))

    assert replaced - default > 0.2, (default, replaced)


def test_lawn_cleanup_greens_the_dry_patches() -> None:
    def patch_green_share(pixels: photos.Pixels) -> float:
        height, width = pixels.shape[:2]
        patch = pixels[int(0.82 * height) : int(0.90 * height), int(0.07 * width) : int(0.23 * width)]
        means = patch.reshape(-1, 3).mean(axis=0)
        return float(means[1] / means.sum())

    default = patch_green_share(pixels_of("patchy"))
    cleaned = patch_green_share(pixels_of("patchy", Style.LAWN_CLEANUP))

    assert cleaned - default > 0.1, (default, cleaned)


@pytest.mark.parametrize("style", list(Style))
def test_a_bright_window_keeps_its_detail(style: Style) -> None:
    before, after = photos.decode(source("interior")), pixels_of("interior", style)

    clipped = [tone.clipped_fraction(photos.crop(pixels, photos.WINDOW)) for pixels in (before, after)]
    detail = [tone.local_contrast(photos.crop(pixels, photos.PANE)) for pixels in (before, after)]

    assert clipped[1] <= clipped[0] + 0.02, clipped
    assert detail[1] >= 0.8 * detail[0], detail


def test_the_default_style_lifts_a_dark_corner() -> None:
    before, after = (
        tone.mean_luminance(photos.crop(pixels, photos.DARK_CORNER))
        for pixels in (photos.decode(source("interior")), pixels_of("interior"))
    )

    assert after - before > 0.015, (before, after)


@pytest.mark.parametrize("style", list(Style))
def test_a_shadow_ramp_comes_out_without_banding(style: Style) -> None:
    after = pixels_of("ramp", style)

    # The engine stretches this dark ramp over most of the range: a naive curve leaves level after level empty.
    assert tone.largest_gap(after, below=0.5) <= 1
    assert tone.empty_levels(after, below=0.5) <= 8


@pytest.mark.parametrize("gamma", [0.45, 1.0, 2.0])
def test_the_tone_curves_never_reverse_or_clip(gamma: float) -> None:
    curve = curves.shoulder(curves.recover_shadows(curves.protected_gamma(curves.GRID, gamma), 0.04))

    assert float(np.diff(curve).min()) > -1e-6
    assert (float(curve[0]), float(curve.max())) == (0.0, 1.0)


def test_the_tone_measures() -> None:
    levels = np.array([[0, 0, 3, 4], [4, 9, 255, 255]], dtype=np.float32)[..., None] / np.float32(255)
    grey = np.repeat(levels, 3, axis=-1)

    assert tone.clipped_fraction(grey) == 0.25
    assert (tone.largest_gap(grey), tone.empty_levels(grey, below=10 / 255)) == (4, 6)
    assert tone.local_contrast(np.full((16, 16, 3), 0.5, dtype=np.float32)) == 0


@pytest.mark.parametrize(
    ("name", "tier", "size"),
    [
        ("house", Tier.FREE, (1024, 768)),
        ("portrait", Tier.FREE, (768, 1024)),
        ("house", Tier.PREMIUM, (1536, 1152)),
        ("portrait", Tier.PREMIUM, (1152, 1536)),
    ],
)
def test_the_long_edge_is_the_tiers_and_the_aspect_is_kept(name: str, tier: Tier, size: tuple[int, int]) -> None:
    result = enhanced(name, tier=tier)

    with Image.open(io.BytesIO(result.image)) as image:
        assert (image.format, image.size) == ("JPEG", size)
    assert (result.width, result.height) == size


@pytest.mark.parametrize("tier", list(Tier))
@pytest.mark.parametrize("aspect", list(photos.ASPECTS))
def test_every_aspect_comes_out_at_the_tiers_long_edge(aspect: str, tier: Tier) -> None:
    photo = photos.ASPECTS[aspect]
    request = EnhanceRequest(photos.encode(photos.house(*photo)), "", tier, Style.DEFAULT)

    result = enhance_sync(request, max_pixels=MAX_PIXELS)

    with Image.open(io.BytesIO(result.image)) as image:
        assert image.size == (result.width, result.height)
    assert photos.keeps_aspect(image.size, photo, TIER_OUTPUT[tier].long_edge)


def test_no_exif_or_gps_reaches_the_output() -> None:
    with Image.open(io.BytesIO(source("gps"))) as original:
        assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo)

    with Image.open(io.BytesIO(enhanced("gps").image)) as image:
        assert not image.getexif()
        assert "exif" not in image.info


def test_exif_orientation_is_applied() -> None:
    upright = photos.house(300, 400)
    # Stored turned a quarter to the left, as a phone held upright writes it; orientation 6 undoes that.
    stored = photos.encode(np.rot90(upright).copy(), exif=photos.orientation_exif(6))

    result = enhance_sync(EnhanceRequest(stored, "", Tier.FREE, Style.DEFAULT), max_pixels=MAX_PIXELS)

    pixels = photos.decode(result.image)
    assert pixels.shape[:2] == (1024, 768)
    sky, lawn = pixels[:100].reshape(-1, 3).mean(axis=0), pixels[-100:].reshape(-1, 3).mean(axis=0)
    assert sky[2] > sky[0]
    assert lawn[1] > lawn[0]


def test_the_output_differs_from_the_input() -> None:
    original = photos.decode(source("house"))
    with Image.open(io.BytesIO(enhanced("house").image)) as image:
        shrunk = photos.decode(_png(image.resize((400, 300), Image.Resampling.LANCZOS)))

    assert float(np.abs(shrunk - original).mean()) > 0.02


def test_same_input_same_bytes() -> None:
    request = EnhanceRequest(source("house"), "brighter", Tier.FREE, Style.DUSK)

    assert enhance_sync(request, max_pixels=MAX_PIXELS) == enhance_sync(request, max_pixels=MAX_PIXELS)


def test_brighter_in_the_prompt_brightens() -> None:
    plain = photos.mean_luminance(pixels_of("house"))
    brighter = photos.mean_luminance(pixels_of("house", prompt="Make it brighter please"))

    assert brighter - plain > 0.03, (plain, brighter)


def test_warmer_in_the_prompt_warms() -> None:
    plain = photos.red_blue_ratio(pixels_of("house"))
    warmer = photos.red_blue_ratio(pixels_of("house", prompt="a bit warmer"))

    assert warmer > 1.05 * plain, (plain, warmer)


def test_prompt_steering_counts_synonyms_once_and_skips_negations() -> None:
    nudges = requested_nudges("Bright, brighter! Warm but not too dark, no vivid colours")
    base = Adjustments()

    assert nudges == {("target_luminance", 0.08), ("warmth", 0.5)}
    assert adjustments_for(Style.DEFAULT, "darker " * 3).target_luminance == pytest.approx(0.42)
    assert adjustments_for(Style.DUSK, "warmer").warmth == 1.0  # clamped
    assert adjustments_for(Style.DEFAULT, "") == base


@pytest.mark.parametrize("style", list(Style))
def test_every_style_produces_a_jpeg(style: Style) -> None:
    result = enhanced("house", style)

    assert (result.content_type, result.engine, result.cost) == ("image/jpeg", "local", Decimal("0"))
    assert max(result.width, result.height) == 1024
    assert photos.decode(result.image).shape == (768, 1024, 3)


def test_a_16_bit_greyscale_png_keeps_its_tones() -> None:
    ramp = np.tile(np.linspace(0, 65535, 400, dtype=np.float32), (300, 1)).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, "PNG")

    request = EnhanceRequest(buffer.getvalue(), "", Tier.FREE, Style.DEFAULT)

    result = enhance_sync(request, max_pixels=MAX_PIXELS)

    assert 0.3 < photos.mean_luminance(photos.decode(result.image)) < 0.7


def test_bytes_that_are_not_a_photo_fail_permanently() -> None:
    request = EnhanceRequest(b"GIF89a not really", "", Tier.FREE, Style.DEFAULT)

    with pytest.raises(PermanentEngineError) as caught:
        enhance_sync(request, max_pixels=MAX_PIXELS)
    assert caught.value.code == "unsupported_format"


async def test_local_engine_runs_in_the_given_executor() -> None:
    request = EnhanceRequest(source("house"), "", Tier.FREE, Style.DEFAULT)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="enhance-test") as executor:
        result = await LocalEngine(executor, max_pixels=MAX_PIXELS).enhance(request)

    assert result == enhanced("house")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("tier", list(Tier))
def test_a_large_jpeg_decoded_at_a_fraction_of_its_size_gives_the_same_output(tier: Tier) -> None:
    """The reduced decode (libjpeg's 1/2, 1/4, 1/8 scaling) is a saving, not a different edit: a camera-sized
    photo comes out at the same size, and within what no one can see (PSNR ≥ 40 dB), of a full decode."""
    photo = photos.encode(photos.house(4400, 3300))  # 1/2 fits either tier's long edge, 1/4 the free one's
    request = EnhanceRequest(photo, "", tier, Style.DEFAULT)
    reduced = enhance_sync(request, max_pixels=20_000_000)
    full = enhance_sync(request, max_pixels=20_000_000, reduced_decode=False)

    assert (reduced.width, reduced.height) == (full.width, full.height) == TIER_OUTPUT[tier].size_for(4400, 3300)
    a, b = (
        np.asarray(Image.open(io.BytesIO(result.image)).convert("L"), dtype=np.float64) for result in (reduced, full)
    )
    psnr = 10 * np.log10(255**2 / np.mean((a - b) ** 2))
    assert psnr >= 40
