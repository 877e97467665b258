"""The one place times are made and normalised: aware UTC end to end.

Bound aware (so PostgreSQL never reads a value in its session time zone) and read back aware:
SQLite hands back naive datetimes for timezone-aware columns; they hold UTC because only UTC is
ever written (`engagement.schema.UtcDateTime` sees to both on every time column).
"""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already (how the store keeps them)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)
