"""Turning stored text and times into what the pages filter on: local calendar days as UTC
bounds, a stored UTC time as a local day, and stored JSON details."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timezone, tzinfo

import pandas as pd


def local_date(value, tz: tzinfo) -> date | None:
    """A stored UTC time (SQLite returns raw aggregates as text) as a calendar day in `tz`."""
    if value is None:
        return None
    stamp = pd.to_datetime(value, utc=True, errors="coerce")
    return None if pd.isna(stamp) else stamp.tz_convert(tz).date()


def utc_bound(day: date, at: time, tz) -> datetime:
    """A local calendar day's first/last instant as aware UTC (how audit times are stored)."""
    return datetime.combine(day, at).replace(tzinfo=tz).astimezone(timezone.utc)


def json_or_empty(text: str) -> dict:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}

