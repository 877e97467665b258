"""Across sessions for the researcher: filters, per-session and per-agenda-item trends, the
spread between people behind the intervals, the score histogram and the filters' choices."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, time, timezone, tzinfo

import pandas as pd
from sqlalchemy import and_, case, func, literal, select
from sqlalchemy.sql import Select

from dashboard.queries.base import (
    AG, CT, EST, S, T, WF, agenda_segments, cameras_off, in_segment, latest_run_ids, rows_frame,
)
from dashboard.queries.timetext import local_date, utc_bound
from engagement.core.store import Store


@dataclass(frozen=True)
class Filters:
    """Researcher filters; None/empty means 'all'. Dates are calendar days in `tz`."""

    date_from: date | None = None
    date_to: date | None = None
    cohorts: tuple[str, ...] = ()
    agenda_titles: tuple[str, ...] = ()
    tz: tzinfo = timezone.utc


def _selected_runs(f: Filters) -> Select:
    """session -> its newest complete run, after the date and cohort filters."""
    latest = latest_run_ids(("complete",)).subquery()
    day = func.coalesce(S.c.started_at, S.c.created_at)
    stmt = select(
        S.c.id.label("session_id"),
        S.c.name,
        S.c.cohort,
        day.label("started_at"),
        latest.c.run_id,
    ).select_from(S.join(latest, latest.c.session_id == S.c.id))
    if f.date_from:
        stmt = stmt.where(day >= utc_bound(f.date_from, time.min, f.tz))
    if f.date_to:
        stmt = stmt.where(day <= utc_bound(f.date_to, time.max, f.tz))
    if f.cohorts:
        stmt = stmt.where(S.c.cohort.in_(f.cohorts))
    return stmt


def _scoped_segments(f: Filters):
    """Agenda segments, limited to the chosen titles (the end comes from the full agenda, so
    titles are filtered after LEAD)."""
    seg_all = agenda_segments().subquery()
    seg = select(seg_all)
    if f.agenda_titles:
        seg = seg.where(seg_all.c.title.in_(f.agenda_titles))
    return seg.subquery()


def _ct_in_scope(sel, f: Filters):
    """class_timeline rows of the selected runs, limited to the chosen agenda items."""
    if not f.agenda_titles:
        return sel.join(CT, CT.c.run_id == sel.c.run_id)
    seg = _scoped_segments(f)
    return sel.join(seg, seg.c.session_id == sel.c.session_id).join(
        CT, and_(CT.c.run_id == sel.c.run_id, in_segment(seg, CT.c.second))
    )


def _class_sums(group_by: list, select_from, extra: tuple = ()) -> Select:
    """Sums of the class figures per group, for means that weigh every shown second alike."""
    off = cameras_off()
    return (
        select(
            *group_by,
            *extra,
            func.sum(CT.c.on_screen_share).label("on_sum"),
            func.count(CT.c.on_screen_share).label("on_n"),
            func.sum(off).label("off_sum"),
            func.sum(case((off.is_not(None), CT.c.n_tracked), else_=literal(None))).label("tracked"),
            func.sum(CT.c.score).label("score_sum"),
            func.count(CT.c.score).label("score_n"),
            func.count().label("seconds"),
        )
        .select_from(select_from)
        .group_by(*group_by, *extra)
    )


def _class_means(sums) -> list:
    return [
        (sums.c.on_sum * 1.0 / func.nullif(sums.c.on_n, 0)).label("on_screen_share"),
        (sums.c.off_sum * 1.0 / func.nullif(sums.c.tracked, 0)).label("off_share"),
        (sums.c.score_sum * 1.0 / func.nullif(sums.c.score_n, 0)).label("score"),
        sums.c.seconds,
    ]


MEASURES = ("on_screen_share", "off_share", "score")


def trends(store: Store, f: Filters) -> pd.DataFrame:
    """One row per selected session: on-screen share, cameras off and score (each a mean over the
    seconds k let through), seconds analysed and people in the session (participants, not tracks: `people_of_tracks`)."""
    sel = _selected_runs(f).subquery()
    # Aggregate per run first (walks the covering index in order, no sort of 720k rows), then
    # attach the session's name and cohort to the 100-odd result rows.
    per_run = _class_sums([CT.c.run_id], _ct_in_scope(sel, f)).subquery()
    # People, not tracks: a participant tied to several tracks of a run (a face lost and found
    # again, a tile that moved) is one person; a track tied to no pseudonym (an attestation covers
    # it) is one person of its own.
    people = (
        select(
            T.c.run_id,
            (func.count(T.c.participant.distinct()) + func.count(case((T.c.participant.is_(None), 1)))).label("people"),
        )
        .group_by(T.c.run_id)
        .subquery()
    )
    stmt = (
        select(
            sel.c.session_id,
            sel.c.name,
            sel.c.cohort,
            sel.c.started_at,
            sel.c.run_id,
            *_class_means(per_run),
            func.coalesce(people.c.people, 0),
        )
        .select_from(sel.join(per_run, per_run.c.run_id == sel.c.run_id).outerjoin(people, people.c.run_id == sel.c.run_id))
        .order_by(sel.c.started_at)
    )
    cols = ["session_id", "name", "cohort", "started_at", "run_id", *MEASURES, "seconds", "people"]
    with store.transaction() as conn:
        df = rows_frame(conn, stmt, cols, numeric=MEASURES)
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True, errors="coerce")
    return df


def agenda_sessions(store: Store, f: Filters) -> pd.DataFrame:
    """One row per agenda item of each selected session: the class figures within it."""
    sel = _selected_runs(f).subquery()
    seg = _scoped_segments(f)
    joined = sel.join(seg, seg.c.session_id == sel.c.session_id).join(
        CT, and_(CT.c.run_id == sel.c.run_id, in_segment(seg, CT.c.second))
    )
    # Grouped by the agenda item alone (one integer key: the cheapest sort of 720k seconds),
    # then named and placed in its session (a handful of rows per session).
    per_item = _class_sums([seg.c.id], joined).subquery()
    stmt = (
        select(sel.c.session_id, sel.c.name, sel.c.started_at, sel.c.run_id, AG.c.title, *_class_means(per_item))
        .select_from(per_item.join(AG, AG.c.id == per_item.c.id).join(sel, sel.c.session_id == AG.c.session_id))
        .order_by(sel.c.started_at, AG.c.title)
    )
    cols = ["session_id", "name", "started_at", "run_id", "title", *MEASURES, "seconds"]
    with store.transaction() as conn:
        df = rows_frame(conn, stmt, cols, numeric=MEASURES)
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True, errors="coerce")
    return df


# A person's mean over this many evenly spaced seconds of a session is plenty for the spread
# between people behind a 95 % interval, and reading them stays fast on 100 two-hour sessions.
SAMPLE_POINTS = 40


def person_means(store: Store, f: Filters, runs: pd.DataFrame, field: str) -> pd.DataFrame:
    """Per selected run, person and agenda title (None outside the agenda): the sum and
    count of that person's `field` ("on_screen_share": their on-screen ratio, or "score") over
    evenly spaced seconds whose class figure was shown (k). For the 95 % intervals between
    people; never shown on their own."""
    cols = ["run_id", "person", "title", "total", "n"]
    if runs.empty:
        return pd.DataFrame(columns=cols)
    longest = int(runs["seconds"].max() or 0)
    step = max(1, math.ceil(longest / SAMPLE_POINTS))
    seconds = list(range(0, longest, step))
    run_ids = [int(r) for r in runs["run_id"]]
    if field == "score":
        table, value, shown = EST, EST.c.score, CT.c.suppressed == 0
    else:
        # window_features through the dashboard's covering index: no table row is read.
        table, value, shown = WF, WF.c.on_screen_ratio, CT.c.on_screen_share.is_not(None)
    samples = (
        select(table.c.run_id, table.c.track_id, table.c.second, case((shown, value), else_=literal(None)).label("value"))
        .select_from(table.join(CT, and_(CT.c.run_id == table.c.run_id, CT.c.second == table.c.second)))
        .where(table.c.run_id.in_(run_ids), table.c.second.in_(seconds))
        .subquery()
    )
    sel = _selected_runs(f).subquery()
    seg = _scoped_segments(f)
    joined = samples.join(sel, sel.c.run_id == samples.c.run_id)
    segment = and_(seg.c.session_id == sel.c.session_id, in_segment(seg, samples.c.second))
    joined = joined.join(seg, segment) if f.agenda_titles else joined.outerjoin(seg, segment)
    stmt = (
        select(samples.c.run_id, samples.c.track_id, seg.c.title, func.sum(samples.c.value), func.count(samples.c.value))
        .select_from(joined)
        .group_by(samples.c.run_id, samples.c.track_id, seg.c.id, seg.c.title)
        # A stated order: PostgreSQL's hash aggregate returns groups in any order (NULL segment,
        # outside the agenda, first on both databases).
        .order_by(samples.c.run_id, samples.c.track_id, seg.c.id.nulls_first())
    )
    with store.transaction() as conn:
        per_track = rows_frame(conn, stmt, ["run_id", "track_id", "title", "total", "n"], numeric=("total", "n"))
        persons = people_of_tracks(conn, run_ids)
    per_track["person"] = per_track["track_id"].map(persons)
    return per_track[cols]


def people_of_tracks(conn, run_ids: list[int]) -> dict[int, str]:
    """Track id -> the person behind it: the participant's pseudonym where the track is tied to
    one (several tracks of one participant are one person), else the track itself."""
    rows = conn.execute(select(T.c.id, T.c.participant).where(T.c.run_id.in_(run_ids))).all()
    return {int(r.id): r.participant if r.participant is not None else f"track:{r.id}" for r in rows}


def score_histogram(store: Store, f: Filters, bins: int = 20) -> pd.DataFrame:
    """Seconds of class score per bin of width 1/bins over the selected sessions."""
    sel = _selected_runs(f).subquery()
    joined = _ct_in_scope(sel, f)
    # score in [0, 1]; a score of exactly 1 goes into the top bin.
    b = case((CT.c.score >= 1.0, bins - 1), else_=func.floor(CT.c.score * bins)).label("bin")
    stmt = (
        select(b, func.count().label("n"))
        .select_from(joined)
        .where(CT.c.score.is_not(None))
        .group_by(b)
        .order_by(b)
    )
    with store.transaction() as conn:
        df = rows_frame(conn, stmt, ["bin", "n"])
    df["low"] = df["bin"].astype(float) / bins
    df["high"] = df["low"] + 1.0 / bins
    return df


def filter_options(store: Store, tz: tzinfo = timezone.utc) -> dict:
    """Choices for the researcher filters: cohorts, agenda titles, first and last (local) day."""
    day = func.coalesce(S.c.started_at, S.c.created_at)
    with store.transaction() as conn:
        cohorts = [r[0] for r in conn.execute(select(S.c.cohort).where(S.c.cohort.is_not(None)).distinct().order_by(S.c.cohort))]
        titles = [r[0] for r in conn.execute(select(AG.c.title).distinct().order_by(AG.c.title))]
        lo, hi = conn.execute(select(func.min(day), func.max(day))).one()
    return {"cohorts": cohorts, "titles": titles, "first": local_date(lo, tz), "last": local_date(hi, tz)}


