"""Sessions, runs and their per-second results: every write of an analysis and the reads of
its bookkeeping (which sessions there are, a session's latest run, runs whose writer is gone).

Like every repository, functions: a write that is one step of a larger transaction takes the
caller's connection (`conn`); a step that is its own transaction (a run's start, its heartbeat
alone, the reads behind a listing) takes the `Store` and opens one (`store.transaction()`).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import psutil
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from engagement.core import schema
from engagement.core.errors import ConfigError, StoreError
from engagement.core.records import WindowFeatures
from engagement.core.time import as_utc, utcnow

if TYPE_CHECKING:  # the store opens the transactions these functions run in
    from engagement.core.store import Store

# A run's writer refreshes `runs.heartbeat_at` at least this often (a thread in the pipeline) ...
HEARTBEAT_EVERY_S = 30
# ... and a `running` run written on another host whose heartbeat is older than this is taken as
# dead (its writer crashed, was killed, or lost the database for good). Four missed heartbeats;
# the hosts' clocks must agree to well within this (NTP). On the writer's own host its process
# id decides instead, at once.
STALE_AFTER_S = 120


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


class RunGone(StoreError):
    """The run is no longer `running`: another process found its writer dead and reaped it."""


def session_id(store: Store, name: str, *, cohort: str | None = None, create: bool = True) -> int:
    check_session_name(name)
    with store.transaction() as conn:
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


def session_exists(store: Store, name: str) -> bool:
    with store.transaction() as conn:
        return conn.execute(select(schema.sessions.c.id).where(schema.sessions.c.name == name)).first() is not None


def begin_run(
    store: Store,
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
    with store.transaction() as conn:
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


def add_track(conn: Connection, run_id: int, label: str, participant: str | None, second: int) -> int:
    values = dict(run_id=run_id, label=label, participant=participant, first_second=second, last_second=second)
    result = conn.execute(insert(schema.tracks).values(**values, present_seconds=0))
    return int(result.inserted_primary_key[0])


def write_windows(
    conn: Connection, run_id: int, rows: Iterable[tuple[int, WindowFeatures]]
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


def set_track_span(conn: Connection, track_db_id: int, first_ms: float, last_ms: float) -> None:
    conn.execute(
        update(schema.tracks)
        .where(schema.tracks.c.id == track_db_id)
        .values(first_seen_ms=first_ms, last_seen_ms=last_ms)
    )


def write_outputs(
    conn: Connection, run_id: int, estimates: list[dict], points: list[dict], alerts: Iterable[dict] = ()
) -> None:
    """The temporal stage's rows of some seconds (as `to_dict()` rows, estimates already
    carrying their db track id): per-track estimates, class points and alerts."""
    now = utcnow()
    tables = ((schema.engagement_estimates, estimates), (schema.class_timeline, points), (schema.alerts, alerts))
    for table, rows in tables:
        rows = [{**row, "run_id": run_id, "created_at": now} for row in rows]
        if rows:
            conn.execute(insert(table), rows)


def heartbeat(conn: Connection, run_id: int, frames_read: int, frames_analysed: int, seconds: int) -> None:
    """Progress and proof of life, in the caller's transaction; RunGone if it was reaped."""
    _update_running(
        conn, run_id, heartbeat_at=utcnow(), frames_read=frames_read, frames_analysed=frames_analysed, seconds=seconds
    )


def touch_run(store: Store, run_id: int) -> bool:
    """Refresh the heartbeat alone; False when the run is no longer running (reaped)."""
    with store.transaction() as conn:
        result = conn.execute(
            update(schema.runs)
            .where(schema.runs.c.id == run_id, schema.runs.c.status == "running")
            .values(heartbeat_at=utcnow())
        )
        return bool(result.rowcount)


def finish_run(
    store: Store, run_id: int, *, frames_read: int, frames_analysed: int, seconds: int, conn: Connection | None = None
) -> None:
    if conn is None:
        with store.transaction() as own:
            return finish_run(
                store, run_id, frames_read=frames_read, frames_analysed=frames_analysed, seconds=seconds, conn=own
            )
    _update_running(
        conn,
        run_id,
        status="complete",
        finished_at=utcnow(),
        frames_read=frames_read,
        frames_analysed=frames_analysed,
        seconds=seconds,
    )


def _update_running(conn: Connection, run_id: int, **values) -> None:
    result = conn.execute(
        update(schema.runs).where(schema.runs.c.id == run_id, schema.runs.c.status == "running").values(**values)
    )
    if not result.rowcount:
        # Raised inside the transaction, so nothing of this write lands on a reaped run.
        raise RunGone(
            f"run {run_id} is no longer running: another process found it without a heartbeat "
            f"for {STALE_AFTER_S} s, marked it interrupted and removed its rows"
        )


