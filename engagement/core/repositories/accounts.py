"""The dashboard's sign-in accounts (password hashes only, never a password)."""

from __future__ import annotations

from sqlalchemy import insert, update
from sqlalchemy.engine import Connection

from engagement.core.schema import dashboard_users
from engagement.core.time import utcnow


def add_account(conn: Connection, name: str, role: str, password_hash: str) -> int:
    values = dict(name=name, role=role, password_hash=password_hash, created_at=utcnow(), disabled=0)
    return int(conn.execute(insert(dashboard_users).values(**values)).inserted_primary_key[0])


def set_disabled(conn: Connection, name: str, disabled: bool) -> bool:
    """False when there is no such account."""
    result = conn.execute(update(dashboard_users).where(dashboard_users.c.name == name).values(disabled=int(disabled)))
    return bool(result.rowcount)
