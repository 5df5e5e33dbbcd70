"""The vocabulary every service shares: tiers, styles, job statuses and the legal transitions."""

from __future__ import annotations

from enum import StrEnum


class Tier(StrEnum):
    FREE = "free"
    PREMIUM = "premium"


class Style(StrEnum):
    DEFAULT = "default"
    BRIGHT_AIRY = "bright_airy"
    DUSK = "dusk"
    SKY_REPLACEMENT = "sky_replacement"
    LAWN_CLEANUP = "lawn_cleanup"


class JobStatus(StrEnum):
    QUEUED = "queued"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


TERMINAL_STATUSES = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELED})

# target status -> the statuses a job may move to it from (DESIGN §2); anything else is refused.
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PROCESSING: frozenset({JobStatus.QUEUED, JobStatus.PROCESSING}),
    JobStatus.QUEUED: frozenset({JobStatus.PROCESSING}),
    JobStatus.SUCCEEDED: frozenset({JobStatus.PROCESSING}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED, JobStatus.PROCESSING}),
    JobStatus.CANCELED: frozenset({JobStatus.QUEUED}),
}
