"""The pieces of docs/benchmarks.md a benchmark renders: its section, its tables, its verdict against its target."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

# A benchmark's report as bench.harness.write_report saved it in bench/results/<name>.json.
Report = dict[str, Any]


@dataclass(frozen=True)
class Verdict:
    """A run against its target; `problem` is the module's own `over_budget` message, None when met."""

    target: str
    measured: str
    problem: str | None = None

    @property
    def met(self) -> bool:
        return self.problem is None

    def line(self) -> str:
        mark = "✓" if self.met else f"✗ ({self.problem})"
        return f"**Target**: {self.target}. **This run**: {self.measured} {mark}"


@dataclass(frozen=True)
class Section:
    """One benchmark's part of the page. `method` is how and why it measures, whatever the numbers;
    `results` and `verdict` are this run's, None until the benchmark has run; `measured` says when and at
    which commit, filled in by bench.report from the report's stamp."""

    title: str
    command: str
    method: str
    results: str | None = None
    verdict: Verdict | None = None
    measured: str | None = None


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def paragraphs(*parts: str | None) -> str:
    """Blocks of Markdown, a blank line between them; None and empty parts left out."""
    return "\n\n".join(part.strip() for part in parts if part and part.strip())


def spread_percent(values: Sequence[float], median: float) -> float:
    """How far the furthest round lies from the median, in percent of it."""
    return max(abs(value - median) for value in values) / median * 100
