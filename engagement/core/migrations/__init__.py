"""Schema migrations on alembic, run by `engagement.core.store` when it opens an older database.

Revisions live in `versions/` as `v<N>.py` with revision id "v<N>", N the schema version of
`engagement.core.schema.SCHEMA_VERSION` they bring a database to; they run programmatically on the
store's own locked connection (no alembic.ini). A new database gets every table of the schema
at once and is stamped at the head revision. To change a table: edit `engagement.core.schema`, bump
SCHEMA_VERSION, add `versions/v<N>.py` (down_revision "v<N-1>") whose `upgrade()` adds the change
through `engagement.core.migrations.ops` (which adds only what is missing, so a replay is harmless).

The `meta` table's schema_version stays the version a database declares (older releases read
it to refuse a newer database); alembic's stamp says which revisions ran. A database without the
stamp was written before migrations ran on alembic and replays its own version's revision too:
a v2 file of an older release lacks the indexes that v2 declares.

An SQLite file is copied to `<file>.v<old>.bak` first (SQLite's backup API, so rows still in
the WAL file are included).
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from sqlalchemy import Column, Table, inspect, text
from sqlalchemy.engine import Connection

from engagement.core import schema
from engagement.core.errors import StoreError

if TYPE_CHECKING:
    from alembic.script import ScriptDirectory

HEAD = f"v{schema.SCHEMA_VERSION}"
# Alembic's own name for its stamp table (MigrationContext's default version_table).
VERSION_TABLE = "alembic_version"


def scripts() -> ScriptDirectory:
    # alembic is imported only where a revision may run: every command opens the store, and
    # importing alembic (and mako) would add about a tenth of a second to each start.
    from alembic.script import ScriptDirectory

    versions = str(Path(__file__).parent / "versions")
    return ScriptDirectory(versions, version_locations=[versions])


def stamped_revision(conn: Connection) -> str | None:
    """The revision alembic's stamp names; None for a database it never stamped. Read with plain
    SQL, as alembic reads it, so that opening an up-to-date database needs no alembic."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:  # branches, which this line of revisions never makes: not the head
        return ",".join(sorted(rows))
    return rows[0] if rows else None


def needs_upgrade(conn: Connection, version: int) -> bool:
    """Whether a database at `version` (of its meta table) has revisions left to run."""
    return version < schema.SCHEMA_VERSION or stamped_revision(conn) != HEAD


def missing_columns(conn: Connection) -> list[tuple[Table, Column]]:
    """Columns of the schema that a table of the database lacks (absent tables excluded)."""
    inspector = inspect(conn)
    present = set(inspector.get_table_names())
    missing = []
    for table in schema.metadata.sorted_tables:
        if table.name not in present:
            continue
        have = {c["name"] for c in inspector.get_columns(table.name)}
        missing += [(table, column) for column in table.columns if column.name not in have]
    return missing


def upgrade(conn: Connection, version: int | None) -> list[str]:
    """Bring the database on `conn` to the head revision, in the caller's transaction.

    `version`: the schema version its meta table declares, None for an empty database. Returns
    the revisions that ran."""
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(conn)
    script = scripts()
    if version is None:
        schema.metadata.create_all(conn)
        context.stamp(script, "head")
        return []
    lower = f"v{version}"
    if context.get_current_revision() is None:
        # Written before migrations ran on alembic: its own version's revision runs again too.
        lower = script.get_revision(lower).down_revision or "base"
    revisions = list(reversed(list(script.iterate_revisions("head", lower))))
    with Operations.context(context):
        for revision in revisions:
            revision.module.upgrade()
    context.stamp(script, "head")
    return [r.revision for r in revisions]


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
