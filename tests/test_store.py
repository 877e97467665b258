"""The results database: schema version and upgrades, clear errors, another program's file
refused, runs that are whole or marked, runs whose writer is gone."""

import os
import sqlite3
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from engagement.core import schema
from engagement.core.errors import ConfigError, StoreError
from engagement.core.records import FEATURE_NAMES, WindowFeatures
from engagement.core.repositories import runs as run_rows
from engagement.core.repositories.runs import STALE_AFTER_S, RunGone
from engagement.core.store import Store, safe_url
from engagement.core.time import utcnow
from conftest import another_programs_database


def window(second: int) -> WindowFeatures:
    values = (0.1,) * len(FEATURE_NAMES)
    return WindowFeatures(1, second, 10, 10, 0, values, values)


def new_run(store: Store) -> int:
    session = run_rows.session_id(store, "s")
    return run_rows.begin_run(
        store,
        session, mode="file", source="x.mp4", software_version="t", profile="id-pdp",
        config={}, config_hash="h", models={},
    )  # fmt: skip


def test_newer_schema_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store = Store.open(url)
    with store.transaction() as conn:
        conn.execute(update(schema.meta).where(schema.meta.c.key == "schema_version").values(value="99"))
    store.close()
    with pytest.raises(StoreError, match="schema v99, newer"):
        Store.open(url)


def test_not_a_database_file(tmp_path):
    path = tmp_path / "notes.db"
    path.write_text("hello, not a database\n" * 100)
    with pytest.raises(StoreError, match="not a valid database"):
        Store.open(f"sqlite:///{path}")


def test_locked_database_gives_a_clear_error(tmp_path):
    path = tmp_path / "r.db"
    store = Store.open(f"sqlite:///{path}")
    other = sqlite3.connect(path, timeout=0)
    other.execute("BEGIN EXCLUSIVE")  # another program holds the write lock
    store.engine.dispose()
    with pytest.raises(StoreError, match="locked"):
        with store.transaction() as conn:
            conn.exec_driver_sql("PRAGMA busy_timeout=100")
            conn.execute(schema.sessions.insert().values(name="x", created_at=utcnow()))
    other.rollback()
    other.close()


def test_abandoned_run_keeps_its_row_and_no_data(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'r.db'}")
    run = new_run(store)
    with store.transaction() as conn:
        track = run_rows.add_track(conn, run, "T1", "a-x", 0)
        run_rows.write_windows(conn, run, [(track, window(0)), (track, window(1))])
    run_rows.abandon_run(store, run, status="interrupted", error="stopped by the user")
    with store.transaction() as conn:
        (row,) = conn.execute(select(schema.runs)).all()
        assert row.status == "interrupted" and row.error == "stopped by the user"
        assert conn.execute(select(func.count()).select_from(schema.window_features)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(schema.tracks)).scalar_one() == 0


def test_write_windows_keeps_track_spans(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'r.db'}")
    run = new_run(store)
    absent = WindowFeatures(1, 2, 10, 0, 0, (None,) * len(FEATURE_NAMES), (None,) * len(FEATURE_NAMES))
    with store.transaction() as conn:
        track = run_rows.add_track(conn, run, "T1", "a-x", 0)
        run_rows.write_windows(conn, run, [(track, window(0)), (track, window(1)), (track, absent)])
        row = conn.execute(select(schema.tracks)).one()
    assert (row.first_second, row.last_second, row.present_seconds) == (0, 2, 2)


def test_password_is_never_shown():
    assert safe_url("postgresql://alice:s3cret@db.example/eng") == "postgresql://alice:***@db.example/eng"


# -- schema upgrades ------------------------------------------------------------------------------

V1_SCHEMA = Path(__file__).parent / "fixtures" / "schema_v1.sql"


def make_v1_database(path: Path) -> None:
    """A database as the first release left it: its tables, one session with a run, a track and
    two seconds of windows."""
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA.read_text())
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    conn.execute("INSERT INTO sessions (id, name, created_at) VALUES (1, 'old', '2026-01-05 10:00:00')")
    conn.execute(
        "INSERT INTO runs (id, session_id, status, mode, source, started_at, finished_at, software_version,"
        " profile, config_json, config_hash, models_json, frames_read, frames_analysed, seconds)"
        " VALUES (1, 1, 'complete', 'file', 'a.mp4', '2026-01-05 10:00:00', '2026-01-05 10:01:00', '0.1.0',"
        " 'id-pdp', '{}', 'h', '{}', 50, 50, 2)"
    )
    conn.execute("INSERT INTO tracks (id, run_id, label, first_second, last_second, present_seconds) VALUES (1, 1, 'T1', 0, 1, 2)")
    for second in (0, 1):
        conn.execute(
            "INSERT INTO window_features (run_id, track_id, second, created_at, n_frames, n_face, present_ratio, blinks,"
            " head_yaw_mean) VALUES (1, 1, ?, '2026-01-05 10:00:00', 25, 25, 1.0, 0, 0.1)",
            (second,),
        )
    conn.commit()
    conn.close()


