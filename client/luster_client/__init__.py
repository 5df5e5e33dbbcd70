"""Luster's Python client: `AsyncLuster` (aiohttp), `Luster` (the same, blocking) and the models they return."""

from luster_client.client import AsyncLuster
from luster_client.config import Config
from luster_client.errors import ApiError, ConfigError, LusterClientError, TransportError
from luster_client.models import (
    Asset,
    Batch,
    BatchCounts,
    BatchPage,
    BatchSummary,
    Job,
    JobPage,
    JobStatus,
    Style,
    Tier,
)
from luster_client.sync import Luster

__all__ = [
    "ApiError",
    "Asset",
    "AsyncLuster",
    "Batch",
    "BatchCounts",
    "BatchPage",
    "BatchSummary",
    "Config",
    "ConfigError",
    "Job",
    "JobPage",
    "JobStatus",
    "Luster",
    "LusterClientError",
    "Style",
    "Tier",
    "TransportError",
]
