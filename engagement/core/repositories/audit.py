"""The audit trail's rows: the hash chain, its checkpoint and the database's id.

The chain's rules (hashing, anchoring, who may append) live in `privacy.audit`; here is only
how its rows are read back for the next link and written."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection, Row

from engagement.core import schema
from engagement.core.time import utcnow

DATABASE_ID_KEY = "database_id"  # meta table: names this database's anchor file


def database_id(conn: Connection, *, create: bool = False) -> str | None:
    """This database's id (meta table), made on the first audit entry."""
    m = schema.meta
    value = conn.execute(select(m.c.value).where(m.c.key == DATABASE_ID_KEY)).scalar()
    if value is None and create:
        value = uuid.uuid4().hex
        conn.execute(insert(m).values(key=DATABASE_ID_KEY, value=value))
    return value


def head(conn: Connection) -> tuple[int, str] | None:
    """(seq, hash) of the newest entry, else of the checkpoint left by a purge, else None."""
    t, cp = schema.audit_log, schema.audit_checkpoint
    row = conn.execute(select(t.c.seq, t.c.hash).order_by(t.c.seq.desc()).limit(1)).first()
    if row is None:
        row = conn.execute(select(cp.c.seq, cp.c.hash)).first()
    return (int(row.seq), row.hash) if row else None


def append(conn: Connection, *, seq: int, at: datetime, action: str, actor: str, details: str,
           correlation_id: str | None, prev_hash: str, hash: str) -> None:  # noqa: A002 - the column's name
    conn.execute(
        insert(schema.audit_log).values(
            seq=seq, at=at, action=action, actor=actor, details=details, correlation_id=correlation_id,
            prev_hash=prev_hash, hash=hash,
        )
    )


def newest_before(conn: Connection, cutoff: datetime) -> Row | None:
    """(seq, hash) of the newest entry older than `cutoff`."""
    a = schema.audit_log
    return conn.execute(select(a.c.seq, a.c.hash).where(a.c.at < cutoff).order_by(a.c.seq.desc()).limit(1)).first()


def count_through(conn: Connection, seq: int) -> int:
    """How many entries `remove_through(seq)` would delete."""
    a = schema.audit_log
    return int(conn.execute(select(func.count()).select_from(a).where(a.c.seq <= seq)).scalar_one())


def remove_through(conn: Connection, seq: int, last_hash: str) -> int:
    """Delete every entry up to `seq` (a prefix, so the rest of the chain stays whole) and make
    that entry the checkpoint the remaining chain starts from. Returns the entries deleted."""
    a, cp = schema.audit_log, schema.audit_checkpoint
    removed = int(conn.execute(delete(a).where(a.c.seq <= seq)).rowcount or 0)
    conn.execute(delete(cp))
    conn.execute(insert(cp).values(id=1, seq=int(seq), hash=last_hash, at=utcnow()))
    return removed
