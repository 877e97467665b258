"""The results database: one SQLAlchemy engine, transactions, schema version, clear errors.

SQLite (a file under the data directory) by default; any SQLAlchemy URL, e.g. PostgreSQL, for a
multi-user site. SQLite runs in WAL mode so the dashboard can read while an analysis writes.

A database is this software's when its `meta` table holds a schema version; any other non-empty
database is refused before anything is written to it. Older versions are upgraded on open
(`engagement.core.migrations`, on alembic); a read-only open (`read_only=True`) never writes, not even that.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, delete, event, insert, inspect, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from engagement.core import migrations, schema
from engagement.core.errors import StoreError

# pg_advisory_xact_lock keys: the schema upgrade, and `take_write_turn`.
UPGRADE_LOCK = 7403001
WRITE_TURN_LOCK = 7403002


def take_write_turn(conn: Connection) -> None:
    """Make this transaction the only writer of shared bookkeeping until it commits.

    For read-then-write steps on rows every process shares (the audit chain's head, the
    database id, the retention policy's hash): without it, two analyses starting at once (a
    batch) both read "absent" and both insert, and one fails on the primary key. PostgreSQL: a
    transaction-level advisory lock. SQLite: a write statement that changes nothing takes the
    database's write lock now (later readers wait on busy_timeout and then see this commit).
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_TURN_LOCK})")
    else:
        conn.execute(delete(schema.meta).where(schema.meta.c.key == "\0"))


def describe_db_error(exc: BaseException, url: str) -> str:
    """Turn a driver error into one line a user can act on."""
    text = str(getattr(exc, "orig", exc)).lower()
    where = safe_url(url)
    if "locked" in text or "busy" in text:
        return f"the database {where} is locked by another program; close it or try again later"
    if "disk is full" in text or "database or disk is full" in text or "no space" in text:
        return f"the disk holding {where} is full; nothing more was written"
    if "readonly" in text or "read-only" in text or "permission" in text:
        return f"the database {where} is not writable (read-only file or directory)"
    if "unable to open" in text:
        return f"cannot open the database {where}: the directory does not exist or is not writable"
    if "not a database" in text or "malformed" in text:
        return f"{where} is not a valid database file (corrupt or another file type)"
    return f"database error on {where}: {str(getattr(exc, 'orig', exc)).splitlines()[0]}"


