"""Deleting a participant's rows and writing receipts: shared by withdrawal, erasure and purge."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection

from engagement import schema
from engagement.config import data_dir
from engagement import schema as tables
from privacy.timeutil import for_db, iso, utcnow

# Per-track tables that hold a participant's own numbers (deleted with the track).
TRACK_TABLES = (schema.window_features, schema.engagement_estimates)


def track_ids_of(conn: Connection, pseudonyms: Iterable[str], run_id: int | None = None) -> list[int]:
    names = sorted(set(pseudonyms))
    if not names:
        return []
    q = select(schema.tracks.c.id).where(schema.tracks.c.participant.in_(names))
    if run_id is not None:
        q = q.where(schema.tracks.c.run_id == run_id)
    return [int(r[0]) for r in conn.execute(q)]


def delete_tracks(conn: Connection, track_ids: list[int]) -> dict[str, int]:
    """Delete tracks and every per-second row that hangs off them. Explicit deletes (not only
    ON DELETE CASCADE) so the counts are exact and a database without FK enforcement is safe."""
    counts = {t.name: 0 for t in TRACK_TABLES}
    counts["tracks"] = 0
    # Chunks keep the IN list under SQLite's bound-parameter limit.
    for i in range(0, len(track_ids), 500):
        chunk = track_ids[i : i + 500]
        for table in TRACK_TABLES:
            counts[table.name] += conn.execute(delete(table).where(table.c.track_id.in_(chunk))).rowcount or 0
        counts["tracks"] += conn.execute(delete(schema.tracks).where(schema.tracks.c.id.in_(chunk))).rowcount or 0
    return counts


def delete_participant_data(conn: Connection, pseudonyms: Iterable[str], run_id: int | None = None) -> dict[str, int]:
    return delete_tracks(conn, track_ids_of(conn, pseudonyms, run_id))


def count_participant_rows(conn: Connection, pseudonym: str) -> int:
    ids = track_ids_of(conn, [pseudonym])
    if not ids:
        return 0
    return sum(
        conn.execute(select(func.count()).select_from(t).where(t.c.track_id.in_(ids))).scalar_one() for t in TRACK_TABLES
    )


def add_receipt(
    conn: Connection,
    *,
    kind: str,
    trigger: str,
    counts: dict,
    policy_hash: str | None = None,
    subject: str | None = None,
    cutoffs: dict | None = None,
    at: datetime | None = None,
) -> dict:
    """Insert a receipt row; return its JSON form (write the file after the commit)."""
    when = at or utcnow()
    result = conn.execute(
        insert(tables.purge_receipts).values(
            kind=kind,
            at=for_db(when),
            created_at=for_db(when),
            trigger=trigger,
            policy_hash=policy_hash,
            subject=subject,
            counts_json=json.dumps(counts, sort_keys=True),
            cutoffs_json=json.dumps(cutoffs, sort_keys=True) if cutoffs is not None else None,
        )
    )
    return {
        "receipt_id": int(result.inserted_primary_key[0]),
        "kind": kind,
        "at": iso(when),
        "trigger": trigger,
        "policy_hash": policy_hash,
        "subject": subject,
        "counts": counts,
        "cutoffs": cutoffs,
    }


def receipts_dir() -> Path:
    return data_dir() / "receipts"


def write_receipt_file(receipt: dict) -> Path | None:
    """Save the receipt as JSON beside the data; returns the path (None if it could not be written:
    the database row remains the authoritative copy)."""
    directory = receipts_dir()
    stamp = (receipt.get("at") or iso(utcnow())).replace(":", "").replace("-", "").replace(".", "")
    path = directory / f"{receipt['kind']}-{stamp}-{receipt.get('receipt_id', 0)}.json"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(receipt, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    except OSError:
        return None
    return path
