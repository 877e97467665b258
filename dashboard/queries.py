"""The dashboard's one query layer: every SQL statement the pages run lives here.

Aggregation happens in the database (GROUP BY over bucketed seconds, window functions for
agenda segments), so a page never pulls per-second rows of a whole session into Python. All
statements are SQLAlchemy Core so the same code serves SQLite and PostgreSQL. Functions return
pandas DataFrames (empty, with the right columns, when there is nothing) or plain dicts.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import date, datetime, time, timezone

import pandas as pd
from sqlalchemy import and_, case, delete, func, insert, literal, or_, select, text
from sqlalchemy.sql import Select

import dashboard.tables  # noqa: F401  (registers dashboard_users before Store.open creates tables)
from engagement import schema
from engagement.errors import ConfigError
from engagement.store import Store

S, R, T = schema.sessions, schema.runs, schema.tracks
CT, EST, AL, AG = schema.class_timeline, schema.engagement_estimates, schema.alerts, schema.agenda_items

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
_INDEXES = (
    "CREATE INDEX IF NOT EXISTS ix_dash_timeline_cover ON class_timeline"
    " (run_id, second, score, n_present, n_tracked, suppressed)",
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
        )
        .select_from(S.outerjoin(latest, latest.c.session_id == S.c.id).outerjoin(R, R.c.id == latest.c.run_id))
        .order_by(func.coalesce(S.c.started_at, S.c.created_at).desc(), S.c.id.desc())
    )
    cols = ["id", "name", "cohort", "started_at", "run_id", "status", "seconds", "profile", "heartbeat_at"]
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


def class_timeline(store: Store, run_id: int, bucket: int) -> pd.DataFrame:
    """Class score and presence per `bucket` seconds.

    score is the mean over the bucket's non-suppressed seconds (NULL when every second was
    suppressed for having fewer than k present), present_share = present / tracked.
    """
    b = max(1, int(bucket))
    t0 = ((CT.c.second // b) * b).label("t")
    stmt = (
        select(
            t0,
            func.avg(CT.c.score).label("score"),
            func.avg(CT.c.n_present).label("n_present"),
            func.max(CT.c.n_tracked).label("n_tracked"),
            (func.sum(CT.c.n_present) * 1.0 / func.nullif(func.sum(CT.c.n_tracked), 0)).label("present_share"),
            func.max(CT.c.suppressed).label("suppressed"),
        )
        .where(CT.c.run_id == run_id)
        .group_by(CT.c.second // b)
        .order_by(t0)
    )
    cols = ["t", "score", "n_present", "n_tracked", "present_share", "suppressed"]
    with store.transaction() as conn:
        return _df(conn, stmt, cols, numeric=("score", "n_present", "present_share"))


def session_stats(store: Store, run_id: int) -> dict:
    """Headline numbers of a run: mean class score, share present, suppressed share, alerts."""
    with store.transaction() as conn:
        row = conn.execute(
            select(
                func.avg(CT.c.score),
                func.sum(CT.c.n_present) * 1.0 / func.nullif(func.sum(CT.c.n_tracked), 0),
                func.avg(CT.c.suppressed * 1.0),
                func.count(),
            ).where(CT.c.run_id == run_id)
        ).one()
        n_alerts = conn.execute(select(func.count()).select_from(AL).where(AL.c.run_id == run_id)).scalar_one()
    return {
        "mean_score": row[0],
        "present_share": row[1],
        "suppressed_share": row[2],
        "seconds": int(row[3]),
        "alerts": int(n_alerts),
    }


def attention_distribution(store: Store, run_id: int) -> pd.DataFrame:
    """Participant-seconds per attention category: level 0-3 when present, else absent/unknown."""
    category = case((EST.c.state == "present", func.coalesce(EST.c.level, -1)), else_=literal(-1)).label("level")
    stmt = (
        select(EST.c.state, category, func.count().label("n"))
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
    """Per anonymous track (label, never the pseudonym) the mean score per bucket."""
    b = max(1, int(bucket))
    t0 = ((EST.c.second // b) * b).label("t")
    stmt = (
        select(T.c.label, t0, func.avg(EST.c.score).label("score"))
        .select_from(EST.join(T, T.c.id == EST.c.track_id))
        .where(EST.c.run_id == run_id)
        .group_by(T.c.label, EST.c.second // b)
        .order_by(T.c.label, t0)
    )
    with store.transaction() as conn:
        return _df(conn, stmt, ["label", "t", "score"], numeric=("score",))


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
    """Mean class score and presence within each agenda segment of one run."""
    seg = _segments([session_id]).subquery()
    stmt = (
        select(
            seg.c.start_second,
            seg.c.end_second,
            seg.c.title,
            func.avg(CT.c.score).label("score"),
            (func.sum(CT.c.n_present) * 1.0 / func.nullif(func.sum(CT.c.n_tracked), 0)).label("present_share"),
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
    with store.transaction() as conn:
        return _df(conn, stmt, ["start_second", "end_second", "title", "score", "present_share"], numeric=("score", "present_share"))


def parse_offset(value: str) -> int:
    """'90', '1:30', '95:00' or '0:01:30' -> seconds from the session start."""
    parts = (value or "").strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"cannot read {value!r} as a time (use seconds, m:ss or h:mm:ss)")
    nums = [int(p) for p in parts]
    if any(n >= 60 for n in nums[1:]) or (len(nums) == 3 and nums[1] >= 60):
        raise ConfigError(f"cannot read {value!r} as a time (use seconds, m:ss or h:mm:ss)")
    total = 0
    for n in nums:
        total = total * 60 + n
    return total


@dataclass(frozen=True)
class AgendaRow:
    start_second: int
    title: str


def parse_agenda_csv(data: str | bytes) -> list[AgendaRow]:
    """A simple CSV 'start,title' (header optional; start in seconds, m:ss or h:mm:ss)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8-sig")
    rows: list[AgendaRow] = []
    sample = data[:2048]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    for i, record in enumerate(csv.reader(io.StringIO(data), dialect)):
        if not record or not any(c.strip() for c in record):
            continue
        if len(record) < 2:
            raise ConfigError(f"line {i + 1}: expected 'start,title'")
        start, title = record[0].strip(), ",".join(record[1:]).strip()
        if i == 0 and not start[:1].isdigit():
            continue  # a header line
        if not title:
            raise ConfigError(f"line {i + 1}: the title is empty")
        try:
            rows.append(AgendaRow(parse_offset(start), title[:300]))
        except ConfigError as exc:
            raise ConfigError(f"line {i + 1}: {exc}") from None
    if not rows:
        raise ConfigError("the file holds no agenda lines ('start,title')")
    return sorted(rows, key=lambda r: r.start_second)


