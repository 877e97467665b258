"""One session for the facilitator: the class over time, its headline numbers, attention
states, alerts, per-track lanes (labels only) and the agenda with its figures."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import and_, case, func, literal, or_, select

from dashboard.queries.base import AG, AL, CT, EST, T, WF, agenda_segments, cameras_off, off_share_of, rows_frame
from dashboard.stats import Z95
from engagement.core.store import Store
from engagement.temporal.outputs import ClassPoint


def class_timeline(store: Store, run_id: int, bucket: int, since: int | None = None) -> pd.DataFrame:
    """The class per `bucket` seconds (from second `since` on, when given).

    on_screen_share: mean over the bucket's seconds of the share of judged participants on
    screen (NULL below k); off_share: cameras off / faces lost over tracked (NULL below k);
    score: mean class engagement score over non-suppressed seconds (NULL when all were).
    """
    b = max(1, int(bucket))
    t0 = ((CT.c.second // b) * b).label("t")
    off = cameras_off()
    stmt = (
        select(
            t0,
            func.avg(CT.c.on_screen_share).label("on_screen_share"),
            off_share_of(off).label("off_share"),
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
        return rows_frame(conn, stmt, cols, numeric=("on_screen_share", "off_share", "score", "n_present"))


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
        df = rows_frame(conn, stmt, ["t", "n", "s", "ss", "seconds"], numeric=("n", "s", "ss", "seconds"))
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
    stmt = (
        select(CT.c.second, CT.c.n_present, CT.c.n_tracked, CT.c.score, CT.c.suppressed, CT.c.n_judged,
               CT.c.on_screen_share, CT.c.n_absent, CT.c.n_seen, CT.c.n_yawns, CT.c.perclos_share, CT.c.smile_share)
        .where(CT.c.run_id == run_id, CT.c.second >= int(since))
        .order_by(CT.c.second)
    )
    with store.transaction() as conn:
        rows = conn.execute(stmt).all()
    return [
        ClassPoint(int(r[0]), int(r[1]), int(r[2]), r[3], bool(r[4]), int(r[5] or 0), r[6], r[7], int(r[8] or 0), r[9],
                   r[10], r[11])
        for r in rows
    ]


def session_stats(store: Store, run_id: int) -> dict:
    """Headline numbers of a run: on-screen share, cameras off, mean score, suppressed share, alerts."""
    off = cameras_off()
    with store.transaction() as conn:
        row = conn.execute(
            select(
                func.avg(CT.c.on_screen_share),
                off_share_of(off),
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
        .order_by(per_second.c.state)  # the same rows in the same order on every database
    )
    with store.transaction() as conn:
        df = rows_frame(conn, stmt, ["category", "n"])
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
        .order_by(EST.c.state, category)
    )
    with store.transaction() as conn:
        df = rows_frame(conn, stmt, ["state", "level", "n"])
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
        return rows_frame(conn, stmt, ["id", "kind", "start_second", "end_second", "magnitude"], numeric=("magnitude",))


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
        .order_by(WF.c.track_id, t0, state)
    )
    with store.transaction() as conn:
        counts = rows_frame(conn, stmt, ["track_id", "t", "state", "n"])
        tracks = rows_frame(conn, select(T.c.id, T.c.label).where(T.c.run_id == run_id), ["track_id", "label"])
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


def agenda(store: Store, session_id: int) -> pd.DataFrame:
    stmt = agenda_segments([session_id]).order_by(AG.c.start_second)
    with store.transaction() as conn:
        return rows_frame(conn, stmt, ["id", "session_id", "start_second", "end_second", "title"])


def agenda_scores(store: Store, session_id: int, run_id: int) -> pd.DataFrame:
    """The class within each agenda segment of one run: on-screen share, cameras off, score."""
    seg = agenda_segments([session_id]).subquery()
    off = cameras_off()
    stmt = (
        select(
            seg.c.start_second,
            seg.c.end_second,
            seg.c.title,
            func.avg(CT.c.on_screen_share).label("on_screen_share"),
            off_share_of(off).label("off_share"),
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
        return rows_frame(conn, stmt, cols, numeric=("on_screen_share", "off_share", "score"))


def agenda_at(agenda: pd.DataFrame, second: float) -> str | None:
    """The title of the agenda item running at `second`, or None."""
    if agenda.empty:
        return None
    hit = agenda[agenda["start_second"] <= second]
    return None if hit.empty else str(hit.iloc[-1]["title"])



def agenda_within(agenda: pd.DataFrame, length_s: int) -> pd.DataFrame:
    """The items that start inside a session of `length_s` seconds, each ending at the next one or
    the session's end. An item stored past the end (before the editor refused them, '22:43:30' was
    kept as 22 hours in) would otherwise stretch the chart's axis to a sliver and draw the
    summary's band past its edge."""
    if agenda.empty:
        return agenda
    kept = agenda[agenda["start_second"] < max(length_s, 1)].copy()
    ends = kept["end_second"].astype(float).fillna(float(length_s))
    kept["end_second"] = ends.clip(upper=float(length_s))
    return kept


def track_label_of(store: Store, run_id: int, participant: str) -> str | None:
    """The anonymous lane label (T3) of `participant`'s track in the run, or None."""
    stmt = select(T.c.label).where(T.c.run_id == run_id, T.c.participant == participant).order_by(T.c.id)
    with store.transaction() as conn:
        return conn.execute(stmt).scalars().first()
