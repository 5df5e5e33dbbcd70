"""CPU instructions per request with tracing on against off, counted by valgrind's callgrind.

Throughput on a shared machine moves with its neighbours; an instruction count does not: the same
requests cost the same count whatever else the machine runs, so this is where a change to tracing's
cost shows (the throughput benchmark could not tell two OTLP encoders apart; this can). Each API
runs under callgrind with counting off through start-up and warm-up, and on for a fixed number of
requests plus the seconds their spans take to be exported (the idle loop counts alike in all).
A third API makes its spans without exporting them, as a service without OTLP_ENDPOINT does: the
difference splits tracing's cost into making spans and exporting them (the library's OTLP exporter).
Those three sample every trace: the cost per traced request. A fourth samples as production does by
default (one trace in ten), which is what tracing costs production per request.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import aiohttp

from bench.harness import (
    DATABASE_URL,
    PRODUCTION,
    TRACING_OFF,
    WORK_DIR,
    WORKLOADS,
    bench_headers,
    burst,
    cleanup_broker,
    collector,
    fresh_database,
    ready,
    start_api,
    upload_asset,
    write_report,
)
from bench.markdown import Report, Section, paragraphs, table

# Under valgrind a request runs some fifty times slower; these keep each mode to a minute or two.
REQUESTS = {"submit_json": 300, "ingest_photo": 30}
WARM_UP = {"submit_json": 50, "ingest_photo": 5}
CONCURRENCY = 8
# The batch span processor exports every 5 s; the window stays open past that so the export is counted.
EXPORT_WAIT = 8.0


async def _callgrind_control(*args: str) -> None:
    process = await asyncio.create_subprocess_exec("callgrind_control", *args, stdout=subprocess.DEVNULL)
    if await process.wait() != 0:
        raise RuntimeError(f"callgrind_control {' '.join(args)} failed")


def _dumped_instructions(out: Path, before: set[Path]) -> int:
    """The `totals:` line of the dump callgrind has just written beside its output file."""
    [dump] = set(out.parent.glob(f"{out.name}*")) - before
    for line in dump.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise RuntimeError(f"{dump} has no totals line")


async def _count(name: str, port: int, extra: dict[str, str]) -> dict[str, float]:
    """Instructions per request of each workload for one API, started under callgrind."""
    out = WORK_DIR / f"callgrind.{name}"
    for stale in out.parent.glob(f"{out.name}*"):
        stale.unlink()
    wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
    process = start_api(name, port, {**extra, "STARTUP_TIMEOUT": "300"}, wrapper=wrapper)
    url = f"http://127.0.0.1:{port}"
    counts: dict[str, float] = {}
    try:
        async with asyncio.timeout(600):
            await ready(url)
        async with aiohttp.ClientSession(headers=await bench_headers()) as session:
            asset_id = await upload_asset(session, url)
            for workload, request in WORKLOADS.items():
                await burst(session, url, asset_id, request, count=WARM_UP[workload], concurrency=CONCURRENCY)
                before = set(out.parent.glob(f"{out.name}*"))
                await _callgrind_control("--instr=on", str(process.pid))
                await burst(session, url, asset_id, request, count=REQUESTS[workload], concurrency=CONCURRENCY)
                await asyncio.sleep(EXPORT_WAIT)
                await _callgrind_control("--instr=off", str(process.pid))
                await _callgrind_control("--dump", str(process.pid))
                counts[workload] = _dumped_instructions(out, before) / REQUESTS[workload]
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 120)
    return counts


async def main() -> dict[str, Any]:
    if shutil.which("valgrind") is None:
        raise SystemExit("luster: the instruction-count benchmark needs valgrind (Debian: apt-get install valgrind)")
    await fresh_database(DATABASE_URL)  # no other benchmark's rows for this one's relays to publish
    async with collector() as (collector_url, _):
        try:
            on = await _count("cg-on", 8796, {"OTLP_ENDPOINT": collector_url})
            # A service without OTLP_ENDPOINT still makes its spans (logs and jobs carry trace ids).
            unexported = await _count("cg-unexported", 8798, {})
            off = await _count("cg-off", 8797, TRACING_OFF)
            # As production runs it: one trace in ten sampled and exported, the rest made as unsampled spans.
            sampled = await _count("cg-sampled", 8789, {"OTLP_ENDPOINT": collector_url, **PRODUCTION})
        finally:
            await cleanup_broker(["cg-on", "cg-unexported", "cg-off", "cg-sampled"])
    report: dict[str, Any] = {
        "benchmark": "CPU instructions per request by callgrind: tracing on (100 % sampled, exported over "
        "OTLP/HTTP), spans made but not exported (no OTLP_ENDPOINT), and off (OTEL_SDK_DISABLED)"
    }
    for workload in WORKLOADS:
        report[workload] = {
            "requests_counted": REQUESTS[workload],
            "instructions_per_request_on": round(on[workload]),
            "instructions_per_request_unexported": round(unexported[workload]),
            "instructions_per_request_off": round(off[workload]),
            "increase_percent": round((on[workload] / off[workload] - 1) * 100, 1),
            "of_which_export_percent": round((on[workload] - unexported[workload]) / off[workload] * 100, 1),
            "instructions_per_request_sampled": round(sampled[workload]),
            "sampled_increase_percent": round((sampled[workload] / off[workload] - 1) * 100, 1),
        }
    write_report("tracing_cpu", report)
    return report


METHOD = """
Instructions per request counted by valgrind's callgrind, which machine noise cannot move: the same requests
cost the same count whatever else the machine runs, so this is where a change to tracing's cost shows. Each API
runs under callgrind with counting off through start-up and warm-up, and on for a fixed number of requests plus
the seconds their spans take to be exported. Four APIs: tracing on (every trace sampled, exported over
OTLP/HTTP), spans made but not exported (no `OTLP_ENDPOINT`, as a service without a collector runs), off
(`OTEL_SDK_DISABLED`), and production's default sampling (one trace in ten sampled and exported; the others
still make their spans, unsampled, which cost far less but not nothing). The second splits tracing's cost into
making spans and exporting them; the last is what tracing costs production per request, without the noise
that moves the throughput section's figure from run to run; for a JSON submission it was +38.2 % while the
asyncpg and aiohttp-client instrumentations still made their spans inside a dropped trace, before
2026-12-05. Off installs no server-span middleware since 2026-12-06 (ed2c71f); the no-op span it made
(8.6 % of a JSON submission) moved from off's count into tracing's increase. Since 2026-12-07 (6aeda82) a
message published or handled in a dropped trace gets no span of its own. What an unsampled request still
costs (2026-12-07 at 87d617d, JSON, every trace dropped: the sampler at ratio 0, one part taken away at a
time, 300 requests each): +12.0 % over off in all, of which asyncpg's instrumentation, suppressed but still
wrapping every statement, 1.3 %, and the request's span and what follows from the trace it starts (its
context current, the libraries' instrumentation suppressed inside it, the trace's context written into the
job's message) 10.3 %; without that span asyncpg's instrumentation makes spans of its own, and the request
costs +17.9 %. No target: the count is what a change to tracing is judged by (`make bench` installs Debian's
`valgrind`).
"""


def _millions(count: float) -> str:
    return f"{count / 1e6:.2f} M"


def section(report: Report | None) -> Section:
    title, command = "What tracing costs: instructions per request", "python -m bench.tracing_cpu"
    if report is None:
        return Section(title, command, METHOD)
    rows = [
        (
            f"`{workload}`",
            counts["requests_counted"],
            " → ".join(_millions(counts[f"instructions_per_request_{mode}"]) for mode in ("off", "unexported", "on")),
            f"+{counts['increase_percent']} %",
            f"{counts['of_which_export_percent']} %",
            f"{_millions(counts['instructions_per_request_sampled'])} (+{counts['sampled_increase_percent']} %)",
        )
        for workload in WORKLOADS
        for counts in (report[workload],)
    ]
    header = (
        "workload",
        "requests counted",
        "off → spans made → exported",
        "increase",
        "of which export",
        "production's sampling",
    )
    return Section(title, command, METHOD, paragraphs(table(header, rows)))


if __name__ == "__main__":
    asyncio.run(main())