def add_agenda_item(store: Store, session_id: int, start_second: int, title: str) -> None:
    title = title.strip()
    if not title:
        raise ConfigError("the title is empty")
    with store.transaction() as conn:
        conn.execute(insert(AG).values(session_id=session_id, start_second=int(start_second), title=title[:300]))


def replace_agenda(store: Store, session_id: int, rows: list[AgendaRow]) -> None:
    """Replace a session's agenda in one transaction (an import never leaves half an agenda)."""
    with store.transaction() as conn:
        conn.execute(delete(AG).where(AG.c.session_id == session_id))
        if rows:
            conn.execute(
                insert(AG),
                [{"session_id": session_id, "start_second": r.start_second, "title": r.title} for r in rows],
            )


def delete_agenda_item(store: Store, item_id: int) -> None:
    with store.transaction() as conn:
        conn.execute(delete(AG).where(AG.c.id == item_id))


# -- researcher: across sessions ---------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    """Researcher filters; None/empty means 'all'."""

    date_from: date | None = None
    date_to: date | None = None
    cohorts: tuple[str, ...] = ()
    agenda_titles: tuple[str, ...] = ()


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
        stmt = stmt.where(day >= datetime.combine(f.date_from, time.min))
    if f.date_to:
        stmt = stmt.where(day <= datetime.combine(f.date_to, time.max))
    if f.cohorts:
        stmt = stmt.where(S.c.cohort.in_(f.cohorts))
    return stmt


def _ct_in_scope(sel, f: Filters):
    """class_timeline rows of the selected runs, limited to the chosen agenda items."""
    if not f.agenda_titles:
        return sel.join(CT, CT.c.run_id == sel.c.run_id), None
    # The segment end comes from the session's full agenda, so filter titles after LEAD.
    seg_all = _segments().subquery()
    seg = select(seg_all).where(seg_all.c.title.in_(f.agenda_titles)).subquery()
    joined = sel.join(seg, seg.c.session_id == sel.c.session_id).join(
        CT,
        and_(
            CT.c.run_id == sel.c.run_id,
            CT.c.second >= seg.c.start_second,
            or_(seg.c.end_second.is_(None), CT.c.second < seg.c.end_second),
        ),
    )
    return joined, seg


