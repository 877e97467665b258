"""The dashboard's read queries give the same answers on PostgreSQL as on SQLite.

One synthetic database (the dashboard generator, SQLite) is copied row by row into a real
PostgreSQL server; every query the pages use runs on both, and the results must agree.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from sqlalchemy import delete, insert, select

from dashboard import queries
from dashboard_support import generator
from engagement.core import schema

pytestmark = pytest.mark.postgres

JAKARTA = ZoneInfo("Asia/Jakarta")


def _copy(source_url: str, target_url: str) -> None:
    source, target = queries.open_store(source_url), queries.open_store(target_url)
    try:
        with source.engine.connect() as src, target.engine.begin() as dst:
            dst.execute(delete(schema.meta))  # the target's own bookkeeping gives way to the copy's
            for table in schema.metadata.sorted_tables:
                rows = [dict(r) for r in src.execute(select(table)).mappings()]
                for i in range(0, len(rows), 5000):
                    dst.execute(insert(table), rows[i : i + 5000])
    finally:
        source.close()
        target.close()


@pytest.fixture(scope="module")
def stores(tmp_path_factory, postgres_server):
    path = tmp_path_factory.mktemp("dash") / "dash.db"
    generator().generate(path, sessions=3, participants=6, seconds=600, estimates=True, seed=3)
    sqlite_url, pg_url = f"sqlite:///{path}", postgres_server.create_database()
    _copy(sqlite_url, pg_url)
    lite, pg = queries.open_store(sqlite_url), queries.open_store(pg_url)
    yield lite, pg
    lite.close()
    pg.close()


def _norm(value):
    """Backend differences that are not differences: aware vs naive UTC, numpy vs Python numbers."""
    if isinstance(value, pd.DataFrame):
        out = value.reset_index(drop=True).copy()
        for col in out.columns:
            if pd.api.types.is_datetime64_any_dtype(out[col]):
                out[col] = pd.to_datetime(out[col], utc=True)
            elif out[col].dtype == object:
                out[col] = out[col].map(_norm)
        return out
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    if hasattr(value, "item"):
        return value.item()
    return value


def _same(a, b) -> None:
    a, b = _norm(a), _norm(b)
    if isinstance(a, pd.DataFrame):
        assert list(a.columns) == list(b.columns)
        pd.testing.assert_frame_equal(a, b, check_dtype=False, check_exact=False, atol=1e-9, rtol=1e-9)
    elif isinstance(a, float) or isinstance(b, float):
        assert (a is None and b is None) or (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, abs=1e-9)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    else:
        assert a == b


def _runs(store) -> list[tuple[int, int]]:
    sessions = queries.list_sessions(store)
    assert len(sessions) == 3
    return [(int(r.id), int(r.run_id)) for r in sessions.itertuples() if r.run_id == r.run_id]


def test_the_sessions_and_runs_agree(stores):
    lite, pg = stores
    _same(queries.list_sessions(lite), queries.list_sessions(pg))
    assert _runs(lite) == _runs(pg)


@pytest.mark.parametrize(
    "query",
    [
        lambda s, sid, rid: queries.class_timeline(s, rid, 10),
        lambda s, sid, rid: queries.class_timeline(s, rid, 1, since=300),
        lambda s, sid, rid: queries.score_band(s, rid, 10),
        lambda s, sid, rid: queries.timeline_points(s, rid),
        lambda s, sid, rid: queries.session_stats(s, rid),
        lambda s, sid, rid: queries.attention_distribution(s, rid),
        lambda s, sid, rid: queries.level_distribution(s, rid),
        lambda s, sid, rid: queries.alerts(s, rid),
        lambda s, sid, rid: queries.individual_lanes(s, rid, 5),
        lambda s, sid, rid: queries.agenda(s, sid),
        lambda s, sid, rid: queries.agenda_scores(s, sid, rid),
        lambda s, sid, rid: queries.run_info(s, rid),
    ],
    ids=["timeline", "timeline-since", "band", "points", "stats", "attention", "levels", "alerts", "lanes",
         "agenda", "agenda-scores", "run-info"],
)
def test_every_facilitator_query_agrees(stores, query):
    lite, pg = stores
    for sid, rid in _runs(lite):
        _same(query(lite, sid, rid), query(pg, sid, rid))


@pytest.mark.parametrize("tz", [timezone.utc, JAKARTA], ids=["utc", "jakarta"])
def test_every_researcher_query_agrees(stores, tz):
    lite, pg = stores
    f = queries.Filters(tz=tz)
    trends = queries.trends(lite, f)
    _same(trends, queries.trends(pg, f))
    _same(queries.agenda_sessions(lite, f), queries.agenda_sessions(pg, f))
    for field in ("score", "on_screen_share"):
        _same(queries.person_means(lite, f, trends, field), queries.person_means(pg, f, trends, field))
    _same(queries.score_histogram(lite, f), queries.score_histogram(pg, f))
    _same(queries.filter_options(lite, tz), queries.filter_options(pg, tz))


def test_every_privacy_officer_query_agrees(stores):
    lite, pg = stores
    _same(queries.audit_actors(lite), queries.audit_actors(pg))
    _same(queries.audit_log(lite, queries.AuditFilter(), JAKARTA), queries.audit_log(pg, queries.AuditFilter(), JAKARTA))
    _same(queries.purge_receipts(lite), queries.purge_receipts(pg))
