"""Deleting stored data and keeping the records of it: a participant's tracks with their
per-second rows, rows past a retention period, purge receipts, cohort key events and the
privacy bookkeeping (the policy hash last seen).

What to delete and when is decided in `privacy` (retention policy, erasure, withdrawal); these
functions only carry it out, with exact counts for the receipts. Withdrawing consent is
`engagement.core.repositories.consent.withdraw_consents`."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from engagement.core import schema
from engagement.core.time import utcnow

# Per-track tables that hold a participant's own numbers (deleted with the track).
TRACK_TABLES = (schema.window_features, schema.engagement_estimates)
# The IN list stays under SQLite's bound-parameter limit.
_CHUNK = 500


def delete_tracks(conn: Connection, track_ids: list[int]) -> dict[str, int]:
    """Delete tracks and every per-second row that hangs off them. Explicit deletes (not only
    ON DELETE CASCADE) so the counts are exact and a database without FK enforcement is safe."""
    counts = {t.name: 0 for t in TRACK_TABLES}
    counts["tracks"] = 0
    for i in range(0, len(track_ids), _CHUNK):
        chunk = track_ids[i : i + _CHUNK]
        for table in TRACK_TABLES:
            counts[table.name] += conn.execute(delete(table).where(table.c.track_id.in_(chunk))).rowcount or 0
        counts["tracks"] += conn.execute(delete(schema.tracks).where(schema.tracks.c.id.in_(chunk))).rowcount or 0
    return counts


def _count_or_delete(conn: Connection, table, condition: ColumnElement, dry_run: bool) -> int:
    """Delete the rows of `table` matching `condition` (a dry run only counts them); how many."""
    if dry_run:
        return int(conn.execute(select(func.count()).select_from(table).where(condition)).scalar_one())
    return int(conn.execute(delete(table).where(condition)).rowcount or 0)


# -- the purge's steps (what is past its period is decided in privacy.retention) ------------------


def tracks_lacking(conn: Connection, consented: ColumnElement) -> list[int]:
    """Ids of tracks that do not meet `consented` (privacy.consent.track_consented's condition)."""
    return [int(r[0]) for r in conn.execute(select(schema.tracks.c.id).where(~consented))]


def _by_session(conn: Connection, select_from, condition: ColumnElement) -> list[tuple[str, int]]:
    """(session name, rows) of `select_from` (joined to its run) matching `condition`, where any."""
    s, r = schema.sessions, schema.runs
    stmt = (select(s.c.name, func.count()).select_from(select_from.join(r, r.c.id == select_from.c.run_id)
                                                       .join(s, s.c.id == r.c.session_id))
            .where(condition).group_by(s.c.name))
    return [(str(name), int(n)) for name, n in conn.execute(stmt)]


def rows_before_by_session(conn: Connection, table, cutoff: datetime) -> list[tuple[str, int]]:
    """Per session, the rows of `table` created before `cutoff` (a purge preview's breakdown)."""
    return _by_session(conn, table, table.c.created_at < cutoff)


def tracks_lacking_by_session(conn: Connection, consented: ColumnElement) -> list[tuple[str, int]]:
    """Per session, the tracks that do not meet `consented`."""
    return _by_session(conn, schema.tracks, ~consented)


def rows_created_before(conn: Connection, table, cutoff: datetime, *, dry_run: bool) -> int:
    """Delete (count) the rows of `table` created before `cutoff`: per-second rows, class-level
    aggregates, purge receipts."""
    return _count_or_delete(conn, table, table.c.created_at < cutoff, dry_run)


def expired_tracks(conn: Connection, *, run_before: datetime, features_before: datetime,
                   timelines_before: datetime, dry_run: bool) -> int:
    """Delete (count) tracks of runs started before `run_before` with no per-second row left.

    In a dry run nothing was deleted before this step, so it counts the tracks whose every row
    is past its period (features before `features_before`, estimates before `timelines_before`)."""
    t, wf, ee = schema.tracks, schema.window_features, schema.engagement_estimates
    run_started = select(schema.runs.c.started_at).where(schema.runs.c.id == t.c.run_id).scalar_subquery()
    if dry_run:
        kept = or_(
            exists().where(wf.c.track_id == t.c.id, wf.c.created_at >= features_before),
            exists().where(ee.c.track_id == t.c.id, ee.c.created_at >= timelines_before),
        )
    else:
        kept = or_(exists().where(wf.c.track_id == t.c.id), exists().where(ee.c.track_id == t.c.id))
    return _count_or_delete(conn, t, and_(run_started < run_before, ~kept), dry_run)


def empty_runs_before(conn: Connection, cutoff: datetime) -> int:
    """Delete finished runs started before `cutoff` with nothing left under them; how many."""
    r = schema.runs
    empty = and_(*(~exists().where(table.c.run_id == r.c.id) for table in (
        schema.tracks, schema.class_timeline, schema.alerts, schema.window_features, schema.engagement_estimates)))
    return _count_or_delete(conn, r, and_(r.c.status != "running", r.c.started_at < cutoff, empty), False)


def add_receipt(conn: Connection, *, kind: str, trigger: str, counts: dict, at: datetime,
                policy_hash: str | None = None, subject: str | None = None, cutoffs: dict | None = None) -> int:
    """Insert a purge/erasure/withdrawal receipt row; returns its id."""
    result = conn.execute(
        insert(schema.purge_receipts).values(
            kind=kind,
            at=at,
            created_at=at,
            trigger=trigger,
            policy_hash=policy_hash,
            subject=subject,
            counts_json=json.dumps(counts, sort_keys=True),
            cutoffs_json=json.dumps(cutoffs, sort_keys=True) if cutoffs is not None else None,
        )
    )
    return int(result.inserted_primary_key[0])


def add_key_event(conn: Connection, cohort: str, event: str, fingerprint: str) -> None:
    now = utcnow()
    conn.execute(
        insert(schema.cohort_key_events).values(cohort=cohort, event=event, fingerprint=fingerprint, at=now, created_at=now)
    )


def privacy_state(conn: Connection, key: str) -> str | None:
    st = schema.privacy_state
    return conn.execute(select(st.c.value).where(st.c.key == key)).scalar()


def set_privacy_state(conn: Connection, key: str, value: str) -> None:
    st = schema.privacy_state
    if conn.execute(update(st).where(st.c.key == key).values(value=value)).rowcount == 0:
        conn.execute(insert(st).values(key=key, value=value))
