"""Time text of the privacy commands: ISO 8601 out, user-given dates in. Times themselves are
made and normalised by `engagement.timeutil` (aware UTC end to end)."""

from __future__ import annotations

import re
from datetime import datetime

from engagement.errors import ConfigError
from engagement.timeutil import as_utc


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
