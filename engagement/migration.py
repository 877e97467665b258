"""Upgrading an older results database to the tables of this software.

One generic step: compare every table of the metadata with the database and add what is
missing (tables, nullable columns, indexes), then record the new schema version. Adding is all
a migration has needed so far; a change that is not an addition (a renamed column, a new NOT
NULL column without a default) is refused with a clear error, to be written as its own step.
An SQLite file is copied to `<file>.v<old>.bak` first (SQLite's backup API, so rows still in
the WAL file are included).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import Column, Table, inspect
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateColumn

from engagement import schema
from engagement.errors import StoreError


def missing_columns(conn: Connection) -> list[tuple[Table, Column]]:
    """Columns of the metadata that a table of the database lacks (absent tables excluded)."""
    inspector = inspect(conn)
    present = set(inspector.get_table_names())
    missing = []
    for table in schema.metadata.sorted_tables:
        if table.name not in present:
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        missing += [(table, column) for column in table.columns if column.name not in have]
    return missing


def add_column_sql(conn: Connection, table: Table, column: Column) -> str:
    if column.primary_key or column.unique or (not column.nullable and column.server_default is None):
        raise StoreError(
            f"cannot upgrade the database: the new column {table.name}.{column.name} needs a "
            "hand-written migration step (it is a key, unique, or NOT NULL without a default)"
        )
    preparer = conn.dialect.identifier_preparer
    spec = CreateColumn(column).compile(dialect=conn.dialect)
    return f"ALTER TABLE {preparer.format_table(table)} ADD COLUMN {spec}"


def upgrade(conn: Connection) -> list[str]:
    """Add every missing table, column and index; returns what was added, for the message."""
    columns = missing_columns(conn)
    statements = [add_column_sql(conn, table, column) for table, column in columns]  # refuse before any change
    for statement in statements:
        conn.exec_driver_sql(statement)
    added = [f"{table.name}.{column.name}" for table, column in columns]
    present = set(inspect(conn).get_table_names())
    added += [t.name for t in schema.metadata.sorted_tables if t.name not in present]
    schema.metadata.create_all(conn)
    for table in schema.metadata.sorted_tables:
        for index in table.indexes:
            index.create(conn, checkfirst=True)
    return added


def backup_sqlite(path: Path, version: int) -> Path:
    """Copy an SQLite database to `<file>.v<version>.bak` (owner-only; never overwrites)."""
    target = path.with_name(f"{path.name}.v{version}.bak")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.v{version}.{n}.bak")
    try:
        os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        source = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
        copy = sqlite3.connect(target)
        try:
            source.backup(copy)
        finally:
            copy.close()
            source.close()
    except (OSError, sqlite3.Error) as exc:
        target.unlink(missing_ok=True)
        raise StoreError(
            f"cannot back up {path} to {target.name} before upgrading its schema: {exc}; nothing was changed"
        ) from None
    return target
