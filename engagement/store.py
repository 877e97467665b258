"""The results database: one SQLAlchemy engine, transactions, schema version, clear errors.

SQLite (a file under the data directory) by default; any SQLAlchemy URL, e.g. PostgreSQL, for a
multi-user site. SQLite runs in WAL mode so the dashboard can read while an analysis writes.

A database is this software's when its `meta` table holds a schema version; any other non-empty
database is refused before anything is written to it. Older versions are upgraded on open
(`engagement.migration`); a read-only open (`read_only=True`) never writes, not even that.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, delete, event, func, insert, inspect, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError, SQLAlchemyError

import dashboard.tables  # noqa: F401  (registers the dashboard_users table on the shared metadata)
import privacy.tables  # noqa: F401  (registers the privacy tables on the shared metadata)
from engagement import migration, schema
from engagement.errors import ConfigError, StoreError
from engagement.records import WindowFeatures

# A run's writer refreshes `runs.heartbeat_at` at least this often (a thread in the pipeline) ...
HEARTBEAT_EVERY_S = 30
# ... and a `running` run written on another host whose heartbeat is older than this is taken as
# dead (its writer crashed, was killed, or lost the database for good). Four missed heartbeats;
# the hosts' clocks must agree to well within this (NTP). On the writer's own host its process
# id decides instead, at once.
STALE_AFTER_S = 120


class RunGone(StoreError):
    """The run is no longer `running`: another process found its writer dead and reaped it."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# pg_advisory_xact_lock key of `take_write_turn` (the schema upgrade uses 7403001).
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


@dataclass(frozen=True)
class SessionInfo:
    id: int
    name: str
    cohort: str | None
    created_at: datetime
    runs: int
    last_status: str | None
    seconds: int
    tracks: int


@dataclass(frozen=True)
class DeadRun:
    id: int
    session_id: int
    session: str
    reason: str  # why the writer is taken as gone, for the message and the audit entry


