"""Schema migrations on alembic: one revision per schema version, in a line; a new database is
stamped at the head; a database from before the migrations gains what its version declares."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from sqlalchemy import create_engine, func, inspect, insert, select, text
from sqlalchemy.engine import make_url

from engagement.core import migrations, schema
from engagement.core.store import Store

JAKARTA = timezone(timedelta(hours=7))
NOON_UTC = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)


def test_one_revision_per_schema_version_in_a_line():
    script = migrations.scripts()
    assert script.get_current_head() == migrations.HEAD == f"v{schema.SCHEMA_VERSION}"
    chain = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert chain == [f"v{n}" for n in range(1, schema.SCHEMA_VERSION + 1)]


def test_new_database_has_every_declared_index_and_the_head_stamp(db_url):
    store = Store.open(db_url)
    with store.engine.connect() as conn:
        assert migrations.stamped_revision(conn) == migrations.HEAD
        inspector = inspect(conn)
        for table in schema.metadata.sorted_tables:
            have = {i["name"] for i in inspector.get_indexes(table.name)}
            assert {i.name for i in table.indexes} <= have, table.name
    store.close()


def test_stamp_is_read_as_alembic_reads_it(db_url):
    """The store reads alembic's stamp with plain SQL (so that opening a database needs no
    alembic); it must name what alembic names: the head, no stamp, an empty stamp table."""
    from alembic.runtime.migration import MigrationContext

    store = Store.open(db_url)
    with store.engine.begin() as conn:
        assert migrations.stamped_revision(conn) == MigrationContext.configure(conn).get_current_revision() == migrations.HEAD
        conn.execute(text(f"DELETE FROM {migrations.VERSION_TABLE}"))
        assert migrations.stamped_revision(conn) is MigrationContext.configure(conn).get_current_revision() is None
        conn.execute(text(f"DROP TABLE {migrations.VERSION_TABLE}"))
        assert migrations.stamped_revision(conn) is MigrationContext.configure(conn).get_current_revision() is None
    store.close()


def test_opening_an_up_to_date_database_imports_no_alembic(tmp_path):
    """Every command opens the store; alembic is for upgrades only (start-up time)."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    Store.open(url).close()
    probe = (
        "import sys; from engagement.core.store import Store; Store.open(sys.argv[1]).close(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))"
    )
    done = subprocess.run([sys.executable, "-c", probe, url], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_v2_file_of_an_older_release_gains_the_dashboard_indexes_and_the_v3_columns(tmp_path):
    """Older releases made v2 files without alembic's stamp, and the dashboard made its indexes
    itself (the first timeline index without the attention columns). Such a file is upgraded
    through v2 (the indexes) and v3 (the blendshape columns), after a copy."""
    path = tmp_path / "r.db"
    Store.open(f"sqlite:///{path}").close()
    raw = sqlite3.connect(path)
    raw.execute("DROP TABLE alembic_version")
    for index in schema.DASHBOARD_INDEXES:
        raw.execute(f"DROP INDEX {index.name}")
    raw.execute("CREATE INDEX ix_dash_timeline_cover ON class_timeline (run_id, second, score)")
    for (column,) in raw.execute("SELECT name FROM pragma_table_info('window_features') WHERE name LIKE 'bs_%'").fetchall():
        raw.execute(f"ALTER TABLE window_features DROP COLUMN {column}")
    raw.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    raw.commit()
    raw.close()
    store = Store.open(f"sqlite:///{path}")
    with store.engine.connect() as conn:
        inspector = inspect(conn)
        have = {i["name"] for i in inspector.get_indexes("class_timeline")}
        columns = {c["name"] for c in inspector.get_columns("window_features")}
        assert migrations.stamped_revision(conn) == migrations.HEAD
    assert "ix_dash_timeline_cover2" in have and "ix_dash_timeline_cover" not in have
    assert {"bs_eyeBlinkLeft", "bs_mouthSmileRight"} <= columns
    assert [p.name for p in tmp_path.glob("*.bak")] == ["r.db.v2.bak"]
    store.close()


def _reopened_as(tmp_path, version: int, statements: list[str]) -> Store:
    """A new database turned back into one of schema `version` by `statements` (what that version
    lacked), stamped as such, then opened (upgraded) again."""
    path = tmp_path / "r.db"
    Store.open(f"sqlite:///{path}").close()
    raw = sqlite3.connect(path)
    for statement in statements:
        raw.execute(statement)
    raw.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
    raw.execute("UPDATE alembic_version SET version_num = ?", (f"v{version}",))
    raw.commit()
    raw.close()
    return Store.open(f"sqlite:///{path}")


def test_v3_file_gains_the_fatigue_columns(tmp_path):
    """A database of the release before the fatigue signals opens upgraded: the new columns are
    there, nullable (older runs read as not measured)."""
    fatigue = {"window_features": ("yawn", "perclos", "long_closures", "blink_rate", "blink_ms", "smile"),
               "class_timeline": ("n_seen", "n_yawns", "perclos_share", "smile_share")}  # fmt: skip
    drops = [f"ALTER TABLE {table} DROP COLUMN {column}" for table, columns in fatigue.items() for column in columns]
    store = _reopened_as(tmp_path, 3, drops)
    with store.engine.connect() as conn:
        inspector = inspect(conn)
        for table, columns in fatigue.items():
            assert set(columns) <= {c["name"] for c in inspector.get_columns(table)}
        assert migrations.stamped_revision(conn) == migrations.HEAD
    store.close()


def test_v4_file_gains_the_estimates_covering_index(tmp_path):
    """A database of the release before the researcher's score index opens with it (the sampled
    per-person scores behind the intervals read it instead of one table page per sample)."""
    store = _reopened_as(tmp_path, 4, ["DROP INDEX ix_dash_estimates_score"])
    with store.engine.connect() as conn:
        assert "ix_dash_estimates_score" in {i["name"] for i in inspect(conn).get_indexes("engagement_estimates")}
        assert migrations.stamped_revision(conn) == migrations.HEAD
    store.close()


def test_v5_file_gains_the_agenda_title_map(tmp_path):
    """A database of the release before the researcher's title mapping opens with its table."""
    store = _reopened_as(tmp_path, 5, ["DROP TABLE agenda_title_map"])
    with store.engine.connect() as conn:
        assert inspect(conn).has_table("agenda_title_map")
        assert migrations.stamped_revision(conn) == migrations.HEAD
    store.close()


def test_time_columns_bind_and_return_aware_utc(db_url):
    """Whatever zone a time is given in, the same instant is stored, compared and read back as
    aware UTC, also where PostgreSQL's session time zone is Asia/Jakarta."""
    if db_url.startswith("postgresql"):
        admin = create_engine(db_url)
        with admin.begin() as conn:
            conn.execute(text(f"ALTER DATABASE {make_url(db_url).database} SET timezone TO 'Asia/Jakarta'"))
        admin.dispose()
    store = Store.open(db_url)
    s = schema.sessions
    with store.transaction() as conn:
        conn.execute(insert(s).values(name="jkt", created_at=NOON_UTC.astimezone(JAKARTA)))
        conn.execute(insert(s).values(name="naive", created_at=NOON_UTC.replace(tzinfo=None)))  # taken as UTC
        rows = conn.execute(select(s.c.created_at).order_by(s.c.id)).scalars().all()
        at_noon = conn.execute(select(func.count()).where(s.c.created_at == NOON_UTC.astimezone(JAKARTA))).scalar_one()
        if conn.dialect.name == "sqlite":
            stored = conn.exec_driver_sql("SELECT created_at FROM sessions").scalars().all()
            assert stored == ["2026-06-01 12:00:00.000000"] * 2
    store.close()
    assert rows == [NOON_UTC, NOON_UTC] and all(r.tzinfo == timezone.utc for r in rows)
    assert at_noon == 2
