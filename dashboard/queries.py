"""The dashboard's one query layer: every SQL statement the pages run lives here.

Aggregation happens in the database (GROUP BY over bucketed seconds, window functions for
agenda segments), so a page never pulls per-second rows of a whole session into Python. All
statements are SQLAlchemy Core so the same code serves SQLite and PostgreSQL. Functions return
pandas DataFrames (empty, with the right columns, when there is nothing) or plain dicts.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timezone, tzinfo

import pandas as pd
from sqlalchemy import and_, case, func, literal, or_, select, text
from sqlalchemy.sql import Select

from dashboard.stats import Z95
from engagement import schema
from engagement.store import Store
from engagement import schema as privacy_tables

S, R, T = schema.sessions, schema.runs, schema.tracks
CT, EST, AL, AG = schema.class_timeline, schema.engagement_estimates, schema.alerts, schema.agenda_items
WF = schema.window_features

# Runs the dashboard reads: finished ones, and a running one for the live view.
VISIBLE_STATUSES = ("complete", "running")
# Enough points for a smooth line at any screen width, few enough to ship and draw fast.
MAX_POINTS = 720

# Indexes the dashboard's queries lean on, created at start-up if missing (cheap no-ops after).
#  - agenda by session: the facilitator page and every agenda-filtered trend look it up.
#  - alerts by run: drop alerts of one session.
#  - runs by session/status: "latest visible run of each session" for the session list.
#  - class_timeline covering index: trends across 100 sessions read 720k seconds; with every
#    column they need in the index SQLite never touches the table (0.64 s -> see benchmarks).
#  - window_features covering index: the attention distribution, the lanes and the sampled
#    per-person on-screen ratios read only these columns.
_INDEXES = (
    "DROP INDEX IF EXISTS ix_dash_timeline_cover",  # the first version, without the attention columns
    "CREATE INDEX IF NOT EXISTS ix_dash_timeline_cover2 ON class_timeline"
    " (run_id, second, score, n_present, n_tracked, suppressed, n_judged, on_screen_share, n_absent)",
    "CREATE INDEX IF NOT EXISTS ix_dash_window_attention ON window_features"
    " (run_id, second, track_id, attention, on_screen_ratio)",
    "CREATE INDEX IF NOT EXISTS ix_dash_agenda_session ON agenda_items (session_id, start_second)",
    "CREATE INDEX IF NOT EXISTS ix_dash_alerts_run ON alerts (run_id, start_second)",
    "CREATE INDEX IF NOT EXISTS ix_dash_runs_session ON runs (session_id, status, id)",
)


def open_store(url: str) -> Store:
    """Open (and create if needed) the results database with the dashboard's tables and indexes."""
    store = Store.open(url)
    ensure_indexes(store)
    return store


def ensure_indexes(store: Store) -> None:
    with store.transaction() as conn:
        for statement in _INDEXES:
            conn.execute(text(statement))


def _df(conn, stmt, columns: list[str], numeric: tuple[str, ...] = ()) -> pd.DataFrame:
    """Rows as a frame; `numeric` columns become floats with NaN for NULL. An aggregate that is
    NULL on every row (k suppressed every second) would otherwise be an object column of None
    that breaks arithmetic and rounding downstream."""
    rows = conn.execute(stmt).all()
    df = pd.DataFrame([tuple(r) for r in rows], columns=columns)
    for column in numeric:
        df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
    return df


# -- sessions -----------------------------------------------------------------------------------


def _latest_run_ids(statuses: tuple[str, ...]) -> Select:
    """session_id -> newest run id among `statuses` (a subquery)."""
    return (
        select(R.c.session_id, func.max(R.c.id).label("run_id"))
        .where(R.c.status.in_(statuses))
        .group_by(R.c.session_id)
    )


def list_sessions(store: Store) -> pd.DataFrame:
    """Every session with its newest visible run (complete or still running), newest first."""
    latest = _latest_run_ids(VISIBLE_STATUSES).subquery()
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
        return _df(conn, stmt, cols)


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
    info["length"] = max(int(info["seconds"] or 0), int(last + 1) if last is not None else 0)
    return info


