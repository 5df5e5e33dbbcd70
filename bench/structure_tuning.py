"""Where STRUCTURE_THRESHOLD comes from: the guard's scores on the tuning pairs, then on the test pairs.

`python -m bench.structure_tuning` scores every pair of tests/worker/structure_pairs.py and prints, per
set, each score with the verdict expected, the lowest score among edits that must pass, the highest
among edits that must be flagged, and the threshold halfway between them on the tuning set. The test
set is printed against the threshold in the code; it played no part in choosing it.
"""

from __future__ import annotations

from services.worker.engines.structure import STRUCTURE_THRESHOLD, structure_score
from tests.worker.structure_pairs import Pair, held_out_pairs, tuning_pairs


def scored(pairs: list[Pair]) -> list[tuple[float, Pair]]:
    return sorted(((structure_score(pair.original, pair.edited), pair) for pair in pairs), key=lambda row: row[0])


def bounds(rows: list[tuple[float, Pair]]) -> tuple[float, float]:
    """The lowest score that must pass and the highest that must be flagged."""
    lowest_pass = min(score for score, pair in rows if pair.expect_pass)
    highest_flag = max(score for score, pair in rows if not pair.expect_pass)
    return lowest_pass, highest_flag


def table(title: str, rows: list[tuple[float, Pair]]) -> str:
    lines = [f"### {title}", "", "| score | expected | verdict | pair |", "|---|---|---|---|"]
    for score, pair in rows:
        verdict = "pass" if score >= STRUCTURE_THRESHOLD else "flag"
        expected = "pass" if pair.expect_pass else "flag"
        mark = "" if verdict == expected else " **wrong**"
        lines.append(f"| {score:.3f} | {expected} | {verdict}{mark} | {pair.name} |")
    lowest_pass, highest_flag = bounds(rows)
    lines += [
        "",
        f"lowest passing {lowest_pass:.3f}, highest flagged {highest_flag:.3f}, gap {lowest_pass - highest_flag:.3f}",
    ]
    return "\n".join(lines)


def main() -> None:
    tuning = scored(tuning_pairs())
    lowest_pass, highest_flag = bounds(tuning)
    print(table("Tuning set (chooses the threshold)", tuning))
    print(f"\nthreshold halfway: {(lowest_pass + highest_flag) / 2:.3f}; in the code: {STRUCTURE_THRESHOLD}\n")
    print(table("Test set (checks it)", scored(held_out_pairs())))


if __name__ == "__main__":
    main()
