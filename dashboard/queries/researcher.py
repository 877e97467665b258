"""Across sessions for the researcher: filters, per-session and per-agenda-item trends, the
spread between people behind the intervals, the score histogram and the filters' choices."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, time, timezone, tzinfo

import pandas as pd
from sqlalchemy import Integer, String, and_, case, cast, func, literal, null, select
from sqlalchemy.sql import Select

from dashboard.queries.base import (
    AG, CT, TM, EST, R, S, T, WF, cameras_off, in_segment, latest_run_ids, rows_frame,
)
from dashboard.queries.sessions import session_length
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


def _titled_segments():
    """Agenda segments under the titles researchers count them as (`agenda_title_map`, per
    cohort): "Studi kasus pelayanan publik" mapped to "Studi kasus" is that item everywhere here.
    The mapping is a lookup per item inside the segments' own SELECT: as a join around them, the
    database stopped indexing the segments and matched each of 160k sampled seconds against all
    of them (person_means went from 0.3 s to 3 s)."""
    cohort = select(func.coalesce(S.c.cohort, "")).where(S.c.id == AG.c.session_id).correlate(AG).scalar_subquery()
    mapped = (select(TM.c.mapped_to).where(TM.c.cohort == cohort, TM.c.title == AG.c.title)
              .correlate(AG).scalar_subquery())
    end = func.lead(AG.c.start_second).over(partition_by=AG.c.session_id, order_by=AG.c.start_second)
    return select(AG.c.id, AG.c.session_id, AG.c.start_second, end.label("end_second"),
                  func.coalesce(mapped, AG.c.title).label("title")).subquery()


def _scoped_segments(f: Filters):
    """Agenda segments, limited to the chosen titles (the end comes from the full agenda, so
    titles are filtered after LEAD)."""
    seg_all = _titled_segments()
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


def _covering_segments(f: Filters):
    """The scoped agenda segments and, without a title filter, one more per session without an
    id: the seconds before its first item (the whole run when it has no agenda). Together they
    cover every second exactly once, so one pass over them gives the per-item figures and, summed,
    the per-session ones (two passes over 720k seconds cost the researcher page a quarter second)."""
    items = _scoped_segments(f)
    if f.agenda_titles:
        return items
    first = select(AG.c.session_id, func.min(AG.c.start_second).label("first")).group_by(AG.c.session_id).subquery()
    # Typed NULLs: PostgreSQL must know each column's type in a UNION.
    before = select(
        cast(null(), Integer).label("id"),
        S.c.id.label("session_id"),
        cast(literal(0), Integer).label("start_second"),
        first.c.first.label("end_second"),
        cast(null(), String).label("title"),
    ).select_from(S.outerjoin(first, first.c.session_id == S.c.id))
    return select(items).union_all(before).subquery()


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


MEASURES = ("on_screen_share", "off_share", "score")
_SUMS = ["on_sum", "on_n", "off_sum", "tracked", "score_sum", "score_n", "seconds"]


def _class_means(sums: pd.DataFrame) -> pd.DataFrame:
    """The class figures from their sums; NULL (NaN) where no second let a figure through."""
    out = sums.copy()
    for mean, total, n in (("on_screen_share", "on_sum", "on_n"), ("off_share", "off_sum", "tracked"),
                           ("score", "score_sum", "score_n")):
        count = pd.to_numeric(out[n], errors="coerce").astype("float64")
        out[mean] = pd.to_numeric(out[total], errors="coerce").astype("float64") / count.where(count != 0)
    out["seconds"] = out["seconds"].astype("int64")
    return out


def _segment_sums(conn, f: Filters) -> pd.DataFrame:
    """The class sums per selected run and covering segment (`_covering_segments`), with the
    session's name, cohort and start: one pass over the selected seconds."""
    sel = _selected_runs(f).subquery()
    seg = _covering_segments(f)
    joined = sel.join(seg, seg.c.session_id == sel.c.session_id).join(
        CT, and_(CT.c.run_id == sel.c.run_id, in_segment(seg, CT.c.second))
    )
    # Grouped by two integers (strings in the key made the sort of 720k seconds six times
    # slower), then named and placed in its session: a handful of rows per session.
    per_seg = _class_sums([sel.c.run_id, seg.c.id.label("item")], joined).subquery()
    named = _titled_segments()
    stmt = select(
        sel.c.session_id, sel.c.name, sel.c.cohort, sel.c.started_at, sel.c.run_id, per_seg.c.item, named.c.title,
        *[per_seg.c[c] for c in _SUMS],
    ).select_from(per_seg.join(sel, sel.c.run_id == per_seg.c.run_id).outerjoin(named, named.c.id == per_seg.c.item))
    cols = ["session_id", "name", "cohort", "started_at", "run_id", "item", "title", *_SUMS]
    df = rows_frame(conn, stmt, cols, numeric=("on_sum", "off_sum", "score_sum"))
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True, errors="coerce")
    return df


