"""Dashboard tables, declared on the shared schema metadata so `Store.open` creates them.

Only the sign-in accounts live here. Passwords are never stored: `password_hash` holds a
self-describing scrypt string ("scrypt$n$r$p$salt_hex$hash_hex"), text so that the store keeps
its rule of no binary columns.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, String, Table

from engagement.schema import metadata

dashboard_users = Table(
    "dashboard_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(32), nullable=False),  # facilitator | researcher | privacy_officer | admin
    Column("password_hash", String(300), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("disabled", Integer, nullable=False, default=0),
)
