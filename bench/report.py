"""docs/benchmarks.md, rendered from bench/results/*.json; `python -m bench.report` re-renders it, measuring nothing.

Every benchmark saves its report as bench/results/<name>.json (`bench.harness.write_report`, stamped with the
date and commit) and renders its own part of the page: `section(report | None) -> bench.markdown.Section`, its
method and reasons whatever the numbers, and from a report its tables and its `Verdict` (the target, this run's
figure, and the module's own `over_budget` message when missed). The page is every section in SECTIONS, each from
its own file, under a header describing the machine, the servers, the packages and the commit: running one
benchmark alone and then this leaves the others' sections as they were, and a benchmark with no file yet keeps
its place as "not run yet". `python -m bench` runs them all and then writes the page, before failing on a budget.

Adding a benchmark to the page: give its module a `section` function and add one line to SECTIONS,
`("ingest", ingest.section),` where "ingest" is the name the module passes to `write_report`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from bench import (
    drain,
    engine_speed,
    fair_share,
    ingest,
    monitor_absorption,
    structure_guard,
    tracing_cpu,
    tracing_overhead,
    worker_scaling,
)
from bench.harness import AMQP_URL, DATABASE_URL, RESULTS, ROOT
from bench.machine import Machine, describe
from bench.markdown import Report, Section, paragraphs, table

PAGE = ROOT / "docs" / "benchmarks.md"
SECTIONS: tuple[tuple[str, Callable[[Report | None], Section]], ...] = (
    ("engine_speed", engine_speed.section),
    ("worker_scaling", worker_scaling.section),
    ("drain", drain.section),
    ("ingest", ingest.section),
    ("monitor_absorption", monitor_absorption.section),
    ("tracing_overhead", tracing_overhead.section),
    ("tracing_cpu", tracing_cpu.section),
    ("fair_share", fair_share.section),
    ("structure_guard", structure_guard.section),
)
INTRODUCTION = """
Written by `make bench` (`python -m bench`), which runs every benchmark below and then renders this page from
their reports in `bench/results/*.json`; `python -m bench.report` renders it again without measuring. A
section comes from its benchmark's last run, dated beside it, so one benchmark run alone (its command below)
updates its own section and leaves the others'. Absolute numbers move from machine to machine; the ratios are
what the targets are about.
"""


def load(results: Path, name: str) -> Report | None:
    path = results / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def collect(results: Path = RESULTS) -> list[Section]:
    """Every benchmark's section, each from its own report, stamped with when it was measured."""
    sections = []
    for name, render in SECTIONS:
        report = load(results, name)
        section = render(report)
        if report is not None and "measured" in report:
            stamp = report["measured"]
            section = replace(section, measured=f"Measured {stamp['at']} at commit {stamp['commit']}.")
        sections.append(section)
    return sections


def header(machine: Machine) -> str:
    installed = ", ".join(f"{name} {version or '(not installed)'}" for name, version in machine.packages.items())
    facts = {
        "Rendered": f"{machine.date}, commit {machine.commit}",
        "CPU": machine.cpu,
        "Memory": machine.memory,
        "Kernel": machine.kernel,
        "Python": machine.python,
        "Servers": f"PostgreSQL {machine.postgresql}, RabbitMQ {machine.rabbitmq}",
        "Packages": installed,
    }
    return "\n".join(f"- **{name}**: {value}" for name, value in facts.items())


def summary(sections: Sequence[Section]) -> str:
    """One row per benchmark with a target: whether its last run met it."""
    rows = [
        (section.title, section.verdict.target, f"{section.verdict.measured} {'✓' if section.verdict.met else '✗'}")
        for section in sections
        if section.verdict is not None
    ]
    return table(("benchmark", "target", "last run"), rows) if rows else ""


def render_section(section: Section) -> str:
    results = (
        paragraphs(section.measured, section.results, section.verdict.line() if section.verdict else None)
        if section.results is not None
        else f"Not run yet: `{section.command}` (or `make bench`) measures it."
    )
    return paragraphs(f"## {section.title}", f"`{section.command}`", section.method, results)


def render(sections: Sequence[Section], machine: Machine) -> str:
    body = [render_section(section) for section in sections]
    return paragraphs("# Benchmarks", INTRODUCTION, header(machine), summary(sections), *body) + "\n"


def write(sections: Sequence[Section], path: Path, machine: Machine) -> None:
    path.write_text(render(sections, machine))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the reports are")
    parser.add_argument("--output", type=Path, default=PAGE)
    args = parser.parse_args(argv)
    publish(args.results, args.output)


def publish(results: Path = RESULTS, output: Path = PAGE) -> None:
    """The page from every report there is, under a description of this machine as it is now."""
    write(collect(results), output, asyncio.run(describe(DATABASE_URL, AMQP_URL)))
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
