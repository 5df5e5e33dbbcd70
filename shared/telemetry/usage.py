"""What this process uses, as its heartbeats report it: CPU time since it started, and resident memory."""

from __future__ import annotations

import os
import resource
import sys

from shared.events import ProcessUsage

_STATM = "/proc/self/statm"


def process_usage() -> ProcessUsage:
    times = os.times()
    return ProcessUsage(cpu_seconds=round(times.user + times.system, 3), rss_bytes=_resident_bytes())


def _resident_bytes() -> int:
    # /proc is the kernel's memory, not a disk: reading it does not block the event loop.
    try:
        with open(_STATM, encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak instead, in the unit the platform reports it
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
