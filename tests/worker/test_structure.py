"""The structure guard lets re-lit, re-coloured and re-encoded photos through and flags changed geometry.

Graded on structure_pairs' test set, which played no part in choosing STRUCTURE_THRESHOLD.
"""

from __future__ import annotations

import numpy as np
import pytest

from services.worker.engines.structure import STRUCTURE_THRESHOLD, structure_score
from shared.domain import Style, Tier
from shared.errors import UnsupportedImage
from tests.worker import photos, structure_pairs
from tests.worker.structure_pairs import Pair

Scored = list[tuple[float, Pair]]


@pytest.fixture(scope="module")
def scored() -> Scored:
    return [(structure_score(pair.original, pair.edited), pair) for pair in structure_pairs.held_out_pairs()]


def test_every_edit_that_keeps_the_structure_passes(scored: Scored) -> None:
    flagged = [
        f"{pair.name}: {score:.3f}" for score, pair in scored if pair.expect_pass and score < STRUCTURE_THRESHOLD
    ]
    assert not flagged


def test_every_edit_that_changes_the_structure_is_flagged(scored: Scored) -> None:
    passed = [
        f"{pair.name}: {score:.3f}" for score, pair in scored if not pair.expect_pass and score >= STRUCTURE_THRESHOLD
    ]
    assert not passed


def test_the_local_engine_passes_in_every_style_and_tier_on_two_scenes_and_aspects(scored: Scored) -> None:
    engine = [(score, pair) for score, pair in scored if ": local " in pair.name]
    scenes = {pair.name.split(":")[0] for _, pair in engine}
    assert scenes == {"house 600x400 s21", "interior 640x360 s29"}  # 3:2 and 16:9
    assert len(engine) == len(scenes) * len(Style) * len(Tier)
    assert min(score for score, _ in engine) >= STRUCTURE_THRESHOLD


def test_the_test_set_holds_every_kind_of_edit(scored: Scored) -> None:
    names = " ".join(pair.name for _, pair in scored)
    allowed = ("brighter", "darker", "gamma", "contrast", "wb", "saturation", "hue", "gaussian", "unsharp", "jpeg")
    for kind in (*allowed, "resized", "pasted", "removed", "moved", "keystone", "crop"):
        assert kind in names


def test_an_identical_photo_scores_one() -> None:
    photo = photos.encode(photos.house(400, 300))
    assert structure_score(photo, photo) == pytest.approx(1.0, abs=1e-4)


def test_the_same_pixels_in_another_format_pass() -> None:
    scene = photos.room(400, 300)
    assert structure_score(photos.encode(scene, "PNG"), photos.encode(scene, "WEBP")) >= STRUCTURE_THRESHOLD


@pytest.mark.parametrize("broken", ["original", "output"])
def test_bytes_that_are_no_image_are_unsupported(broken: str) -> None:
    photo, garbage = photos.encode(photos.house(400, 300)), b"not an image at all"
    with pytest.raises(UnsupportedImage):
        structure_score(garbage if broken == "original" else photo, garbage if broken == "output" else photo)


def test_a_truncated_jpeg_is_unsupported() -> None:
    photo = photos.encode(photos.house(400, 300))
    with pytest.raises(UnsupportedImage):
        structure_score(photo, photo[: len(photo) // 3])


def test_a_jpeg_over_the_pixel_cap_is_refused() -> None:
    photo = photos.encode(photos.house(400, 300))
    with pytest.raises(UnsupportedImage) as caught:
        structure_score(photo, photo, max_pixels=400 * 300 - 1)
    assert caught.value.code == "too_many_pixels"


def test_the_tuning_and_test_sets_share_nothing(scored: Scored) -> None:
    # The engine's outputs are left out of the tuning side for speed: they are named after their
    # scene and computed from its original, both of which are compared here.
    tuning, test = structure_pairs.tuning_pairs(engine=False), [pair for _, pair in scored]
    assert not {p.name for p in tuning} & {p.name for p in test}
    assert not {p.name.split(":")[0] for p in tuning} & {p.name.split(":")[0] for p in test}
    assert not {p.original for p in tuning} & {p.original for p in test}
    assert not {p.edited for p in tuning} & {p.edited for p in test}
    assert not {p.name.split(": ")[1] for p in tuning} & {p.name.split(": ")[1] for p in test if "local" not in p.name}


def test_an_original_stored_turned_is_compared_upright() -> None:
    scene = photos.house(400, 300)
    stored = photos.encode(np.rot90(scene).copy(), exif=photos.orientation_exif(6))
    assert structure_score(stored, photos.encode(scene)) >= STRUCTURE_THRESHOLD
    assert structure_score(photos.encode(np.rot90(scene).copy()), photos.encode(scene)) < STRUCTURE_THRESHOLD
