"""The results database: schema version, clear errors, runs that are whole or marked."""

import sqlite3

import pytest
from sqlalchemy import func, select, update

from engagement import schema
from engagement.errors import StoreError
from engagement.records import FEATURE_NAMES, WindowFeatures
from engagement.store import Store, safe_url, utcnow


def window(second: int) -> WindowFeatures:
    values = (0.1,) * len(FEATURE_NAMES)
    return WindowFeatures(1, second, 10, 10, 0, values, values)


def new_run(store: Store) -> int:
    session = store.session_id("s")
    return store.begin_run(
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
        track = store.add_track(conn, run, "T1", "a-x", 0)
        store.write_windows(conn, run, [(track, window(0)), (track, window(1))])
    store.abandon_run(run, status="interrupted", error="stopped by the user")
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
        track = store.add_track(conn, run, "T1", "a-x", 0)
        store.write_windows(conn, run, [(track, window(0)), (track, window(1)), (track, absent)])
        row = conn.execute(select(schema.tracks)).one()
    assert (row.first_second, row.last_second, row.present_seconds) == (0, 2, 2)


def test_password_is_never_shown():
    assert safe_url("postgresql://alice:s3cret@db.example/eng") == "postgresql://alice:***@db.example/eng"