def columns(conn, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def test_v1_database_is_upgraded_in_place_after_a_backup(tmp_path):
    path = tmp_path / "old.db"
    make_v1_database(path)
    store = Store.open(f"sqlite:///{path}")
    with store.transaction() as conn:
        version = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).scalar_one()
        windows = conn.execute(select(func.count()).select_from(schema.window_features)).scalar_one()
        old_run = conn.execute(select(schema.runs).where(schema.runs.c.id == 1)).one()
    assert version == str(schema.SCHEMA_VERSION) == "6"
    assert windows == 2 and old_run.status == "complete" and old_run.writer_pid is None
    # Every column of the metadata is there now, the other modules' new columns too.
    raw = sqlite3.connect(path)
    for table in schema.metadata.sorted_tables:
        assert {c.name for c in table.columns} <= columns(raw, table.name), table.name
    raw.close()
    # The new software writes and reads as usual.
    run = new_run(store)
    assert run_rows.latest_run(store, "s", statuses=("running",))["writer_pid"] == os.getpid()
    assert [s.name for s in run_rows.list_sessions(store)] == ["old", "s"] and run == 2
    store.close()
    # The old file is kept as it was, owner-only.
    backup = tmp_path / "old.db.v1.bak"
    assert backup.stat().st_mode & 0o777 == 0o600
    old = sqlite3.connect(backup)
    assert old.execute("SELECT value FROM meta").fetchall() == [("1",)]
    assert "writer_pid" not in columns(old, "runs")
    assert old.execute("SELECT count(*) FROM window_features").fetchone() == (2,)
    old.close()
    # Opening again changes nothing and copies nothing.
    Store.open(f"sqlite:///{path}").close()
    assert sorted(p.name for p in tmp_path.iterdir() if ".bak" in p.name) == ["old.db.v1.bak"]


def test_read_only_open_of_a_v1_database_changes_nothing(tmp_path):
    path = tmp_path / "old.db"
    make_v1_database(path)
    store = Store.open(f"sqlite:///{path}", create=False, read_only=True)
    assert [s.name for s in run_rows.list_sessions(store)] == ["old"]
    with pytest.raises(StoreError, match="not writable"):
        run_rows.session_id(store, "new")
    store.close()
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT value FROM meta").fetchall() == [("1",)] and "writer_pid" not in columns(raw, "runs")
    raw.close()
    assert not list(tmp_path.glob("*.bak"))


def test_older_database_gains_missing_columns_on_both_backends(db_url):
    store = Store.open(db_url)
    with store.transaction() as conn:
        conn.exec_driver_sql("ALTER TABLE runs DROP COLUMN writer_pid")
        conn.exec_driver_sql("ALTER TABLE runs DROP COLUMN writer_host")
        conn.execute(update(schema.meta).where(schema.meta.c.key == "schema_version").values(value="1"))
    store.close()
    store = Store.open(db_url)
    new_run(store)
    row = run_rows.latest_run(store, "s", statuses=("running",))
    assert row["writer_pid"] == os.getpid() and row["writer_host"]
    store.close()


def test_another_programs_database_is_refused_untouched(tmp_path):
    path = tmp_path / "contacts.db"
    before = another_programs_database(path)
    for kwargs in ({}, {"create": False}, {"read_only": True}):
        with pytest.raises(StoreError, match="another program's database .*contacts.*untouched"):
            Store.open(f"sqlite:///{path}", **kwargs)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["contacts.db"]  # no -wal, no backup


# -- runs whose writer is gone --------------------------------------------------------------------


def dead_pid() -> int:
    """The pid of a process that has ended (and been collected)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_dead_runs_by_pid_on_this_host_and_by_heartbeat_elsewhere(db_url):
    store = Store.open(db_url)
    alive, gone, remote_fresh, remote_stale, unknown = (new_run(store) for _ in range(5))
    old = utcnow() - timedelta(seconds=STALE_AFTER_S + 5)
    with store.transaction() as conn:
        runs = schema.runs
        conn.execute(update(runs).where(runs.c.id == gone).values(writer_pid=dead_pid()))
        conn.execute(update(runs).where(runs.c.id == remote_fresh).values(writer_host="elsewhere", writer_pid=dead_pid()))
        conn.execute(
            update(runs).where(runs.c.id == remote_stale).values(writer_host="elsewhere", writer_pid=os.getpid(), heartbeat_at=old)
        )
        conn.execute(update(runs).where(runs.c.id == unknown).values(writer_host=None, writer_pid=None, heartbeat_at=old))
        # An old heartbeat on this host means nothing while the writer lives (a long stall).
        conn.execute(update(runs).where(runs.c.id == alive).values(heartbeat_at=old))
    dead = {run.id: run.reason for run in run_rows.dead_runs(store)}
    assert set(dead) == {gone, remote_stale, unknown}
    assert dead[gone] == "its process has ended" and dead[remote_stale].startswith("no heartbeat for")
    store.close()


def test_a_reaped_run_takes_no_more_writes(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'r.db'}")
    run = new_run(store)
    assert run_rows.abandon_run(store, run, status="interrupted", error="reaped")
    assert not run_rows.abandon_run(store, run, status="failed", error="again")  # only a running run changes
    assert not run_rows.touch_run(store, run)
    with pytest.raises(RunGone):
        with store.transaction() as conn:
            run_rows.heartbeat(conn, run, 1, 1, 1)
    with pytest.raises(RunGone):
        run_rows.finish_run(store, run, frames_read=1, frames_analysed=1, seconds=1)
    assert run_rows.latest_run(store, "s", statuses=("interrupted",))["error"] == "reaped"


def test_session_names_must_fit_their_column(tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'r.db'}")
    run_rows.session_id(store, "x" * 200)
    for bad in ("x" * 201, "", "   "):
        with pytest.raises(ConfigError, match="session name"):
            run_rows.session_id(store, bad)


def test_an_exhausted_connection_pool_is_a_busy_store_not_a_crash(tmp_path, monkeypatch):
    """A server with many live streams may find every pooled connection in use: callers that
    ride out a busy database (live runs keep the second buffered) must see a StoreError."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    store = Store.open(f"sqlite:///{tmp_path / 'p.db'}")

    def exhausted():
        raise PoolTimeout("QueuePool limit of size 5 overflow 10 reached")

    monkeypatch.setattr(store.engine, "begin", exhausted)
    with pytest.raises(StoreError, match="stayed in use"):
        with store.transaction():
            pass
