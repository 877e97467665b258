"""How a second of a session reads on screen: wall-clock time when the session's start is known,
else time since the start as m:ss (h:mm:ss past an hour). Never fractions of minutes.

Charts get a datetime column holding the local wall-clock time *labelled as UTC* and draw it on
a UTC time scale, so the browser's own time zone never shifts what the facilitator sees.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd

from engagement.core.errors import ConfigError
from engagement.core.i18n import fmt_seconds

TZ_ENV = "ENGAGEMENT_TIMEZONE"
# Elapsed time is drawn as the time of day of a fixed date (only the time of day shows).
_ELAPSED_BASE = pd.Timestamp("2000-01-01")


def local_tz() -> tzinfo:
    """The zone times are shown in: ENGAGEMENT_TIMEZONE (an IANA name such as Asia/Jakarta, set
    by `engagement dashboard --timezone`), else the server's own zone."""
    name = os.environ.get(TZ_ENV, "").strip()
    if not name:
        return datetime.now().astimezone().tzinfo or timezone.utc
    return zone(name)


def zone(name: str) -> tzinfo:
    """The IANA zone `name`, or a ConfigError that says how to write one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r}; use an IANA name such as Asia/Jakarta, Asia/Makassar or Asia/Jayapura") from None


def local_text(value: object, tz: tzinfo | None = None, seconds: bool = False) -> str | None:
    """A stored (UTC) time as local 'YYYY-MM-DD HH:MM' (no microseconds, no zone suffix); None
    for a missing or unreadable value. Naive values are UTC, as the store keeps them."""
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    stamp = pd.Timestamp(value) if not isinstance(value, str) else pd.to_datetime(value, utc=True, errors="coerce")
    if stamp is pd.NaT or pd.isna(stamp):
        return None
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return stamp.tz_convert(tz or local_tz()).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class Clock:
    """Second offsets of one session as display times."""

    start: datetime | None  # aware wall-clock start of second 0, None when unknown
    tz: tzinfo
    length_s: int
    first_s: int = 0  # the first second an axis shows (the live view's last ten minutes)

    @classmethod
    def for_session(cls, start: object, length_s: int, tz: tzinfo | None = None) -> Clock:
        when = None
        if start is not None and start is not pd.NaT and not (isinstance(start, float) and start != start):
            stamp = pd.Timestamp(start)
            when = (stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp).to_pydatetime()
        return cls(when, tz or local_tz(), int(length_s))

    @property
    def is_clock(self) -> bool:
        return self.start is not None

    def _base(self) -> pd.Timestamp:
        if self.start is None:
            return _ELAPSED_BASE
        return pd.Timestamp(self.start.astimezone(self.tz).replace(tzinfo=None))

    def axis_values(self, seconds: pd.Series) -> pd.Series:
        """Datetimes for a chart's x (local wall clock, labelled UTC; elapsed time on a fixed day)."""
        values = self._base() + pd.to_timedelta(pd.Series(seconds, dtype="float64").to_numpy(), unit="s")
        return pd.Series(values, index=getattr(seconds, "index", None)).dt.tz_localize("UTC")

    def axis_format(self) -> str:
        """d3 time format of the axis labels (seconds shown on spans of ten minutes or less)."""
        if self.start is not None:
            return "%H:%M:%S" if self.length_s - self.first_s <= 600 else "%H:%M"
        return "%-H:%M:%S" if self.length_s >= 3600 else "%-M:%S"

    def label(self, second: float | None, with_seconds: bool | None = None) -> str:
        """One second as text: '10:05' (clock) or '5:00' (elapsed)."""
        if second is None or second != second:
            return "–"
        if self.start is None:
            return fmt_seconds(second)
        when = (self.start + timedelta(seconds=float(second))).astimezone(self.tz)
        precise = self.length_s <= 600 if with_seconds is None else with_seconds
        return when.strftime("%H:%M:%S" if precise else "%H:%M")

    def span(self, first: float, last: float) -> str:
        return f"{self.label(first)}–{self.label(last)}"
