"""Building blocks shared by the dashboard's reads: the tables, rows as frames, the newest run
of each session, cameras off under the minimum group size k, and agenda segments."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import and_, case, func, literal, or_, select
from sqlalchemy.sql import Select

from engagement.core import schema

S, R, T = schema.sessions, schema.runs, schema.tracks
CT, EST, AL, AG = schema.class_timeline, schema.engagement_estimates, schema.alerts, schema.agenda_items
WF = schema.window_features
TM = schema.agenda_title_map

# Runs the dashboard reads: finished ones, and a running one for the live view.
VISIBLE_STATUSES = ("complete", "running")


def rows_frame(conn, stmt, columns: list[str], numeric: tuple[str, ...] = ()) -> pd.DataFrame:
    """Rows as a frame; `numeric` columns become floats with NaN for NULL. An aggregate that is
    NULL on every row (k suppressed every second) would otherwise be an object column of None
    that breaks arithmetic and rounding downstream."""
    rows = conn.execute(stmt).all()
    df = pd.DataFrame([tuple(r) for r in rows], columns=columns)
    for column in numeric:
        df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
    return df


def latest_run_ids(statuses: tuple[str, ...]) -> Select:
    """session_id -> newest run id among `statuses` (a subquery)."""
    return (
        select(R.c.session_id, func.max(R.c.id).label("run_id"))
        .where(R.c.status.in_(statuses))
        .group_by(R.c.session_id)
    )


def cameras_off():
    """Cameras off / faces lost in a second, NULL where the minimum group size k hides it.

    Runs with the attention signals (n_judged set) store the count, already NULL below k. Older
    runs have only the score's counts: their off count is shown where the score was not
    suppressed (k present participants stood behind that second)."""
    return case(
        (CT.c.n_judged.is_not(None), CT.c.n_absent),
        (CT.c.suppressed == 0, CT.c.n_tracked - CT.c.n_present),
        else_=literal(None),
    )


def off_share_of(off):
    """Share of tracked participants with camera off over the seconds where `off` is known."""
    tracked = func.sum(case((off.is_not(None), CT.c.n_tracked), else_=literal(None)))
    return func.sum(off) * 1.0 / func.nullif(tracked, 0)


def agenda_segments(session_ids=None) -> Select:
    """Agenda items with the second each one ends (the next item's start; NULL for the last)."""
    end = func.lead(AG.c.start_second).over(partition_by=AG.c.session_id, order_by=AG.c.start_second)
    stmt = select(AG.c.id, AG.c.session_id, AG.c.start_second, end.label("end_second"), AG.c.title)
    if session_ids is not None:
        stmt = stmt.where(AG.c.session_id.in_(session_ids))
    return stmt


# Past any session's last second (2**31 s is 68 years): the open end of the last agenda item.
OPEN_END = 2**31


def in_segment(seg, second):
    # One range (`start <= second < end`), not `end IS NULL OR second < end`: with the OR the
    # database bounds an index scan below only and reads every later second of the run for each
    # item; a closed range reads each item's own seconds once.
    return and_(second >= seg.c.start_second, second < func.coalesce(seg.c.end_second, OPEN_END))

