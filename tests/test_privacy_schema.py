"""The database holds no image bytes: every column of every table, and every stored value."""

from __future__ import annotations

from sqlalchemy import LargeBinary, PickleType, inspect, select
from sqlalchemy.types import _Binary

from engagement.core import schema
from engagement.core.store import Store


def _is_binary(col_type) -> bool:
    if isinstance(col_type, (_Binary, LargeBinary, PickleType)):
        return True
    try:
        return col_type.python_type in (bytes, bytearray, memoryview)
    except NotImplementedError:
        return True  # unknown type: treat as suspect


def test_no_binary_column_declared():
    offenders = [f"{t.name}.{c.name}" for t in schema.metadata.sorted_tables for c in t.columns if _is_binary(c.type)]
    assert offenders == []
    names = set(schema.metadata.tables)
    assert {"consent_records", "audit_log", "audit_checkpoint", "purge_receipts", "cohort_key_events"} <= names


def test_no_binary_column_or_value_in_a_live_database(isolated_data_dir):
    from privacy import consent
    from privacy.retention import load_policy, purge

    store = Store.open(f"sqlite:///{isolated_data_dir / 'x.db'}")
    consent.grant(store, "a@x.id", cohort="c", notice_version="v1", language="en", evidence="e")
    purge(store, load_policy())
    insp = inspect(store.engine)
    for table in insp.get_table_names():
        for col in insp.get_columns(table):
            assert "BLOB" not in str(col["type"]).upper() and "BINARY" not in str(col["type"]).upper(), (table, col)
    with store.transaction() as conn:
        for table in schema.metadata.sorted_tables:
            for row in conn.execute(select(table)):
                assert not any(isinstance(v, (bytes, bytearray, memoryview)) for v in row), table.name
            # SQLite is typeless per value: ask it directly for any blob stored in any column.
            for col in table.columns:
                n = conn.exec_driver_sql(f'SELECT count(*) FROM "{table.name}" WHERE typeof("{col.name}") = \'blob\'').scalar()
                assert n == 0, f"{table.name}.{col.name}"
    store.close()