def abandon_run(store: Store, run_id: int, *, status: str, error: str, conn: Connection | None = None) -> bool:
    """Mark a running run failed/interrupted and remove every per-second row it wrote.

    The run row itself stays, so the history shows that an attempt was made and why it
    stopped; no half-finished data remains to be mistaken for a result. Only a `running` run
    changes (False otherwise): a run that completed, or that another process reaped, stays.
    """
    if conn is None:
        with store.transaction() as own:
            return abandon_run(store, run_id, status=status, error=error, conn=own)
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


def dead_runs(store: Store, now: datetime | None = None) -> list[DeadRun]:
    """`running` runs whose writer is gone: on this host its process has ended; elsewhere
    its heartbeat is older than STALE_AFTER_S."""
    now = now or utcnow()
    here = host_tag()
    r, s = schema.runs, schema.sessions
    with store.transaction() as conn:
        rows = conn.execute(
            select(r.c.id, r.c.session_id, s.c.name, r.c.writer_pid, r.c.writer_host, r.c.heartbeat_at, r.c.started_at)
            .join(s, s.c.id == r.c.session_id)
            .where(r.c.status == "running")
            .order_by(r.c.id)
        ).all()
    dead = []
    for row in rows:
        if row.writer_pid and row.writer_host == here:
            if not pid_alive(int(row.writer_pid)):
                dead.append(DeadRun(row.id, row.session_id, row.name, "its process has ended"))
            continue
        age = (now - as_utc(row.heartbeat_at or row.started_at)).total_seconds()
        if age > STALE_AFTER_S:
            dead.append(DeadRun(row.id, row.session_id, row.name, f"no heartbeat for {age:.0f} s"))
    return dead


# -- reading ---------------------------------------------------------------------------------


def list_sessions(store: Store) -> list[SessionInfo]:
    s, r = schema.sessions, schema.runs
    with store.transaction() as conn:
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


def latest_run(store: Store, session_name: str, *, statuses: tuple[str, ...] = ("complete",)) -> dict:
    """The newest run of a session with one of `statuses`, as a dict of its columns."""
    s, r = schema.sessions, schema.runs
    with store.transaction() as conn:
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


def host_tag() -> str:
    """This host, as stored on a run: a short hash of its name (enough to compare, names nobody)."""
    return hashlib.sha256(socket.gethostname().encode("utf-8")).hexdigest()[:16]


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host, on every platform.

    Through psutil, not `os.kill(pid, 0)` and /proc: on Windows `os.kill` with signal 0 calls
    TerminateProcess (it would kill the writer it asks about) and there is no /proc, so a crashed
    run there waited for its heartbeat to go stale. psutil asks the system itself (OpenProcess and
    GetExitCodeProcess on Windows, the kernel's process table on Linux and macOS)."""
    if pid == os.getpid():
        return True
    try:
        # A killed process whose parent has not collected it yet (a zombie) runs no more code.
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # another account's process: it exists


SESSION_NAME_MAX = schema.sessions.c.name.type.length


# Bidirectional overrides and isolates reorder what a terminal or a page shows.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def unprintable(text: str) -> list[str]:
    """The characters of `text` that a terminal or a page would act on rather than show:
    control characters (ESC, newline, tab...), line and paragraph separators, bidi controls."""
    return [ch for ch in text if unicodedata.category(ch) in ("Cc", "Zl", "Zp") or ch in _BIDI_CONTROLS]


def check_session_name(name: str) -> str:
    """The one check of a session name, for every place one enters (analyze, live, batch,
    consent attest, the dashboard's forms): not blank, no control character, no leading or
    trailing space, at most SESSION_NAME_MAX characters. Nothing is stripped or changed, so the
    name attested is the name analysed."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("the session name must not be empty")
    bad = unprintable(name)
    if bad:
        shown = ", ".join(sorted({f"U+{ord(ch):04X}" for ch in bad}))
        raise ConfigError(f"the session name {name!r} contains control characters ({shown}); use plain text")
    if name != name.strip():
        raise ConfigError(f"the session name {name!r} starts or ends with a space; remove it")
    if len(name) > SESSION_NAME_MAX:
        raise ConfigError(
            f"the session name is {len(name)} characters long; at most {SESSION_NAME_MAX} are allowed"
        )
    return name


def printable(text: str) -> str:
    """`text` for a terminal: each control character shown as an escape (\\x1b, \\n), never
    acted on (a session name stored by an older version may hold them)."""
    bad = set(unprintable(text)) | {"\\"} if unprintable(text) else set()
    return "".join(ch.encode("unicode_escape").decode("ascii") if ch in bad else ch for ch in text)
