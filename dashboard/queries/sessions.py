"""The session list and one run's headline facts, and how many seconds a chart point covers."""

from __future__ import annotations

import math

import pandas as pd
from sqlalchemy import case, func, select

from dashboard.queries.base import CT, VISIBLE_STATUSES, R, S, T, latest_run_ids, rows_frame
from engagement.core.store import Store

# Enough points for a smooth line at any screen width, few enough to ship and draw fast.
MAX_POINTS = 720


def list_sessions(store: Store) -> pd.DataFrame:
    """Every session with its newest visible run (complete or still running), newest first."""
    latest = latest_run_ids(VISIBLE_STATUSES).subquery()
    stmt = (
        select(
            S.c.id,
            S.c.name,
            S.c.cohort,
            func.coalesce(S.c.started_at, S.c.created_at).label("started_at"),
            R.c.id.label("run_id"),
            R.c.status,
            R.c.seconds,
            R.c.profile,
            R.c.heartbeat_at,
            # The wall-clock second 0 of the timeline: the recording's start when known, and for
            # a live capture the run's own start (the capture began then).
            case((R.c.mode == "live", func.coalesce(S.c.started_at, R.c.started_at)), else_=S.c.started_at).label("clock_start"),
        )
        .select_from(S.outerjoin(latest, latest.c.session_id == S.c.id).outerjoin(R, R.c.id == latest.c.run_id))
        .order_by(func.coalesce(S.c.started_at, S.c.created_at).desc(), S.c.id.desc())
    )
    cols = ["id", "name", "cohort", "started_at", "run_id", "status", "seconds", "profile", "heartbeat_at", "clock_start"]
    with store.transaction() as conn:
        return rows_frame(conn, stmt, cols)


def run_info(store: Store, run_id: int) -> dict | None:
    """The run's status, profile and length, plus its track count, or None."""
    with store.transaction() as conn:
        row = conn.execute(
            select(R.c.id, R.c.session_id, R.c.status, R.c.profile, R.c.seconds, R.c.heartbeat_at, R.c.source)
            .where(R.c.id == run_id)
        ).first()
        if row is None:
            return None
        tracks = conn.execute(select(func.count()).select_from(T).where(T.c.run_id == run_id)).scalar_one()
        # A live run's `seconds` lags behind; the timeline's last second is the real length.
        last = conn.execute(select(func.max(CT.c.second)).where(CT.c.run_id == run_id)).scalar()
    info = dict(row._mapping)
    info["tracks"] = int(tracks)
    info["length"] = session_length(info["seconds"], last)
    return info


def session_length(recorded_seconds: int | None, last_second: int | None) -> int:
    """A session's length in seconds, the one figure every page states: the run's own count, or
    past its timeline's last second when that is later (a live run's count lags behind). The
    researcher's table once counted the analysed seconds instead and read 2:36 where the
    facilitator's page read 3:00 for the same session."""
    return max(int(recorded_seconds or 0), int(last_second) + 1 if last_second is not None else 0)


def bucket_for(length_s: int, max_points: int = MAX_POINTS) -> int:
    """Seconds per chart point so a session of `length_s` gives at most `max_points` points."""
    if length_s <= max_points:
        return 1
    raw = math.ceil(length_s / max_points)
    for nice in (2, 5, 10, 15, 20, 30, 60, 120, 300, 600):
        if raw <= nice:
            return nice
    return raw

