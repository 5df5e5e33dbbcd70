"""What the structure guard costs beside the local engine: its time over the engine's, premium tier.

`python -m bench.structure_guard` generates a 3000×2000 interior as a phone JPEG, enhances it with
`enhance_sync` (premium, default style) and scores the pair with `structure_score`, alternating the
two in each round so both see the same machine; the medians of the rounds give the ratio. The guard
may cost at most a tenth of the engine's time (issue 11, item 7).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.harness import write_report
from bench.markdown import Report, Section, Verdict, paragraphs, table
from services.worker.engines import EnhanceRequest
from services.worker.engines.local import enhance_sync
from services.worker.engines.structure import structure_score
from shared.domain import Style, Tier
from shared.imaging import DEFAULT_MAX_PIXELS
from tests.worker import photos

ROUNDS = 7
BUDGET = 0.10


def main(rounds: int = ROUNDS) -> float:
    original = photos.encode(photos.interior(3000, 2000))
    request = EnhanceRequest(image=original, prompt="", tier=Tier.PREMIUM, style=Style.DEFAULT)
    output = enhance_sync(request, max_pixels=DEFAULT_MAX_PIXELS).image  # also the warm-up
    structure_score(original, output)
    engine, guard = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        enhance_sync(request, max_pixels=DEFAULT_MAX_PIXELS)
        engine.append(time.perf_counter() - started)
        started = time.perf_counter()
        structure_score(original, output)
        guard.append(time.perf_counter() - started)
    ratio = statistics.median(guard) / statistics.median(engine)
    write_report(
        "structure_guard",
        {
            "benchmark": "structure_score on a 3000x2000 JPEG and its premium output, against enhance_sync "
            f"(premium, default style) on the same photo; medians of {rounds} alternating rounds",
            "guard_ms": _summary(guard),
            "engine_ms": _summary(engine),
            "ratio": round(ratio, 4),
            "budget": BUDGET,
        },
    )
    return ratio


def _summary(seconds: list[float]) -> dict[str, Any]:
    return {"median": round(statistics.median(seconds) * 1000, 1), "rounds": [round(s * 1000, 1) for s in seconds]}


def over_budget(ratio: float) -> str | None:
    if ratio > BUDGET:
        return f"the structure guard costs {ratio:.1%} of the local engine's premium time (budget {BUDGET:.0%})"
    return None


METHOD = """
A generated 3000×2000 interior as a phone JPEG, enhanced with `enhance_sync` (premium, default style) and the
pair scored with `structure_score`, the two alternating in each round so that both see the same machine; the
medians of the rounds give the ratio. The guard may cost at most a tenth of the engine's time (issue 11, item 7).
"""


def section(report: Report | None) -> Section:
    title, command = "What the structure guard costs beside the engine", "python -m bench.structure_guard"
    if report is None:
        return Section(title, command, METHOD)
    rows = [
        (what, f"{report[key]['median']} ms", ", ".join(map(str, report[key]["rounds"])))
        for what, key in (("structure guard", "guard_ms"), ("engine, premium", "engine_ms"))
    ]
    verdict = Verdict(
        f"the guard at most {BUDGET:.0%} of the engine's premium time",
        f"{report['ratio']:.1%}",
        over_budget(report["ratio"]),
    )
    return Section(title, command, METHOD, paragraphs(table(("", "median", "rounds (ms)"), rows)), verdict)


if __name__ == "__main__":
    main()