def _per_session(sums: pd.DataFrame) -> pd.DataFrame:
    """The segment sums added up per run (min_count: a sum over no value stays NULL, as in SQL)."""
    keys = ["session_id", "name", "cohort", "started_at", "run_id"]
    if sums.empty:
        return sums.reindex(columns=keys + _SUMS)
    return sums.groupby(keys, sort=False, dropna=False)[_SUMS].sum(min_count=1).reset_index()


def researcher_figures(store: Store, f: Filters) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`trends` and `agenda_sessions` from one pass over the selected seconds (the page shows both)."""
    with store.transaction() as conn:
        sums = _segment_sums(conn, f)
        per_run = _per_session(sums)
        extra = _people_and_length(conn, [int(r) for r in per_run["run_id"]])
    trend = _class_means(per_run).merge(extra, on="run_id", how="left")
    trend["people"] = trend["people"].fillna(0).astype("int64")
    trend = trend.sort_values(["started_at", "run_id"], kind="stable").reset_index(drop=True)
    items = _class_means(sums[sums["item"].notna()]).sort_values(["started_at", "run_id", "title"], kind="stable")
    cols = ["session_id", "name", "started_at", "run_id", "title", *MEASURES, "seconds"]
    return (trend[["session_id", "name", "cohort", "started_at", "run_id", *MEASURES, "seconds", "people", "length"]],
            items[cols].reset_index(drop=True))


def _people_and_length(conn, run_ids: list[int]) -> pd.DataFrame:
    """Per run: people (participants, not tracks: a participant tied to several tracks of a run
    is one person; a track tied to no pseudonym is one person of its own) and the session's length
    as every page states it (`session_length`)."""
    cols = ["run_id", "people", "length"]
    if not run_ids:
        return pd.DataFrame(columns=cols)
    people = (
        select(T.c.run_id,
               (func.count(T.c.participant.distinct()) + func.count(case((T.c.participant.is_(None), 1)))).label("people"))
        .where(T.c.run_id.in_(run_ids))
        .group_by(T.c.run_id)
        .subquery()
    )
    # A correlated max per run: the database reads one index entry per run, not its seconds.
    last = select(func.max(CT.c.second)).where(CT.c.run_id == R.c.id).scalar_subquery()
    stmt = (
        select(R.c.id, func.coalesce(people.c.people, 0), R.c.seconds, last)
        .select_from(R.outerjoin(people, people.c.run_id == R.c.id))
        .where(R.c.id.in_(run_ids))
    )
    rows = [(int(r[0]), int(r[1]), session_length(r[2], r[3])) for r in conn.execute(stmt)]
    return pd.DataFrame(rows, columns=cols)


def trends(store: Store, f: Filters) -> pd.DataFrame:
    """One row per selected session: on-screen share, cameras off and score (each a mean over the
    seconds k let through), seconds analysed, people in the session and its length."""
    return researcher_figures(store, f)[0]


def agenda_sessions(store: Store, f: Filters) -> pd.DataFrame:
    """One row per agenda item of each selected session: the class figures within it."""
    return researcher_figures(store, f)[1]


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
        named = _titled_segments()
        titles = [r[0] for r in conn.execute(select(named.c.title).distinct().order_by(named.c.title))]
        lo, hi = conn.execute(select(func.min(day), func.max(day))).one()
    return {"cohorts": cohorts, "titles": titles, "first": local_date(lo, tz), "last": local_date(hi, tz)}


def agenda_titles(store: Store) -> pd.DataFrame:
    """Every agenda title as written, per cohort ("" for none), with the item it is counted as
    (`mapped_to`, NULL when unmapped): what the title-mapping editor offers."""
    cohort = func.coalesce(S.c.cohort, "").label("cohort")
    stmt = (
        select(cohort, AG.c.title, TM.c.mapped_to)
        .select_from(AG.join(S, S.c.id == AG.c.session_id).outerjoin(TM, and_(TM.c.cohort == cohort, TM.c.title == AG.c.title)))
        .distinct()
        .order_by(cohort, AG.c.title)
    )
    with store.transaction() as conn:
        return rows_frame(conn, stmt, ["cohort", "title", "mapped_to"])

