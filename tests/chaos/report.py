"""The chaos results table: each scenario appends a JSON line, the table is printed from those lines.

python -m tests.chaos.report                # print the table of the last run (CHAOS_JOBS picks short or full)
python -m tests.chaos.report --update-docs  # also replace the table in docs/reliability.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.chaos.size import SIZE
from tests.system.processes import ROOT

RESULTS = Path(os.environ.get("CHAOS_RESULTS", ROOT / "var" / "chaos" / f"results-{SIZE.label}.jsonl"))
HISTORY = RESULTS.parent / "history.jsonl"
RUNS = RESULTS.parent / "runs"  # each scenario's service logs
DOCS = ROOT / "docs" / "reliability.md"
START, END = "<!-- chaos-table:start -->", "<!-- chaos-table:end -->"
COLUMNS = ("scenario", "jobs", "lost", "duplicated", "stuck", "seconds to recover", "drain s", "checks", "notes")


def reset() -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("")


def record(result: dict[str, Any]) -> None:
    """Append to this run's results, and to the history of every run (evidence outlives the table)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(result, default=str) + "\n"
    for path in (RESULTS, HISTORY):
        with path.open("a") as file:
            file.write(line)


def load() -> list[dict[str, Any]]:
    if not RESULTS.exists():
        return []
    rows = [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]
    return sorted(rows, key=lambda row: _number(row["scenario"]))


def _number(scenario: str) -> int:
    match = re.match(r"(\d+)", scenario)
    return int(match.group(1)) if match else 99


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def _row(result: dict[str, Any]) -> list[str]:
    problems = result.get("violations") or []
    notes = result.get("summary", "")
    return [
        result["scenario"],
        _cell(result["jobs"]),
        _cell(result["lost"]),
        _cell(result["duplicated"]),
        _cell(result["stuck"]),
        _cell(result["recover_s"]),
        _cell(result["drain_s"]),
        _checks(problems),
        notes,
    ]


def _checks(problems: list[str]) -> str:
    if not problems:
        return "ok"
    return "FAILED: " + "; ".join(problems)


def table(results: list[dict[str, Any]]) -> str:
    rows = [list(COLUMNS), ["---"] * len(COLUMNS), *(_row(result) for result in results)]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def heading(results: list[dict[str, Any]]) -> str:
    when = max((r["run_at"] for r in results), default=datetime.now(UTC).isoformat(timespec="seconds"))
    sizes = sorted({str(r.get("size", "")) for r in results})
    return f"Run finished {when} (size: {', '.join(sizes)})."


def update_docs(results: list[dict[str, Any]]) -> None:
    text = DOCS.read_text()
    block = f"{START}\n{heading(results)}\n\n{table(results)}\n{END}"
    updated, count = re.subn(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    if count != 1:
        raise SystemExit(f"{DOCS} has no {START} ... {END} block")
    DOCS.write_text(updated)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--update-docs", action="store_true", help=f"replace the table in {DOCS.name}")
    parser.add_argument("--quiet", action="store_true", help="do not print the table (pytest just did)")
    args = parser.parse_args()
    results = load()
    if not results:
        raise SystemExit(f"no chaos results in {RESULTS}")
    if not args.quiet:
        print(heading(results))
        print(table(results))
    if args.update_docs:
        update_docs(results)
        print(f"updated {DOCS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