def trends(store: Store, f: Filters) -> pd.DataFrame:
    """One row per selected session: mean class score, share present, seconds analysed."""
    sel = _selected_runs(f).subquery()
    joined, _ = _ct_in_scope(sel, f)
    # Aggregate per run first (walks the covering index in order, no sort of 720k rows), then
    # attach the session's name and cohort to the 100-odd result rows.
    per_run = (
        select(
            CT.c.run_id,
            func.sum(CT.c.score).label("score_sum"),
            func.count(CT.c.score).label("score_n"),
            func.sum(CT.c.n_present).label("present"),
            func.sum(CT.c.n_tracked).label("tracked"),
            func.count().label("seconds"),
        )
        .select_from(joined)
        .group_by(CT.c.run_id)
        .subquery()
    )
    stmt = (
        select(
            sel.c.session_id,
            sel.c.name,
            sel.c.cohort,
            sel.c.started_at,
            (per_run.c.score_sum * 1.0 / func.nullif(per_run.c.score_n, 0)).label("score"),
            (per_run.c.present * 1.0 / func.nullif(per_run.c.tracked, 0)).label("present_share"),
            per_run.c.seconds,
        )
        .select_from(sel.join(per_run, per_run.c.run_id == sel.c.run_id))
        .order_by(sel.c.started_at)
    )
    cols = ["session_id", "name", "cohort", "started_at", "score", "present_share", "seconds"]
    with store.transaction() as conn:
        df = _df(conn, stmt, cols, numeric=("score", "present_share"))
    df["started_at"] = pd.to_datetime(df["started_at"], utc=True, errors="coerce")
    return df


def score_histogram(store: Store, f: Filters, bins: int = 20) -> pd.DataFrame:
    """Seconds of class score per bin of width 1/bins over the selected sessions."""
    sel = _selected_runs(f).subquery()
    joined, _ = _ct_in_scope(sel, f)
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


def agenda_item_scores(store: Store, f: Filters) -> pd.DataFrame:
    """Mean class score per agenda title over the selected sessions (second-weighted)."""
    sel = _selected_runs(f).subquery()
    seg_all = _segments().subquery()
    seg = select(seg_all)
    if f.agenda_titles:
        seg = seg.where(seg_all.c.title.in_(f.agenda_titles))
    seg = seg.subquery()
    # Sum per agenda item of each session first (grouped in join order), then per title.
    per_item = (
        select(
            seg.c.id,
            seg.c.title,
            sel.c.session_id,
            func.sum(CT.c.score).label("score_sum"),
            func.count(CT.c.score).label("score_n"),
        )
        .select_from(
            sel.join(seg, seg.c.session_id == sel.c.session_id).join(
                CT,
                and_(
                    CT.c.run_id == sel.c.run_id,
                    CT.c.second >= seg.c.start_second,
                    or_(seg.c.end_second.is_(None), CT.c.second < seg.c.end_second),
                ),
            )
        )
        .group_by(seg.c.id, seg.c.title, sel.c.session_id)
        .subquery()
    )
    stmt = (
        select(
            per_item.c.title,
            (func.sum(per_item.c.score_sum) * 1.0 / func.nullif(func.sum(per_item.c.score_n), 0)).label("score"),
            func.count(func.distinct(per_item.c.session_id)).label("sessions"),
        )
        .group_by(per_item.c.title)
        .order_by(per_item.c.title)
    )
    with store.transaction() as conn:
        return _df(conn, stmt, ["title", "score", "sessions"], numeric=("score",))


def filter_options(store: Store) -> dict:
    """Choices for the researcher filters: cohorts, agenda titles, first and last date."""
    day = func.coalesce(S.c.started_at, S.c.created_at)
    with store.transaction() as conn:
        cohorts = [r[0] for r in conn.execute(select(S.c.cohort).where(S.c.cohort.is_not(None)).distinct().order_by(S.c.cohort))]
        titles = [r[0] for r in conn.execute(select(AG.c.title).distinct().order_by(AG.c.title))]
        lo, hi = conn.execute(select(func.min(day), func.max(day))).one()
    return {"cohorts": cohorts, "titles": titles, "first": _as_date(lo), "last": _as_date(hi)}


def selected_session_names(store: Store, f: Filters) -> list[str]:
    sel = _selected_runs(f).subquery()
    with store.transaction() as conn:
        return [r[0] for r in conn.execute(select(sel.c.name).order_by(sel.c.started_at))]


def _as_date(value) -> date | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite through a raw aggregate returns text
        value = pd.to_datetime(value, utc=True, errors="coerce")
        if pd.isna(value):
            return None
    if isinstance(value, datetime):
        return value.date()
    return value if isinstance(value, date) else None


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# -- privacy tables (read-only views for the privacy officer) ----------------------------------


def _privacy_table(name: str):
    try:
        import privacy.tables  # noqa: F401  (declares the privacy tables)
    except ImportError:
        return None
    return schema.metadata.tables.get(name)


def purge_receipts(store: Store, limit: int = 200) -> pd.DataFrame | None:
    t = _privacy_table("purge_receipts")
    if t is None:
        return None
    cols = [c for c in ("id", "kind", "at", "trigger", "subject", "counts_json", "policy_hash") if c in t.c]
    stmt = select(*[t.c[c] for c in cols]).order_by(t.c.id.desc()).limit(limit)
    with store.transaction() as conn:
        return _df(conn, stmt, cols)
