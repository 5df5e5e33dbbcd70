"""The transactional outbox: messages committed with a state change, published after the commit.

`stage` writes a message in the caller's transaction (staging.py); `flush` publishes what that
transaction staged right after its commit (publishing.py); `relay` publishes whatever is left behind,
broker down or process killed (relay.py). Each message may be published more than once, never zero
times: consumers are idempotent.
"""

from shared.outbox.publishing import (
    PUBLISH_TIMEOUT_S,
    PublishedMarks,
    Publisher,
    flush,
    marks_of,
    settle,
    transaction,
)
from shared.outbox.relay import prune, relay, relay_once
from shared.outbox.staging import (
    OUTBOX_COLUMNS,
    Outbox,
    Staged,
    message_of,
    outbox_arguments,
    stage,
    stage_many,
)

__all__ = [
    "OUTBOX_COLUMNS",
    "PUBLISH_TIMEOUT_S",
    "Outbox",
    "PublishedMarks",
    "Publisher",
    "Staged",
    "flush",
    "marks_of",
    "message_of",
    "outbox_arguments",
    "prune",
    "relay",
    "relay_once",
    "settle",
    "stage",
    "stage_many",
    "transaction",
]
