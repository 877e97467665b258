"""The store on both backends: the same schema, a run written and read back."""

from __future__ import annotations

from sqlalchemy import text

from engagement.core.repositories import runs as run_rows
from engagement.core.store import Store


def test_store_creates_schema_and_round_trips_a_session(db_url):
    store = Store.open(db_url)
    try:
        sid = run_rows.session_id(store, "Kelas A", cohort="angkatan-1")
        assert run_rows.session_id(store, "Kelas A", create=False) == sid
        with store.engine.connect() as conn:
            assert conn.execute(text("select count(*) from sessions")).scalar_one() == 1
    finally:
        store.close()
