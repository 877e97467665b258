"""Deleting stored data and keeping the records of it: a participant's tracks with their
per-second rows, rows past a retention period, purge receipts, cohort key events and the
privacy bookkeeping (the policy hash last seen).

What to delete and when is decided in `privacy` (retention policy, erasure, withdrawal); these
functions only carry it out, with exact counts for the receipts."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import delete, insert, select, update
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


def delete_where(conn: Connection, table, condition: ColumnElement) -> int:
    """Delete the rows of `table` matching `condition` (built by the policy); returns how many."""
    return int(conn.execute(delete(table).where(condition)).rowcount or 0)


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


def end_consents(conn: Connection, participant: str, at: datetime) -> int:
    """Mark a participant's active consents withdrawn (an erasure: no later run processes them);
    the rows stay as the proof that earlier processing was lawful. Returns how many ended."""
    c = schema.consent_records.c
    ended = conn.execute(
        update(schema.consent_records).where(c.participant == participant, c.withdrawn_at.is_(None)).values(withdrawn_at=at)
    )
    return int(ended.rowcount or 0)


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
