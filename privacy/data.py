"""A participant's rows and the receipts of deletions: shared by withdrawal, erasure and purge.

The deletes and inserts themselves are `engagement.core.repositories.retention`'s."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from engagement.core import schema
from engagement.core.config import data_dir
from engagement.core.repositories import retention as retention_rows
from engagement.core.repositories.class_rows import runs_of_tracks
from engagement.core.repositories.retention import TRACK_TABLES
from engagement.core.repositories.retention import delete_tracks as delete_track_rows
from engagement.core.time import iso, utcnow
from privacy.class_rows import rederive

__all__ = ["TRACK_TABLES", "add_receipt", "count_participant_rows", "delete_participant_data", "delete_tracks",
           "receipts_dir", "track_ids_of", "write_receipt_file"]

def delete_tracks(conn: Connection, track_ids: list[int]) -> dict[str, int]:
    """Delete tracks (a withdrawal, an erasure, consent enforcement) with their per-second rows,
    and recompute the class rows of their runs from what remains (`privacy.class_rows`)."""
    runs = runs_of_tracks(conn, track_ids)
    counts = delete_track_rows(conn, track_ids)
    if runs:
        counts.update(rederive(conn, runs))
    return counts


def track_ids_of(conn: Connection, pseudonyms: Iterable[str], run_id: int | None = None) -> list[int]:
    names = sorted(set(pseudonyms))
    if not names:
        return []
    q = select(schema.tracks.c.id).where(schema.tracks.c.participant.in_(names))
    if run_id is not None:
        q = q.where(schema.tracks.c.run_id == run_id)
    return [int(r[0]) for r in conn.execute(q)]


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
    receipt_id = retention_rows.add_receipt(
        conn, kind=kind, trigger=trigger, counts=counts, at=when, policy_hash=policy_hash, subject=subject,
        cutoffs=cutoffs,
    )
    return {
        "receipt_id": receipt_id,
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
