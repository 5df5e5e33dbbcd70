"""The engine benchmarks measure on one core, and only while they measure: `make bench` starts every later
benchmark's servers and workers from the same process, and a child inherits its parent's CPU affinity."""

from __future__ import annotations

import os

import pytest

from bench.engine_rate import pinned_to_one_core


def test_the_process_is_on_one_core_only_inside_the_block() -> None:
    allowed = os.sched_getaffinity(0)
    with pinned_to_one_core() as core:
        assert os.sched_getaffinity(0) == {core}
    assert os.sched_getaffinity(0) == allowed


def test_the_cores_come_back_when_the_measurement_fails() -> None:
    allowed = os.sched_getaffinity(0)
    with pytest.raises(RuntimeError), pinned_to_one_core():
        raise RuntimeError("a measurement that broke")
    assert os.sched_getaffinity(0) == allowed
