"""The results database: one SQLAlchemy engine, transactions, schema version, clear errors.

SQLite (a file under the data directory) by default; any SQLAlchemy URL, e.g. PostgreSQL, for a
multi-user site. SQLite runs in WAL mode so the dashboard can read while an analysis writes.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import create_engine, delete, event, func, insert, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, DatabaseError, OperationalError, SQLAlchemyError

import dashboard.tables  # noqa: F401  (registers the dashboard_users table on the shared metadata)
import privacy.tables  # noqa: F401  (registers the privacy tables on the shared metadata)
from engagement import schema
from engagement.errors import StoreError
from engagement.records import WindowFeatures


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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


class Store:
    """Access to the results database. Open with `Store.open(url)`."""

    def __init__(self, engine: Engine, url: str):
        self.engine = engine
        self.url = url

    # -- opening -----------------------------------------------------------------------------

    @classmethod
    def open(cls, url: str, *, create: bool = True) -> "Store":
        if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            path = Path(url.removeprefix("sqlite:///"))
            if create:
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"cannot create the database directory {path.parent}: {exc.strerror}"
                    ) from None
            elif not path.exists():
                raise StoreError(f"no database at {path}; run an analysis first")
        try:
            engine = create_engine(url, future=True)
        except (ArgumentError, ImportError, SQLAlchemyError) as exc:
            raise StoreError(f"cannot use database URL {safe_url(url)!r}: {exc}") from None
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        store = cls(engine, url)
        store._ensure_schema(create)
        return store

    def _ensure_schema(self, create: bool) -> None:
        try:
            with self.engine.begin() as conn:
                if create:
                    schema.metadata.create_all(conn)
                row = conn.execute(
                    select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
                ).first()
                if row is None:
                    conn.execute(insert(schema.meta).values(key="schema_version", value=str(schema.SCHEMA_VERSION)))
                elif int(row[0]) > schema.SCHEMA_VERSION:
                    raise StoreError(
                        f"the database uses schema v{row[0]}, newer than this software's "
                        f"v{schema.SCHEMA_VERSION}; upgrade the software"
                    )
        except StoreError:
            raise
        except (OperationalError, DatabaseError) as exc:
            raise StoreError(describe_db_error(exc, self.url)) from None

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
        conn.execute(
            update(schema.runs)
            .where(schema.runs.c.id == run_id)
            .values(heartbeat_at=utcnow(), frames_read=frames_read, frames_analysed=frames_analysed, seconds=seconds)
        )

    def finish_run(self, run_id: int, *, frames_read: int, frames_analysed: int, seconds: int) -> None:
        with self.transaction() as conn:
            conn.execute(
                update(schema.runs)
                .where(schema.runs.c.id == run_id)
                .values(
                    status="complete",
                    finished_at=utcnow(),
                    frames_read=frames_read,
                    frames_analysed=frames_analysed,
                    seconds=seconds,
                )
            )

    def abandon_run(self, run_id: int, *, status: str, error: str) -> None:
        """Mark a run failed/interrupted and remove every per-second row it wrote.

        The run row itself stays, so the history shows that an attempt was made and why it
        stopped; no half-finished data remains to be mistaken for a result.
        """
        with self.transaction() as conn:
            for table in (schema.window_features, schema.engagement_estimates, schema.class_timeline, schema.alerts):
                conn.execute(delete(table).where(table.c.run_id == run_id))
            conn.execute(delete(schema.tracks).where(schema.tracks.c.run_id == run_id))
            conn.execute(
                update(schema.runs)
                .where(schema.runs.c.id == run_id)
                .values(status=status, finished_at=utcnow(), error=error[:500])
            )

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
    # WAL: readers (dashboard) never block the writer (analysis), and a crash loses at most the
    # transaction in flight. busy_timeout rides out short locks instead of failing at once.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()
