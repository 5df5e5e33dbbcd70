"""docs/benchmarks.md as bench.report renders it from small reports: tables, verdicts, "not run yet", the header."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench import (
    drain,
    engine_speed,
    fair_share,
    ingest,
    report,
    structure_guard,
    tracing_cpu,
    tracing_overhead,
    worker_scaling,
)
from bench.machine import Machine, describe
from bench.markdown import Section, Verdict, table

MACHINE = Machine(
    date="2026-12-03 10:00 UTC",
    commit="abc1234 (uncommitted changes)",
    cpu="Intel(R) Xeon(R) Processor, 2 CPUs (x86_64)",
    memory="23.5 GiB",
    kernel="Linux 6.18",
    python="3.11.7",
    postgresql="15.20",
    rabbitmq="3.10.8",
    packages={"aiohttp": "3.14.5", "asyncpg": "0.32.0", "celery": None},
)
STAMP = {"at": "2026-12-03 09:00 UTC", "commit": "abc1234"}
SCALING: dict[str, Any] = {
    "benchmark": "48 free-tier jobs of a 6 MP photo through 1, 2 and 4 workers of one engine process each",
    "cpus": 2,
    "jobs_per_s": {"1": 7.25, "2": 12.65, "4": 12.24},
    "speedup": {"1": 1.0, "2": 1.74, "4": 1.69},
    "workers_at_work": {"1": [1, 1, 1], "2": [2, 2, 2], "4": [4, 4, 3]},
    "rounds": {"1": [7.25, 7.35, 7.23], "2": [12.84, 12.65, 12.54], "4": [12.5, 12.06, 12.24]},
    "measured": STAMP,
}
GUARD = {"guard_ms": {"median": 12.0, "rounds": [12.0, 12.5]}, "engine_ms": {"median": 300.0, "rounds": [300.0]}}


def timing(seconds: float, cpu: float) -> dict[str, float]:
    return {"seconds": seconds, "cpu_seconds": cpu}


ENGINE = {
    "cpus": 2,
    "pinned_to_one_core": True,
    "rounds": 3,
    "rows": [
        {
            "size": "6 MP",
            "tier": "premium",
            "style": "dusk",
            "engine": timing(0.345, 0.343),
            "plain": timing(0.45, 0.449),
        },
        {
            "size": "24 MP",
            "tier": "free",
            "style": "dusk",
            "engine": timing(0.178, 0.178),
            "plain": timing(1.72, 1.716),
        },
    ],
    "reduced_decode_psnr_db": {"6 MP premium": float("inf"), "24 MP free": 49.1},
}
IDLE = [{"jobs": 200, "p50_ms": 4.81, "p99_ms": 8.25, "max_ms": 12.0}, {"jobs": 200, "p50_ms": 4.98, "p99_ms": 10.4}]
DRAIN: dict[str, Any] = {
    "benchmark": "5000 queued no-op jobs",
    "cpus": 2,
    "jobs_per_s": {"luster": 181.5, "dramatiq": 184.3, "celery": 181.4},
    "faster_baseline": "dramatiq",
    "ratio_to_faster_baseline": 0.98,
    "cpu_us_per_job": {
        system: {
            "process_us_per_job": process,
            "postgresql_us_per_job": 1030,
            "rabbitmq_us_per_job": 750,
            "machine_us_per_job": process + 2300,
        }
        for system, process in (("luster", 2644), ("dramatiq", 3810), ("celery", 4102))
    },
    "idle_latency_ms": {"p50": 4.9, "p99": 9.3, "target_p50": 5.0},
    "rounds": {
        "luster": [{"jobs_per_s": 183.5}, {"jobs_per_s": 172.4}],
        "dramatiq": [{"jobs_per_s": 184.3}, {"jobs_per_s": 185.9}],
        "celery": [{"jobs_per_s": 185.0}, {"jobs_per_s": 181.4}],
        "idle_latency": IDLE,
    },
}


def sampled(drop: float) -> dict[str, Any]:
    return {
        "median_rps_on": 90.0,
        "median_rps_off": 100.0,
        "throughput_drop_percent": drop,
        "median_cpu_us_per_request_on": 1200,
        "median_cpu_us_per_request_off": 1000,
        "cpu_per_request_increase_percent": 20.0,
    }


TRACING = {
    "rounds": 9,
    "requests_per_round": {"submit_json": 1000, "ingest_photo": 200},
    "photo_bytes": 2_100_000,
    "concurrency": 16,
    "otlp_exports_received": 40,
    "ingest_photo": {"all_sampled": sampled(13.4), "production_sampling": sampled(2.0)},
    "submit_json": {"all_sampled": sampled(17.9), "production_sampling": sampled(3.0)},
}
COUNTS = {
    "requests_counted": 30,
    "instructions_per_request_on": 44_000_000,
    "instructions_per_request_unexported": 43_000_000,
    "instructions_per_request_off": 42_000_000,
    "increase_percent": 4.7,
    "of_which_export_percent": 2.4,
    "instructions_per_request_sampled": 42_600_000,
    "sampled_increase_percent": 1.4,
}


def outcome(mode: str, share: int, wait: float, ahead: int) -> dict[str, Any]:
    return {
        "mode": mode,
        "fair_share_queued": share,
        "backlog": 1000,
        "newcomer_wait_s": wait,
        "backlog_started_before_newcomer": ahead,
        "backlog_held_when_newcomer_arrived": 980 if share else 0,
    }


FAIR = {"outcomes": [outcome("fair-off", 0, 120.0, 1000), outcome("fair-on", 20, 2.5, 20)]}


def page(section: Section) -> str:
    return report.render([section], MACHINE)


def test_a_table_has_its_header_rule_and_one_line_per_row() -> None:
    assert table(("a", "b"), [(1, "x"), (2.5, "y")]).splitlines() == [
        "| a | b |",
        "|---|---|",
        "| 1 | x |",
        "| 2.5 | y |",
    ]


def test_a_met_target_is_ticked() -> None:
    assert Verdict("at most 10%", "4.0%").line() == "**Target**: at most 10%. **This run**: 4.0% ✓"


def test_a_missed_target_is_crossed_with_the_modules_own_reason() -> None:
    line = Verdict("two workers 1.8×", "1.74×", "2 workers gave 1.74×").line()
    assert line.endswith("**This run**: 1.74× ✗ (2 workers gave 1.74×)")


def test_worker_scaling_renders_its_rounds_and_misses_its_target() -> None:
    text = page(worker_scaling.section(SCALING))
    assert "| 2 | 12.65 | 12.84, 12.65, 12.54 | 2, 2, 2 | 1.74× |" in text
    assert "| 4 | 12.24 | 12.50, 12.06, 12.24 | 4, 4, 3 | 1.69× |" in text
    assert "**This run**: 1.74× ✗ (worker scaling: 2 workers gave 1.74× the jobs/s of one (target 1.8×))" in text
    assert (
        "| Workers, one to four | two workers at least 1.8× one worker's jobs/s (on two cores or more) | 1.74× ✗ |"
        in text
    )


def test_worker_scaling_shows_where_a_jobs_cpu_went_when_its_report_has_it() -> None:
    spent = {"engines": 117.1, "workers": 6.5, "postgresql": 2.4, "rabbitmq": 1.9, "machine": 129.8}
    report = {**SCALING, "cpu_ms_per_job": {"1": spent, "2": spent, "4": spent}}
    report["cores_busy"] = {"1": 1.04, "2": 1.92, "4": 1.98}

    text = page(worker_scaling.section(report))

    assert "| 2 | 117.1 | 6.5 | 2.4 | 1.9 | 129.8 | 1.92 |" in text
    assert "engine processes ms/job" not in page(worker_scaling.section(SCALING))  # a report from before


def _ingest_run(rate: float, p50: float, server: int, postgresql: int, rabbitmq: int, machine: int) -> dict[str, float]:
    return {
        "requests_per_s": rate,
        "p50_ms": p50,
        "p99_ms": p50 * 3,
        "cpu_us_per_request": server,
        "postgresql_us_per_request": postgresql,
        "rabbitmq_us_per_request": rabbitmq,
        "machine_us_per_request": machine,
    }


INGEST: dict[str, Any] = {
    "benchmark": "POST /jobs under wrk",
    "cpus": 2,
    "workloads": {
        "json_c64": {
            "luster": _ingest_run(600, 90.0, 1400, 900, 400, 2900),
            "bare": _ingest_run(1500, 40.0, 620, 200, 250, 1160),
            "ratio": 0.4,
            "rounds": {
                "luster": [_ingest_run(rate, 90.0, 1400, 900, 400, 2900) for rate in (610, 600, 580)],
                "bare": [_ingest_run(rate, 40.0, 620, 200, 250, 1160) for rate in (1400, 1500, 1620)],
            },
        },
        "json_c2": {
            "luster": _ingest_run(450, 4.2, 1500, 950, 420, 3100),
            "bare": _ingest_run(1000, 1.8, 640, 210, 260, 1200),
            "ratio": 0.45,
            "rounds": {
                "luster": [_ingest_run(450, 4.2, 1500, 950, 420, 3100)],
                "bare": [_ingest_run(1000, 1.8, 640, 210, 260, 1200)],
            },
        },
    },
}


def test_ingest_renders_where_each_requests_cpu_went_and_its_verdict() -> None:
    text = page(ingest.section(INGEST))
    assert "server CPU µs/req | PostgreSQL µs/req | RabbitMQ µs/req | machine µs/req |" in text
    assert (
        "| json, c=64 | 600 | 1500 | 0.40× | 90.0 / 40.0 | 270.0 / 120.0 "
        "| 1400 / 620 | 900 / 200 | 400 / 250 | 2900 / 1160 |" in text
    )
    assert "| json, c=64 | 610 / 1400, 600 / 1500, 580 / 1620 |" in text
    assert "**This run**: json_c64 0.40×, json_c2 p50 4.2 ms ✗ (ingest json_c64: 0.4× the bare handler's" in text


def test_the_structure_guard_within_its_budget_is_ticked() -> None:
    text = page(structure_guard.section({**GUARD, "ratio": 0.04}))
    assert "| structure guard | 12.0 ms | 12.0, 12.5 |" in text
    assert "**This run**: 4.0% ✓" in text


def test_the_engine_rows_psnr_and_verdict_come_from_the_report() -> None:
    text = page(engine_speed.section(ENGINE))
    assert "| 24 MP | free | dusk | 5.62 | 0.58 | 9.66× | 0.178 | 1.716 |" in text
    assert "6 MP premium identical, 24 MP free 49.1 dB" in text
    assert "The premium tier at 6 MP is 1.30× to 1.30× the plain pipeline" in text
    assert "slowest at 24 MP 9.66× (free/dusk), lowest PSNR 49.1 dB ✓" in text


def test_drain_reports_each_consumer_the_ratio_and_both_targets() -> None:
    text = page(drain.section(DRAIN))
    assert "| Luster | 181.5 | 183.5, 172.4 |" in text
    assert "Luster ÷ the faster baseline (Dramatiq): **0.98×**" in text
    assert "of the same cycle: 1.0×, 0.93× (median 0.97×; the target is judged on the medians above)" in text
    assert "| Luster | 2,644 | 1,030 | 750 | 4,944 |" in text
    assert "| Celery | 4,102 | 1,030 | 750 | 6,402 |" in text
    assert "| p50 | 4.81 ms | 4.98 ms | **4.9 ms** (target ≤ 5.0 ms) |" in text
    assert "✗ (drain: Luster drained at 0.98× the jobs/s of dramatiq (target 1.2×))" in text


def test_drain_splits_the_idle_latency_into_the_machines_floor_and_lusters_own() -> None:
    measured = [*IDLE, {"jobs": 200, "p50_ms": 4.9, "p99_ms": 9.0}]
    sums = [(0.6, 1.7, 2.3), (0.5, 1.5, 2.0), (0.7, 1.7, 2.4)]
    floors = [{"commit_ms": commit, "delivery_ms": delivery, "sum_ms": total} for commit, delivery, total in sums]
    report = {
        **DRAIN,
        "idle_latency_ms": {**DRAIN["idle_latency_ms"], "floor": 2.3},
        "rounds": {
            **DRAIN["rounds"],
            "idle_latency": [{**m, "floor": f} for m, f in zip(measured, floors, strict=True)],
        },
    }
    text = page(drain.section(report))
    assert (
        "| floor: a commit + a quorum queue's delivery | 0.6 + 1.7 ms | 0.5 + 1.5 ms | 0.7 + 1.7 ms | 2.3 ms |" in text
    )
    # Each round's own share, and the median of those (not the medians' difference: 4.9 - 2.3 = 2.60).
    assert "| Luster's own (p50 less the floor) | 2.51 ms | 2.98 ms | 2.50 ms | 2.51 ms |" in text
    assert "floor" not in page(drain.section(DRAIN)).split("idle latency, submit")[1].split("Read one run")[0]


def test_tracing_throughput_over_budget_names_the_path() -> None:
    text = page(tracing_overhead.section(TRACING))
    assert "| `ingest_photo` | every trace | 100.0 → 90.0 | 13.4 % | 1000 → 1200 | +20.0 % |" in text
    assert "photo ingest, every trace sampled: 13.4 %; largest drop of all 17.9 % ✓" in text


def test_instruction_counts_have_no_target() -> None:
    section = tracing_cpu.section({"ingest_photo": COUNTS, "submit_json": COUNTS})
    assert section.verdict is None
    assert "| `ingest_photo` | 30 | 42.00 M → 43.00 M → 44.00 M | +4.7 % | 2.4 % | 42.60 M (+1.4 %) |" in page(section)


def test_fair_share_within_the_share_is_ticked() -> None:
    text = page(fair_share.section({**FAIR, "newcomer_wait_ratio_off_to_on": 48.0}))
    assert "| fair-on | 20 | 2.5 s | 20 of 1000 | 980 |" in text
    assert "**This run**: 20 ✓" in text


def test_a_benchmark_without_a_report_keeps_its_place_as_not_run_yet(tmp_path: Path) -> None:
    (tmp_path / "worker_scaling.json").write_text(json.dumps(SCALING))
    sections = {section.title: section for section in report.collect(tmp_path)}
    assert len(sections) == len(report.SECTIONS)
    text = report.render(list(sections.values()), MACHINE)
    assert "Measured 2026-12-03 09:00 UTC at commit abc1234." in text
    assert "Not run yet: `python -m bench.engine_speed` (or `make bench`) measures it." in text
    assert text.count("Not run yet") == len(report.SECTIONS) - 1


def test_the_header_names_the_machine_servers_packages_and_commit() -> None:
    text = report.render([], MACHINE)
    for fact in (
        "2026-12-03 10:00 UTC, commit abc1234 (uncommitted changes)",
        "Intel(R) Xeon(R) Processor, 2 CPUs",
        "23.5 GiB",
        "Linux 6.18",
        "3.11.7",
        "PostgreSQL 15.20, RabbitMQ 3.10.8",
        "aiohttp 3.14.5, asyncpg 0.32.0, celery (not installed)",
    ):
        assert fact in text


async def test_servers_that_do_not_answer_still_give_a_header() -> None:
    machine = await describe("postgresql://postgres@127.0.0.1:1/none", "amqp://guest:guest@127.0.0.1:1/")
    assert machine.postgresql.startswith("unreachable")
    assert machine.rabbitmq.startswith("unreachable")
    assert machine.packages["asyncpg"]


def test_every_sections_command_runs_its_benchmark_alone() -> None:
    """The page tells a reader to run `python -m bench.<name>` for one section: that module must run as a program."""
    for _, render in report.SECTIONS:
        command = render(None).command
        module = command.removeprefix("python -m ")
        source = (Path(__file__).resolve().parents[2] / Path(*module.split("."))).with_suffix(".py").read_text()
        assert 'if __name__ == "__main__":' in source, f"`{command}` would import {module} and do nothing"


def test_a_drain_report_from_before_the_cpu_was_counted_still_renders() -> None:
    earlier = {key: value for key, value in DRAIN.items() if key != "cpu_us_per_job"}
    text = page(drain.section(earlier))
    assert "| Luster | 181.5 | 183.5, 172.4 |" in text
    assert "µs/job" not in text
