"""The one place times are made, normalised and written as text: aware UTC end to end.

Bound aware (so PostgreSQL never reads a value in its session time zone) and read back aware:
SQLite hands back naive datetimes for timezone-aware columns; they hold UTC because only UTC is
ever written (`engagement.core.schema.UtcDateTime` sees to both on every time column). The
privacy records and commands write times as ISO 8601 text (`iso`) and read user-given dates
(`parse_when`).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from engagement.core.errors import ConfigError


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already (how the store keeps them)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def iso(value: datetime | None) -> str | None:
    return None if value is None else as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_when(text: str, *, what: str = "date") -> datetime:
    """Parse a user-given date or date-time (ISO 8601). A time without an offset is UTC."""
    raw = text.strip()
    try:
        if _DATE_ONLY.match(raw):
            value = datetime.strptime(raw, "%Y-%m-%d")
        else:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{what} {text!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS[+07:00]"
        ) from None
    return as_utc(value)
