"""Style presets, prompt steering and per-tier output sizes shared by the engines."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from shared.domain import Style, Tier


@dataclass(frozen=True)
class Adjustments:
    """Parameters of the local pipeline; a neutral value leaves its step out."""

    white_balance: float = 0.9  # share of the gray-world correction applied, 0..1
    target_luminance: float = 0.5  # mean luminance (0..1) the exposure step aims for
    shadow_lift: float = 0.0  # raises the blacks towards a matte, airy look
    shadows: float = 0.04  # raises the dark tones (most at 0.2) with black kept black
    contrast: float = 1.08  # slope of the tone curve around the mean
    saturation: float = 1.1
    warmth: float = 0.0  # -1 cool .. +1 warm
    sharpen: float = 80.0  # UnsharpMask percent
    sharpen_radius: float = 1.2
    dusk_sky: float = 0.0  # strength of the evening gradient over the top of the frame
    sky_replacement: float = 0.0  # share of the detected sky replaced by a clear gradient, 0..1
    lawn: float = 0.0  # strength of the green unification in the lower frame


@dataclass(frozen=True)
class StylePreset:
    """A style: what the local pipeline does and what the OpenAI engine is asked for."""

    style: Style
    prompt: str
    adjustments: Adjustments = field(default_factory=Adjustments)


@dataclass(frozen=True)
class TierOutput:
    """The size and encoding quality a tier pays for."""

    long_edge: int
    jpeg_quality: int

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        """A ``width`` x ``height`` photo's size at this long edge: the aspect kept within a pixel."""
        scale = self.long_edge / max(width, height)
        return max(1, round(width * scale)), max(1, round(height * scale))


TIER_OUTPUT: Mapping[Tier, TierOutput] = {
    Tier.FREE: TierOutput(long_edge=1024, jpeg_quality=82),
    Tier.PREMIUM: TierOutput(long_edge=1536, jpeg_quality=92),
}

PRESETS: Mapping[Style, StylePreset] = {
    Style.DEFAULT: StylePreset(
        Style.DEFAULT,
        "Give it a natural, professional real-estate edit: neutral white balance, correct exposure, "
        "gentle contrast, clean true-to-life colours and crisp detail.",
    ),
    Style.BRIGHT_AIRY: StylePreset(
        Style.BRIGHT_AIRY,
        "Make it bright and airy: generous even light, lifted shadows, soft contrast, clean whites "
        "and a fresh, open feel.",
        Adjustments(
            target_luminance=0.58,
            shadow_lift=0.06,
            contrast=0.95,
            saturation=1.0,
            warmth=0.1,
            sharpen=50.0,
            sharpen_radius=1.0,
        ),
    ),
    Style.DUSK: StylePreset(
        Style.DUSK,
        "Turn it into a twilight shot: a warm orange sky deepening to evening blue at the top, "
        "warm light in the windows, slightly darker overall with warm tones.",
        Adjustments(target_luminance=0.36, contrast=1.12, saturation=1.15, warmth=0.7, sharpen=70.0, dusk_sky=0.8),
    ),
    Style.SKY_REPLACEMENT: StylePreset(
        Style.SKY_REPLACEMENT,
        "Replace a dull, grey or blown-out sky with a clear blue sky with a few soft white clouds, "
        "blended naturally around roofs and trees.",
        Adjustments(saturation=1.12, sky_replacement=1.0),
    ),
    Style.LAWN_CLEANUP: StylePreset(
        Style.LAWN_CLEANUP,
        "Make the lawn healthy, even and green: fill patchy or brown spots and tidy the grass without "
        "changing the layout of the garden.",
        Adjustments(lawn=0.85),
    ),
}

# word in the user's prompt -> (Adjustments field, delta); synonyms share a nudge so it counts once.
_BRIGHTER = ("target_luminance", 0.08)
_DARKER = ("target_luminance", -0.08)
_WARMER = ("warmth", 0.5)
_COOLER = ("warmth", -0.5)
_VIVID = ("saturation", 0.2)
_MUTED = ("saturation", -0.15)
_SHARPER = ("sharpen", 60.0)
_SOFTER = ("sharpen", -40.0)
_CONTRAST = ("contrast", 0.12)
_STEERING: Mapping[str, tuple[str, float]] = {
    **dict.fromkeys(("brighter", "bright", "lighter", "lighten", "brighten"), _BRIGHTER),
    **dict.fromkeys(("darker", "dark", "darken", "moody"), _DARKER),
    **dict.fromkeys(("warmer", "warm", "cozy", "cosy"), _WARMER),
    **dict.fromkeys(("cooler", "cool", "colder"), _COOLER),
    **dict.fromkeys(("vivid", "saturated", "vibrant", "colorful", "colourful"), _VIVID),
    **dict.fromkeys(("muted", "desaturated", "subdued"), _MUTED),
    **dict.fromkeys(("sharper", "sharp", "crisp", "crisper", "sharpen"), _SHARPER),
    **dict.fromkeys(("softer", "soft", "soften"), _SOFTER),
    **dict.fromkeys(("contrast", "contrasty", "punchy"), _CONTRAST),
}
_LIMITS: Mapping[str, tuple[float, float]] = {
    "target_luminance": (0.25, 0.7),
    "warmth": (-1.0, 1.0),
    "saturation": (0.6, 1.6),
    "sharpen": (0.0, 250.0),
    "contrast": (0.8, 1.4),
}
_NEGATIONS = frozenset({"not", "no", "less", "without", "don't", "dont", "never", "avoid"})
# "not too bright": a negation up to this many words before the keyword cancels it.
_NEGATION_REACH = 2


def adjustments_for(style: Style, prompt: str) -> Adjustments:
    """The preset's pipeline parameters, nudged by the words of the user's prompt."""
    return steer(PRESETS[style].adjustments, prompt)


def steer(adjustments: Adjustments, prompt: str) -> Adjustments:
    """Apply each nudge the prompt asks for once, within the field's limits."""
    changes: dict[str, float] = {}
    for name, delta in sorted(requested_nudges(prompt)):
        low, high = _LIMITS[name]
        current = changes.get(name, getattr(adjustments, name))
        changes[name] = min(high, max(low, current + delta))
    return replace(adjustments, **changes)


def requested_nudges(prompt: str) -> set[tuple[str, float]]:
    """The (field, delta) nudges named by un-negated words of ``prompt``."""
    words = re.findall(r"[a-z']+", prompt.lower())
    return {
        _STEERING[word]
        for index, word in enumerate(words)
        if word in _STEERING and _NEGATIONS.isdisjoint(words[max(0, index - _NEGATION_REACH) : index])
    }
