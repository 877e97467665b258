"""A run's class-level rows (class_timeline, alerts) read back with the per-second rows they are
made from, and replaced: what `privacy.class_rows` needs to take a withdrawn or erased person's
share out of the class figures. Which rows to recompute, and how, is decided there."""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection, Row

from engagement.core import schema
from engagement.core.time import utcnow


def runs_of_tracks(conn: Connection, track_ids: Iterable[int]) -> list[int]:
    ids = sorted(set(int(i) for i in track_ids))
    runs: set[int] = set()
    for i in range(0, len(ids), 500):  # under SQLite's bound-parameter limit
        t = schema.tracks
        runs.update(int(r[0]) for r in conn.execute(select(t.c.run_id).where(t.c.id.in_(ids[i : i + 500])).distinct()))
    return sorted(runs)


def run_k_min(conn: Connection, run_id: int) -> int | None:
    """The minimum group size the run was analysed with (its configuration record), if stated."""
    text = conn.execute(select(schema.runs.c.config_json).where(schema.runs.c.id == run_id)).scalar()
    try:
        value = json.loads(text or "{}").get("k_min")
    except (ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) and value >= 1 else None


def timeline_seconds(conn: Connection, run_id: int) -> list[int]:
    ct = schema.class_timeline
    return [int(r[0]) for r in conn.execute(select(ct.c.second).where(ct.c.run_id == run_id).order_by(ct.c.second))]


def second_rows(conn: Connection, run_id: int) -> tuple[list[Row], list[Row]]:
    """The run's remaining per-second rows the class figures use: estimates (track, second,
    state, score) and windows (track, second, on-screen ratio, attention, and the fatigue
    columns the class figures count: face frames, yawn, PERCLOS, smile)."""
    ee, wf = schema.engagement_estimates, schema.window_features
    estimates = conn.execute(
        select(ee.c.track_id, ee.c.second, ee.c.state, ee.c.score).where(ee.c.run_id == run_id)
    ).all()
    windows = conn.execute(
        select(
            wf.c.track_id, wf.c.second, wf.c.on_screen_ratio, wf.c.attention,
            wf.c.n_face, wf.c.yawn, wf.c.perclos, wf.c.smile,
        ).where(wf.c.run_id == run_id).order_by(wf.c.second, wf.c.track_id)
    ).all()
    return estimates, windows


def replace_class_rows(conn: Connection, run_id: int, points: list[dict], alerts: list[dict]) -> tuple[int, int]:
    """Delete the run's class timeline and alerts and write `points` and `alerts` instead;
    returns how many timeline rows and alerts were deleted."""
    counts = []
    for table in (schema.class_timeline, schema.alerts):
        n = conn.execute(select(func.count()).select_from(table).where(table.c.run_id == run_id)).scalar_one()
        conn.execute(delete(table).where(table.c.run_id == run_id))
        counts.append(int(n))
    now = utcnow()
    for table, rows in ((schema.class_timeline, points), (schema.alerts, alerts)):
        if rows:
            conn.execute(insert(table), [{**row, "run_id": run_id, "created_at": now} for row in rows])
    return counts[0], counts[1]
