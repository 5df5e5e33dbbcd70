"""Keyset-pagination cursors: an opaque token naming the (created_at, id) of the last row a page showed.

Lists ordered newest first on (created_at, id) use them (shared/jobs.py, shared/assets.py); a cursor
names a position, not a table, so one issued by another list is simply a position in this one.
"""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

from shared.errors import InvalidField

# A cursor is at most this long (ours are about 90 characters), and names a time in this range: the
# bounds keep a forged one from reaching PostgreSQL as a date it cannot represent.
MAX_CURSOR_LENGTH = 200
CURSOR_YEARS = range(2000, 2200)


def encode_cursor(created_at: datetime, row_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{row_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """The (created_at, id) a cursor from encode_cursor names; anything encode_cursor could not have
    written (other padding, alphabets, separators, time or UUID spellings, naive or absurd times) is a 422."""
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        text = base64.b64decode(cursor.encode("ascii"), altchars=b"-_", validate=True).decode("ascii")
        created_text, id_text = text.split("|")
        created, row_id = datetime.fromisoformat(created_text), uuid.UUID(id_text)
    except (ValueError, UnicodeError) as error:  # binascii.Error is a ValueError
        raise _forged() from error
    canonical = created.tzinfo is not None and created.year in CURSOR_YEARS
    if not canonical or (created.isoformat(), str(row_id)) != (created_text, id_text):
        raise _forged()
    return created, row_id


def _forged() -> InvalidField:
    return InvalidField("cursor is not one this API issued", field="cursor")
