"""Reading a Prometheus scrape: its samples, and the metric names a registry exposes."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample


def samples(text: str) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(text: str, name: str, **labels: str) -> float:
    """The sum of `name`'s samples whose labels include `labels` (0 when there is none)."""
    return sum(s.value for s in samples(text) if s.name == name and labels.items() <= s.labels.items())


def exposed_names(registry: CollectorRegistry) -> set[str]:
    """Every series name a scrape of `registry` shows, histogram and counter suffixes included."""
    return {sample.name for sample in samples(generate_latest(registry).decode())}