def bucket_for(length_s: int, max_points: int = MAX_POINTS) -> int:
    """Seconds per chart point so a session of `length_s` gives at most `max_points` points."""
    if length_s <= max_points:
        return 1
    raw = math.ceil(length_s / max_points)
    for nice in (2, 5, 10, 15, 20, 30, 60, 120, 300, 600):
        if raw <= nice:
            return nice
    return raw


# -- facilitator: one session ------------------------------------------------------------------


def _cameras_off():
    """Cameras off / faces lost in a second, NULL where the minimum group size k hides it.

    Runs with the attention signals (n_judged set) store the count, already NULL below k. Older
    runs have only the score's counts: their off count is shown where the score was not
    suppressed (k present participants stood behind that second)."""
    return case(
        (CT.c.n_judged.is_not(None), CT.c.n_absent),
        (CT.c.suppressed == 0, CT.c.n_tracked - CT.c.n_present),
        else_=literal(None),
    )


def _off_share(off):
    """Share of tracked participants with camera off over the seconds where `off` is known."""
    tracked = func.sum(case((off.is_not(None), CT.c.n_tracked), else_=literal(None)))
    return func.sum(off) * 1.0 / func.nullif(tracked, 0)


def class_timeline(store: Store, run_id: int, bucket: int, since: int | None = None) -> pd.DataFrame:
    """The class per `bucket` seconds (from second `since` on, when given).

    on_screen_share: mean over the bucket's seconds of the share of judged participants on
    screen (NULL below k); off_share: cameras off / faces lost over tracked (NULL below k);
    score: mean class engagement score over non-suppressed seconds (NULL when all were).
    """
    b = max(1, int(bucket))
    t0 = ((CT.c.second // b) * b).label("t")
    off = _cameras_off()
    stmt = (
        select(
            t0,
            func.avg(CT.c.on_screen_share).label("on_screen_share"),
            _off_share(off).label("off_share"),
            func.avg(CT.c.score).label("score"),
            func.avg(CT.c.n_present).label("n_present"),
            func.max(CT.c.n_tracked).label("n_tracked"),
            func.max(CT.c.suppressed).label("suppressed"),
        )
        .where(CT.c.run_id == run_id)
        .group_by(t0)  # the expression itself: PostgreSQL wants GROUP BY to match the select
        .order_by(t0)
    )
    if since is not None:
        stmt = stmt.where(CT.c.second >= int(since))
    cols = ["t", "on_screen_share", "off_share", "score", "n_present", "n_tracked", "suppressed"]
    with store.transaction() as conn:
        return _df(conn, stmt, cols, numeric=("on_screen_share", "off_share", "score", "n_present"))


def score_band(store: Store, run_id: int, bucket: int, since: int | None = None) -> pd.DataFrame:
    """95 % interval of the class engagement score per `bucket` seconds: mean ± 1.96·sd/√n, sd
    the spread of the present participants' scores in the bucket and n how many were present
    (per second, on average). Only seconds whose class score was shown (not suppressed by k)."""
    b = max(1, int(bucket))
    per_second = (
        select(
            EST.c.second,
            func.count(EST.c.score).label("n"),
            func.sum(EST.c.score).label("s"),
            func.sum(EST.c.score * EST.c.score).label("ss"),
        )
        .where(EST.c.run_id == run_id, EST.c.state == "present", EST.c.score.is_not(None))
        .group_by(EST.c.second)
    )
    if since is not None:
        per_second = per_second.where(EST.c.second >= int(since))
    per_second = per_second.subquery()
    t0 = ((per_second.c.second // b) * b).label("t")
    stmt = (
        select(t0, func.sum(per_second.c.n), func.sum(per_second.c.s), func.sum(per_second.c.ss), func.count())
        .select_from(
            per_second.join(CT, and_(CT.c.run_id == run_id, CT.c.second == per_second.c.second, CT.c.suppressed == 0))
        )
        .group_by(t0)
        .order_by(t0)
    )
    with store.transaction() as conn:
        df = _df(conn, stmt, ["t", "n", "s", "ss", "seconds"], numeric=("n", "s", "ss", "seconds"))
    return _band(df)


def _band(df: pd.DataFrame) -> pd.DataFrame:
    """lo/hi and n (people) from per-group count, sum and sum of squares of scores."""
    out = pd.DataFrame({"t": df["t"]})
    mean = df["s"] / df["n"]
    var = (df["ss"] / df["n"] - mean * mean).clip(lower=0)
    out["people"] = df["n"] / df["seconds"]
    half = Z95 * (var / out["people"]) ** 0.5
    out["lo"] = (mean - half).clip(0, 1)
    out["hi"] = (mean + half).clip(0, 1)
    return out


def timeline_points(store: Store, run_id: int, since: int = 0) -> list:
    """The stored per-second class points from `since` on, for the live alert check (the analysis
    writes alerts only when it finishes; the dashboard runs the same rules on what it has)."""
    from engagement.temporal.records import ClassPoint

    stmt = (
        select(CT.c.second, CT.c.n_present, CT.c.n_tracked, CT.c.score, CT.c.suppressed, CT.c.n_judged,
               CT.c.on_screen_share, CT.c.n_absent)
        .where(CT.c.run_id == run_id, CT.c.second >= int(since))
        .order_by(CT.c.second)
    )
    with store.transaction() as conn:
        rows = conn.execute(stmt).all()
    return [
        ClassPoint(int(r[0]), int(r[1]), int(r[2]), r[3], bool(r[4]), int(r[5] or 0), r[6], r[7])
        for r in rows
    ]


def session_stats(store: Store, run_id: int) -> dict:
    """Headline numbers of a run: on-screen share, cameras off, mean score, suppressed share, alerts."""
    off = _cameras_off()
    with store.transaction() as conn:
        row = conn.execute(
            select(
                func.avg(CT.c.on_screen_share),
                _off_share(off),
                func.avg(CT.c.score),
                func.avg(CT.c.suppressed * 1.0),
                func.count(),
                func.count(CT.c.n_judged),
            ).where(CT.c.run_id == run_id)
        ).one()
        n_alerts = conn.execute(select(func.count()).select_from(AL).where(AL.c.run_id == run_id)).scalar_one()
        people = conn.execute(select(func.count()).select_from(T).where(T.c.run_id == run_id)).scalar_one()
    return {
        "on_screen_share": row[0],
        "off_share": row[1],
        "mean_score": row[2],
        "suppressed_share": row[3],
        "seconds": int(row[4]),
        "attention": bool(row[5]),  # the run has the attention signals (schema v2 analyses)
        "alerts": int(n_alerts),
        "people": int(people),
    }


ATTENTION_STATES = ("on_screen", "looking_away", "eyes_closed", "absent", "unknown")


def attention_distribution(store: Store, run_id: int) -> pd.DataFrame:
    """Participant-seconds per attention state, counted only in seconds where at least k
    participants stand behind the class figures (so no lone participant's state shows)."""
    state = func.coalesce(WF.c.attention, "unknown").label("state")
    per_second = (
        select(WF.c.second, state, func.count().label("n"))
        .where(WF.c.run_id == run_id)
        .group_by(WF.c.second, state)
        .subquery()
    )
    stmt = (
        select(per_second.c.state, func.sum(per_second.c.n))
        .select_from(
            per_second.join(CT, and_(CT.c.run_id == run_id, CT.c.second == per_second.c.second, CT.c.n_absent.is_not(None)))
        )
        .group_by(per_second.c.state)
    )
    with store.transaction() as conn:
        df = _df(conn, stmt, ["category", "n"])
    df = df[df["category"].isin(ATTENTION_STATES)]
    if df.empty:
        return pd.DataFrame(columns=["category", "n", "share"])
    df = df.assign(n=df["n"].astype(int))
    df["share"] = df["n"] / df["n"].sum()
    return df.reset_index(drop=True)


def level_distribution(store: Store, run_id: int) -> pd.DataFrame:
    """Participant-seconds per engagement level (absent/unknown beside), in seconds whose class
    score was shown: for runs without the attention signals."""
    category = case((EST.c.state == "present", func.coalesce(EST.c.level, -1)), else_=literal(-1)).label("level")
    stmt = (
        select(EST.c.state, category, func.count().label("n"))
        .select_from(EST.join(CT, and_(CT.c.run_id == EST.c.run_id, CT.c.second == EST.c.second, CT.c.suppressed == 0)))
        .where(EST.c.run_id == run_id)
        .group_by(EST.c.state, category)
    )
    with store.transaction() as conn:
        df = _df(conn, stmt, ["state", "level", "n"])
    if df.empty:
        return pd.DataFrame(columns=["category", "n", "share"])
    df["category"] = [
        f"level{int(lv)}" if st_ == "present" and lv >= 0 else ("absent" if st_ == "absent" else "unknown")
        for st_, lv in zip(df["state"], df["level"])
    ]
    df = df.groupby("category", as_index=False)["n"].sum()
    df["share"] = df["n"] / df["n"].sum()
    return df


def alerts(store: Store, run_id: int) -> pd.DataFrame:
    stmt = (
        select(AL.c.id, AL.c.kind, AL.c.start_second, AL.c.end_second, AL.c.magnitude)
        .where(AL.c.run_id == run_id)
        .order_by(AL.c.start_second)
    )
    with store.transaction() as conn:
        return _df(conn, stmt, ["id", "kind", "start_second", "end_second", "magnitude"], numeric=("magnitude",))


def individual_lanes(store: Store, run_id: int, bucket: int) -> pd.DataFrame:
    """Per anonymous track (label, never the pseudonym) and `bucket` seconds the attention state
    most of the bucket's seconds had. Every track of the run is listed, also one without rows."""
    b = max(1, int(bucket))
    state = func.coalesce(WF.c.attention, "unknown")
    t0 = (WF.c.second // b) * b
    stmt = (
        select(WF.c.track_id, t0.label("t"), state.label("state"), func.count().label("n"))
        .where(WF.c.run_id == run_id)
        .group_by(WF.c.track_id, t0, state)
    )
    with store.transaction() as conn:
        counts = _df(conn, stmt, ["track_id", "t", "state", "n"])
        tracks = _df(conn, select(T.c.id, T.c.label).where(T.c.run_id == run_id), ["track_id", "label"])
    if tracks.empty:
        return pd.DataFrame(columns=["label", "t", "state"])
    # The state most seconds had (ties: the order of ATTENTION_STATES, on_screen first).
    counts["rank"] = [ATTENTION_STATES.index(s) if s in ATTENTION_STATES else len(ATTENTION_STATES) for s in counts["state"]]
    counts = counts.sort_values(["track_id", "t", "n", "rank"], ascending=[True, True, False, True])
    modes = counts.drop_duplicates(["track_id", "t"])[["track_id", "t", "state"]]
    out = tracks.merge(modes, on="track_id", how="left")
    out["order"] = [_natural_key(label) for label in out["label"]]
    out = out.sort_values(["order", "t"]).drop(columns=["order", "track_id"])
    return out.reset_index(drop=True)


def _natural_key(label: str) -> tuple:
    """T2 before T10."""
    digits = "".join(ch for ch in str(label) if ch.isdigit())
    return (str(label).rstrip("0123456789"), int(digits) if digits else -1, str(label))


# -- agenda ------------------------------------------------------------------------------------


def _segments(session_ids=None) -> Select:
    """Agenda items with the second each one ends (the next item's start; NULL for the last)."""
    end = func.lead(AG.c.start_second).over(partition_by=AG.c.session_id, order_by=AG.c.start_second)
    stmt = select(AG.c.id, AG.c.session_id, AG.c.start_second, end.label("end_second"), AG.c.title)
    if session_ids is not None:
        stmt = stmt.where(AG.c.session_id.in_(session_ids))
    return stmt


def agenda(store: Store, session_id: int) -> pd.DataFrame:
    stmt = _segments([session_id]).order_by(AG.c.start_second)
    with store.transaction() as conn:
        return _df(conn, stmt, ["id", "session_id", "start_second", "end_second", "title"])


def agenda_scores(store: Store, session_id: int, run_id: int) -> pd.DataFrame:
    """The class within each agenda segment of one run: on-screen share, cameras off, score."""
    seg = _segments([session_id]).subquery()
    off = _cameras_off()
    stmt = (
        select(
            seg.c.start_second,
            seg.c.end_second,
            seg.c.title,
            func.avg(CT.c.on_screen_share).label("on_screen_share"),
            _off_share(off).label("off_share"),
            func.avg(CT.c.score).label("score"),
        )
        .select_from(
            seg.join(
                CT,
                and_(
                    CT.c.run_id == run_id,
                    CT.c.second >= seg.c.start_second,
                    or_(seg.c.end_second.is_(None), CT.c.second < seg.c.end_second),
                ),
            )
        )
        .group_by(seg.c.id, seg.c.start_second, seg.c.end_second, seg.c.title)
        .order_by(seg.c.start_second)
    )
    cols = ["start_second", "end_second", "title", "on_screen_share", "off_share", "score"]
    with store.transaction() as conn:
        return _df(conn, stmt, cols, numeric=("on_screen_share", "off_share", "score"))


def agenda_at(agenda: pd.DataFrame, second: float) -> str | None:
    """The title of the agenda item running at `second`, or None."""
    if agenda.empty:
        return None
    hit = agenda[agenda["start_second"] <= second]
    return None if hit.empty else str(hit.iloc[-1]["title"])


# -- researcher: across sessions ---------------------------------------------------------------


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
    latest = _latest_run_ids(("complete",)).subquery()
    day = func.coalesce(S.c.started_at, S.c.created_at)
    stmt = select(
        S.c.id.label("session_id"),
        S.c.name,
        S.c.cohort,
        day.label("started_at"),
        latest.c.run_id,
    ).select_from(S.join(latest, latest.c.session_id == S.c.id))
    if f.date_from:
        stmt = stmt.where(day >= _utc_bound(f.date_from, time.min, f.tz))
    if f.date_to:
        stmt = stmt.where(day <= _utc_bound(f.date_to, time.max, f.tz))
    if f.cohorts:
        stmt = stmt.where(S.c.cohort.in_(f.cohorts))
    return stmt


def _in_segment(seg, second):
    return and_(second >= seg.c.start_second, or_(seg.c.end_second.is_(None), second < seg.c.end_second))


def _scoped_segments(f: Filters):
    """Agenda segments, limited to the chosen titles (the end comes from the full agenda, so
    titles are filtered after LEAD)."""
    seg_all = _segments().subquery()
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
        CT, and_(CT.c.run_id == sel.c.run_id, _in_segment(seg, CT.c.second))
    )


def _class_sums(group_by: list, select_from, extra: tuple = ()) -> Select:
    """Sums of the class figures per group, for means that weigh every shown second alike."""
    off = _cameras_off()
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
    seconds k let through), seconds analysed and people (tracks) in the session."""
    sel = _selected_runs(f).subquery()
    # Aggregate per run first (walks the covering index in order, no sort of 720k rows), then
    # attach the session's name and cohort to the 100-odd result rows.
    per_run = _class_sums([CT.c.run_id], _ct_in_scope(sel, f)).subquery()
    people = select(T.c.run_id, func.count().label("people")).group_by(T.c.run_id).subquery()
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
        df = _df(conn, stmt, cols, numeric=MEASURES)
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True, errors="coerce")
    return df


def agenda_sessions(store: Store, f: Filters) -> pd.DataFrame:
    """One row per agenda item of each selected session: the class figures within it."""
    sel = _selected_runs(f).subquery()
    seg = _scoped_segments(f)
    joined = sel.join(seg, seg.c.session_id == sel.c.session_id).join(
        CT, and_(CT.c.run_id == sel.c.run_id, _in_segment(seg, CT.c.second))
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
        df = _df(conn, stmt, cols, numeric=MEASURES)
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True, errors="coerce")
    return df


# A person's mean over this many evenly spaced seconds of a session is plenty for the spread
# between people behind a 95 % interval, and reading them stays fast on 100 two-hour sessions.
SAMPLE_POINTS = 40


def person_means(store: Store, f: Filters, runs: pd.DataFrame, field: str) -> pd.DataFrame:
    """Per selected run, person (track) and agenda title (None outside the agenda): the sum and
    count of that person's `field` ("on_screen_share": their on-screen ratio, or "score") over
    evenly spaced seconds whose class figure was shown (k). For the 95 % intervals between
    people; never shown on their own."""
    cols = ["run_id", "track_id", "title", "total", "n"]
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
    segment = and_(seg.c.session_id == sel.c.session_id, _in_segment(seg, samples.c.second))
    joined = joined.join(seg, segment) if f.agenda_titles else joined.outerjoin(seg, segment)
    stmt = (
        select(samples.c.run_id, samples.c.track_id, seg.c.title, func.sum(samples.c.value), func.count(samples.c.value))
        .select_from(joined)
        .group_by(samples.c.run_id, samples.c.track_id, seg.c.id, seg.c.title)
    )
    with store.transaction() as conn:
        return _df(conn, stmt, cols, numeric=("total", "n"))


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
        df = _df(conn, stmt, ["bin", "n"])
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
    return {"cohorts": cohorts, "titles": titles, "first": _local_date(lo, tz), "last": _local_date(hi, tz)}


def _local_date(value, tz: tzinfo) -> date | None:
    """A stored UTC time (SQLite returns raw aggregates as text) as a calendar day in `tz`."""
    if value is None:
        return None
    stamp = pd.to_datetime(value, utc=True, errors="coerce")
    return None if pd.isna(stamp) else stamp.tz_convert(tz).date()


# -- privacy tables (read-only views for the privacy officer) ----------------------------------


def purge_receipts(store: Store, limit: int = 200) -> pd.DataFrame:
    t = privacy_tables.purge_receipts
    cols = ["id", "kind", "at", "trigger", "subject", "counts_json", "policy_hash"]
    stmt = select(*[t.c[c] for c in cols]).order_by(t.c.id.desc()).limit(limit)
    with store.transaction() as conn:
        return _df(conn, stmt, cols)


def participant_data(store: Store, pseudonym: str) -> dict:
    """What is stored about one participant: tracks, the sessions they are in, seconds of data."""
    with store.transaction() as conn:
        sessions = [
            r[0]
            for r in conn.execute(
                select(S.c.name)
                .select_from(T.join(R, R.c.id == T.c.run_id).join(S, S.c.id == R.c.session_id))
                .where(T.c.participant == pseudonym)
                .distinct()
                .order_by(S.c.name)
            )
        ]
        tracks = select(T.c.id).where(T.c.participant == pseudonym)
        n_tracks = conn.execute(select(func.count()).select_from(tracks.subquery())).scalar_one()
        seconds = conn.execute(select(func.count()).select_from(WF).where(WF.c.track_id.in_(tracks))).scalar_one()
        estimates = conn.execute(select(func.count()).select_from(EST).where(EST.c.track_id.in_(tracks))).scalar_one()
    return {"tracks": int(n_tracks), "sessions": sessions, "feature_seconds": int(seconds), "estimate_seconds": int(estimates)}


@dataclass(frozen=True)
class AuditFilter:
    """Audit log filters; empty means all. Dates are local calendar days (`tz`)."""

    actors: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()
    date_from: date | None = None
    date_to: date | None = None


def audit_actors(store: Store) -> list[str]:
    a = privacy_tables.audit_log
    with store.transaction() as conn:
        return [r[0] for r in conn.execute(select(a.c.actor).distinct().order_by(a.c.actor))]


def audit_log(store: Store, f: AuditFilter, tz, limit: int | None = 1000) -> pd.DataFrame:
    """Audit entries matching `f`, newest first (at most `limit`), details parsed from JSON."""
    a = privacy_tables.audit_log
    stmt = select(a.c.seq, a.c.at, a.c.action, a.c.actor, a.c.details, a.c.hash).order_by(a.c.seq.desc())
    if f.actors:
        stmt = stmt.where(a.c.actor.in_(f.actors))
    if f.actions:
        stmt = stmt.where(a.c.action.in_(f.actions))
    if f.date_from:
        stmt = stmt.where(a.c.at >= _utc_bound(f.date_from, time.min, tz))
    if f.date_to:
        stmt = stmt.where(a.c.at <= _utc_bound(f.date_to, time.max, tz))
    if limit:
        stmt = stmt.limit(limit)
    with store.transaction() as conn:
        df = _df(conn, stmt, ["seq", "at", "action", "actor", "details", "hash"])
    df["details"] = [_json_or_empty(d) for d in df["details"]]
    return df


def _utc_bound(day: date, at: time, tz) -> datetime:
    """A local calendar day's first/last instant as aware UTC (how audit times are stored)."""
    return datetime.combine(day, at).replace(tzinfo=tz).astimezone(timezone.utc)


def _json_or_empty(text: str) -> dict:
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