class Store:
    """Access to the results database. Open with `Store.open(url)`."""

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
                stale = version < schema.SCHEMA_VERSION or bool(migration.missing_columns(conn))
                missing = {t.name for t in schema.metadata.sorted_tables} - set(inspect(conn).get_table_names())
            if stale or missing:
                self._upgrade(version if stale else None)
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
            backup = migration.backup_sqlite(path, backup_from)
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
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7403001)")
            version = self._version(conn)
            if version is not None and version > schema.SCHEMA_VERSION:
                raise StoreError(f"the database uses schema v{version}, newer than this software's; upgrade the software")
            migration.upgrade(conn)
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

    def close(self) -> None:
        self.engine.dispose()

    # -- sessions and runs -------------------------------------------------------------------

    def session_id(self, name: str, *, cohort: str | None = None, create: bool = True) -> int:
        check_session_name(name)
        with self.transaction() as conn:
            row = conn.execute(select(schema.sessions.c.id).where(schema.sessions.c.name == name)).first()
            if row:
                return int(row[0])
            if not create:
                raise StoreError(f"no session named {name!r}; `engagement sessions list` shows them")
            return int(
                conn.execute(
                    insert(schema.sessions).values(name=name, cohort=cohort, created_at=utcnow())
                ).inserted_primary_key[0]
            )

    def session_exists(self, name: str) -> bool:
        with self.transaction() as conn:
            return conn.execute(select(schema.sessions.c.id).where(schema.sessions.c.name == name)).first() is not None

    def begin_run(
        self,
        session_id: int,
        *,
        mode: str,
        source: str,
        software_version: str,
        profile: str,
        config: dict,
        config_hash: str,
        models: dict,
        source_sha256: str | None = None,
    ) -> int:
        with self.transaction() as conn:
            result = conn.execute(
                insert(schema.runs).values(
                    session_id=session_id,
                    status="running",
                    mode=mode,
                    source=source,
                    started_at=utcnow(),
                    heartbeat_at=utcnow(),
                    software_version=software_version,
                    profile=profile,
                    config_json=json.dumps(config, sort_keys=True),
                    config_hash=config_hash,
                    models_json=json.dumps(models, sort_keys=True),
                    frames_read=0,
                    frames_analysed=0,
                    seconds=0,
                    source_sha256=source_sha256,
                    writer_pid=os.getpid(),
                    writer_host=host_tag(),
                )
            )
            return int(result.inserted_primary_key[0])

    def add_track(self, conn: Connection, run_id: int, label: str, participant: str | None, second: int) -> int:
        result = conn.execute(
            insert(schema.tracks).values(
                run_id=run_id,
                label=label,
                participant=participant,
                first_second=second,
                last_second=second,
                present_seconds=0,
            )
        )
        return int(result.inserted_primary_key[0])

    def write_windows(
        self, conn: Connection, run_id: int, rows: Iterable[tuple[int, WindowFeatures]]
    ) -> int:
        """Insert (db track id, window) pairs and keep the tracks' spans up to date."""
        now = utcnow()
        batch = []
        for track_db_id, window in rows:
            row = window.to_dict()
            row.update(run_id=run_id, track_id=track_db_id, created_at=now)
            batch.append(row)
            values = {"last_second": window.second}
            if window.present:
                values["present_seconds"] = schema.tracks.c.present_seconds + 1
            conn.execute(update(schema.tracks).where(schema.tracks.c.id == track_db_id).values(**values))
        if batch:
            conn.execute(insert(schema.window_features), batch)
        return len(batch)

    def set_track_span(self, conn: Connection, track_db_id: int, first_ms: float, last_ms: float) -> None:
        conn.execute(
            update(schema.tracks)
            .where(schema.tracks.c.id == track_db_id)
            .values(first_seen_ms=first_ms, last_seen_ms=last_ms)
        )

    def heartbeat(self, conn: Connection, run_id: int, frames_read: int, frames_analysed: int, seconds: int) -> None:
        """Progress and proof of life, in the caller's transaction; RunGone if it was reaped."""
        self._update_running(
            conn, run_id, heartbeat_at=utcnow(), frames_read=frames_read, frames_analysed=frames_analysed, seconds=seconds
        )

    def touch_run(self, run_id: int) -> bool:
        """Refresh the heartbeat alone; False when the run is no longer running (reaped)."""
        with self.transaction() as conn:
            result = conn.execute(
                update(schema.runs)
                .where(schema.runs.c.id == run_id, schema.runs.c.status == "running")
                .values(heartbeat_at=utcnow())
            )
            return bool(result.rowcount)

    def finish_run(
        self, run_id: int, *, frames_read: int, frames_analysed: int, seconds: int, conn: Connection | None = None
    ) -> None:
        if conn is None:
            with self.transaction() as own:
                return self.finish_run(
                    run_id, frames_read=frames_read, frames_analysed=frames_analysed, seconds=seconds, conn=own
                )
        self._update_running(
            conn,
            run_id,
            status="complete",
            finished_at=utcnow(),
            frames_read=frames_read,
            frames_analysed=frames_analysed,
            seconds=seconds,
        )

    def _update_running(self, conn: Connection, run_id: int, **values) -> None:
        result = conn.execute(
            update(schema.runs).where(schema.runs.c.id == run_id, schema.runs.c.status == "running").values(**values)
        )
        if not result.rowcount:
            # Raised inside the transaction, so nothing of this write lands on a reaped run.
            raise RunGone(
                f"run {run_id} is no longer running: another process found it without a heartbeat "
                f"for {STALE_AFTER_S} s, marked it interrupted and removed its rows"
            )

    def abandon_run(self, run_id: int, *, status: str, error: str, conn: Connection | None = None) -> bool:
        """Mark a running run failed/interrupted and remove every per-second row it wrote.

        The run row itself stays, so the history shows that an attempt was made and why it
        stopped; no half-finished data remains to be mistaken for a result. Only a `running` run
        changes (False otherwise): a run that completed, or that another process reaped, stays.
        """
        if conn is None:
            with self.transaction() as own:
                return self.abandon_run(run_id, status=status, error=error, conn=own)
        result = conn.execute(
            update(schema.runs)
            .where(schema.runs.c.id == run_id, schema.runs.c.status == "running")
            .values(status=status, finished_at=utcnow(), error=error[:500])
        )
        if not result.rowcount:
            return False
        for table in (schema.window_features, schema.engagement_estimates, schema.class_timeline, schema.alerts):
            conn.execute(delete(table).where(table.c.run_id == run_id))
        conn.execute(delete(schema.tracks).where(schema.tracks.c.run_id == run_id))
        return True

    def dead_runs(self, now: datetime | None = None) -> list[DeadRun]:
        """`running` runs whose writer is gone: on this host its process has ended; elsewhere
        (or where the process cannot be checked) its heartbeat is older than STALE_AFTER_S."""
        now = now or utcnow()
        here = host_tag()
        r, s = schema.runs, schema.sessions
        with self.transaction() as conn:
            rows = conn.execute(
                select(r.c.id, r.c.session_id, s.c.name, r.c.writer_pid, r.c.writer_host, r.c.heartbeat_at, r.c.started_at)
                .join(s, s.c.id == r.c.session_id)
                .where(r.c.status == "running")
                .order_by(r.c.id)
            ).all()
        dead = []
        for row in rows:
            if row.writer_pid and row.writer_host == here and os.name == "posix":
                if not pid_alive(int(row.writer_pid)):
                    dead.append(DeadRun(row.id, row.session_id, row.name, "its process has ended"))
                continue
            age = (now - as_utc(row.heartbeat_at or row.started_at)).total_seconds()
            if age > STALE_AFTER_S:
                dead.append(DeadRun(row.id, row.session_id, row.name, f"no heartbeat for {age:.0f} s"))
        return dead

    # -- reading -----------------------------------------------------------------------------

    def list_sessions(self) -> list[SessionInfo]:
        s, r = schema.sessions, schema.runs
        with self.transaction() as conn:
            sessions = conn.execute(select(s).order_by(s.c.created_at)).all()
            out = []
            for row in sessions:
                runs = conn.execute(
                    select(r.c.status, r.c.seconds, r.c.id).where(r.c.session_id == row.id).order_by(r.c.id)
                ).all()
                complete = [x for x in runs if x.status == "complete"]
                tracks = 0
                if complete:
                    tracks = conn.execute(
                        select(func.count()).select_from(schema.tracks).where(schema.tracks.c.run_id == complete[-1].id)
                    ).scalar_one()
                out.append(
                    SessionInfo(
                        id=row.id,
                        name=row.name,
                        cohort=row.cohort,
                        created_at=row.created_at,
                        runs=len(runs),
                        last_status=runs[-1].status if runs else None,
                        seconds=complete[-1].seconds if complete else 0,
                        tracks=int(tracks),
                    )
                )
            return out

    def latest_run(self, session_name: str, *, statuses: tuple[str, ...] = ("complete",)) -> dict:
        """The newest run of a session with one of `statuses`, as a dict of its columns."""
        s, r = schema.sessions, schema.runs
        with self.transaction() as conn:
            row = conn.execute(
                select(r)
                .join(s, s.c.id == r.c.session_id)
                .where(s.c.name == session_name, r.c.status.in_(statuses))
                .order_by(r.c.id.desc())
                .limit(1)
            ).first()
        if row is None:
            raise StoreError(
                f"session {session_name!r} has no {'/'.join(statuses)} analysis run; "
                "`engagement sessions list` shows what there is"
            )
        return dict(row._mapping)


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


def host_tag() -> str:
    """This host, as stored on a run: a short hash of its name (enough to compare, names nobody)."""
    return hashlib.sha256(socket.gethostname().encode("utf-8")).hexdigest()[:16]


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (POSIX)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another account's process
    except OSError:
        return False
    # A killed process whose parent has not collected it yet (a zombie) runs no more code.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; they were written in UTC."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


SESSION_NAME_MAX = schema.sessions.c.name.type.length


def check_session_name(name: str) -> str:
    """A session name that fits its column: not blank, at most SESSION_NAME_MAX characters."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("the session name must not be empty")
    if len(name) > SESSION_NAME_MAX:
        raise ConfigError(
            f"the session name is {len(name)} characters long; at most {SESSION_NAME_MAX} are allowed"
        )
    return name
