"""Read-only views of the privacy tables for the privacy officer: receipts, what is stored
about one participant, and the audit log with its filters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time

import pandas as pd
from sqlalchemy import func, select

from dashboard.queries.base import EST, R, S, T, WF, rows_frame
from dashboard.queries.timetext import json_or_empty, utc_bound
from engagement.core import schema
from engagement.core.store import Store


def purge_receipts(store: Store, limit: int = 200) -> pd.DataFrame:
    t = schema.purge_receipts
    cols = ["id", "kind", "at", "trigger", "subject", "counts_json", "policy_hash"]
    stmt = select(*[t.c[c] for c in cols]).order_by(t.c.id.desc()).limit(limit)
    with store.transaction() as conn:
        return rows_frame(conn, stmt, cols)


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
    a = schema.audit_log
    with store.transaction() as conn:
        return [r[0] for r in conn.execute(select(a.c.actor).distinct().order_by(a.c.actor))]


def audit_log(store: Store, f: AuditFilter, tz, limit: int | None = 1000) -> pd.DataFrame:
    """Audit entries matching `f`, newest first (at most `limit`), details parsed from JSON."""
    a = schema.audit_log
    stmt = select(a.c.seq, a.c.at, a.c.action, a.c.actor, a.c.details, a.c.hash).order_by(a.c.seq.desc())
    if f.actors:
        stmt = stmt.where(a.c.actor.in_(f.actors))
    if f.actions:
        stmt = stmt.where(a.c.action.in_(f.actions))
    if f.date_from:
        stmt = stmt.where(a.c.at >= utc_bound(f.date_from, time.min, tz))
    if f.date_to:
        stmt = stmt.where(a.c.at <= utc_bound(f.date_to, time.max, tz))
    if limit:
        stmt = stmt.limit(limit)
    with store.transaction() as conn:
        df = rows_frame(conn, stmt, ["seq", "at", "action", "actor", "details", "hash"])
    df["details"] = [json_or_empty(d) for d in df["details"]]
    return df