def safe_url(url: str) -> str:
    """A URL without its password, for messages and logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


class Store:
    """Access to the results database: open with `Store.open(url)`, then read and write in its
    transactions through `engagement.core.repositories` (functions, one module per aggregate)."""

    def __init__(self, engine: Engine, url: str, *, read_only: bool = False):
        self.engine = engine
        self.url = url
        self.read_only = read_only

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, create: bool = True, read_only: bool = False) -> "Store":
        """Open (with `create`, make) the database and bring its schema up to date.

        `read_only`: open without writing anything (SQLite: `mode=ro`), for commands that only
        read; it works on a read-only file or directory and never upgrades the schema.
        """
        path = sqlite_path(url)
        engine_url = url
        if path is not None:
            if create and not read_only:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"cannot create the database directory {path.parent}: {exc.strerror}"
                    ) from None
            elif not path.exists():
                raise StoreError(f"no database at {path}; run an analysis first")
            if read_only:
                engine_url = _read_only_url(path)
        try:
            engine = create_engine(engine_url, future=True)
        except (ArgumentError, ImportError, SQLAlchemyError) as exc:
            raise StoreError(f"cannot use database URL {safe_url(url)!r}: {exc}") from None
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine, url, read_only=read_only)
        try:
            store._ensure_schema(create)
        except BaseException:
            engine.dispose()
            raise
        return store

    def _ensure_schema(self, create: bool) -> None:
        try:
            with self.engine.connect() as conn:
                version = self._version(conn)
            if version is None:
                if self.read_only or not create:
                    raise StoreError(f"{safe_url(self.url)} holds no analysis results yet; run an analysis first")
                self._upgrade(None)
                return
            if version > schema.SCHEMA_VERSION:
                raise StoreError(
                    f"the database uses schema v{version}, newer than this software's "
                    f"v{schema.SCHEMA_VERSION}; upgrade the software"
                )
            if self.read_only:
                return  # an older schema is read as it is; a writing command upgrades it
            with self.engine.connect() as conn:
                if not migrations.needs_upgrade(conn, version):
                    return
                columns_missing = bool(migrations.missing_columns(conn))
            # Indexes and alembic's stamp alone need no copy of the file.
            self._upgrade(version if version < schema.SCHEMA_VERSION or columns_missing else None)
        except (OperationalError, DatabaseError) as exc:
            raise StoreError(describe_db_error(exc, self.url)) from None

    def _version(self, conn: Connection) -> int | None:
        """The schema version; None for an empty database; refuses another program's database."""
        inspector = inspect(conn)
        names = inspector.get_table_names()
        if "meta" in names and {"key", "value"} <= {c["name"] for c in inspector.get_columns("meta")}:
            row = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).first()
            if row is not None and str(row[0]).isdigit():
                return int(row[0])
        if names and set(schema.metadata.tables) <= set(names):
            # Every table of this software, but the version is gone: only a hand (or a damaged
            # file) removes it. Read-only commands read it as it is, so `audit verify` can say
            # what else is missing; nothing writes to it.
            if self.read_only:
                return schema.SCHEMA_VERSION
            raise StoreError(
                f"{safe_url(self.url)} is this software's database, but its schema version was removed from "
                "the meta table (by hand, or the file is damaged), which reads as tampering; it was left "
                "untouched: run `engagement privacy audit verify` on it and restore it from a backup"
            )
        if names:
            shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
            raise StoreError(
                f"{safe_url(self.url)} is another program's database ({len(names)} tables: {shown}) "
                "and not this software's; it was left untouched: give --db a new file or an empty database"
            )
        return None

    def _upgrade(self, backup_from: int | None) -> None:
        """Create a new database, or bring an older one up to date, in one locked transaction.

        `backup_from`: the version of an existing SQLite file to copy aside first.
        """
        path = sqlite_path(self.url)
        if backup_from is not None and path is not None:
            backup = migrations.backup_sqlite(path, backup_from)
            what = (
                f"Upgrading the database schema v{backup_from} -> v{schema.SCHEMA_VERSION}"
                if backup_from < schema.SCHEMA_VERSION
                else "Adding the columns this software needs to the database"
            )
            print(f"{what}; a copy of the old file is kept: {backup}", file=sys.stderr)
        with self.engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                # WAL persists in the file: set only now that the file is known to be ours.
                conn.exec_driver_sql("PRAGMA journal_mode=WAL")
                # One writer at a time: a second process opening the same old file waits here,
                # then finds the work done.
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            elif conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({UPGRADE_LOCK})")
            version = self._version(conn)
            if version is not None and version > schema.SCHEMA_VERSION:
                raise StoreError(f"the database uses schema v{version}, newer than this software's; upgrade the software")
            if version is None or migrations.needs_upgrade(conn, version):
                migrations.upgrade(conn, version)
            values = {"key": "schema_version", "value": str(schema.SCHEMA_VERSION)}
            if version is None:
                conn.execute(insert(schema.meta).values(**values))
            else:
                conn.execute(
                    update(schema.meta).where(schema.meta.c.key == "schema_version").values(value=values["value"])
                )
            conn.commit()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One transaction; database failures become a StoreError with a clear message."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except (OperationalError, DatabaseError) as exc:
            raise StoreError(describe_db_error(exc, self.url)) from None
        except PoolTimeout:
            # Every pooled connection stayed in use past the pool's wait: the database is busy,
            # as with a lock, so a live run keeps its second for the next try instead of failing.
            raise StoreError(f"every connection to {safe_url(self.url)} stayed in use (the database is busy)") from None

    @contextlib.contextmanager
    def busy_timeout(self, ms: int) -> Iterator[None]:
        """SQLite connections wait at most `ms` for a lock while the block runs (a live loop
        would rather retry its second than stall behind a long reader); other databases as
        they are."""
        if self.engine.dialect.name != "sqlite":
            yield
            return

        def pragma(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout={int(ms)}")
            cur.close()

        event.listen(self.engine, "connect", pragma)
        self.engine.dispose()  # pooled connections were opened with the default timeout
        try:
            yield
        finally:
            event.remove(self.engine, "connect", pragma)
            self.engine.dispose()

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL (set once, when the file is created or upgraded; it persists in the file): readers
    # (dashboard) never block the writer (analysis), and a crash loses at most the transaction in
    # flight. busy_timeout rides out short locks instead of failing at once.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL; None for other databases and in-memory SQLite."""
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        return Path(url.removeprefix("sqlite:///"))
    return None


def _read_only_url(path: Path) -> str:
    params = "mode=ro"
    wal = path.with_name(path.name + "-wal")
    if not wal.exists() and not os.access(path.parent, os.W_OK):
        # A WAL database is read through a -shm file beside it, which a read-only directory
        # cannot hold; with no -wal file there no writer is active (none could be, there), so
        # the file cannot change while we read: SQLite may then read it as immutable.
        params += "&immutable=1"
    return f"sqlite:///file:{quote(str(path.resolve()))}?{params}&uri=true"
