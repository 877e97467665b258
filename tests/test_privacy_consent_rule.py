"""The one consent rule, "is this consent active at t for this scope?", in its two forms: Python
(`privacy.consent.is_active`, `ConsentRecord.active_at`: the gate, `has_consent`) and SQL
(`active_condition`, `track_consented`: exports, the retention purge). Both must give the table's
answer on every case, on SQLite and on PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from engagement.core import schema
from engagement.core.repositories import runs as run_rows
from engagement.core.store import Store
from privacy.consent import ConsentRecord, active_condition, has_consent, track_consented

FF, RESEARCH = "facilitator_feedback", "research"
G = datetime(2026, 3, 2, 1, 0, 0, tzinfo=timezone.utc)  # granted, on a whole second
W = G + timedelta(hours=2)  # withdrawn, on a whole second
US = timedelta(microseconds=1)
LONG_AGO = G - timedelta(days=30)

# (record: scope, granted_at, withdrawn_at), asked: (at, scope; None = any scope), expected.
CASES = [
    # active: from the granting moment itself ...
    ((FF, G, None), (G - US, FF), False),
    ((FF, G, None), (G, FF), True),
    ((FF, G, None), (G + US, FF), True),
    ((FF, G, None), (G + timedelta(days=400), None), True),
    # ... up to, not including, the withdrawal
    ((FF, G, W), (W - US, FF), True),
    ((FF, G, W), (W, FF), False),
    ((FF, G, W), (W + US, None), False),
    ((FF, G, W), (G, None), True),
    # withdrawn long ago (ended): never active since
    ((FF, LONG_AGO, LONG_AGO + timedelta(days=1)), (G, FF), False),
    ((FF, LONG_AGO, LONG_AGO + timedelta(days=1)), (LONG_AGO, FF), True),
    # another scope answers only "any scope"
    ((RESEARCH, G, None), (G, FF), False),
    ((RESEARCH, G, None), (G, RESEARCH), True),
    ((RESEARCH, G, None), (G, None), True),
    ((RESEARCH, G, W), (W, RESEARCH), False),
]


@pytest.fixture
def store(db_url):
    s = Store.open(db_url)
    yield s
    s.close()


def _records(store) -> dict[int, ConsentRecord]:
    """One participant record per case, each its own participant; id -> record."""
    ids = []
    with store.transaction() as conn:
        for i, ((scope, granted, withdrawn), _, _) in enumerate(CASES):
            row = conn.execute(insert(schema.consent_records).values(
                kind="participant", cohort="latsar", participant=f"p-case{i}", scope=scope, notice_version="v1",
                language="id", evidence="form", granted_at=granted, withdrawn_at=withdrawn, created_at=LONG_AGO,
            ))
            ids.append(int(row.inserted_primary_key[0]))
        rows = conn.execute(select(schema.consent_records).where(schema.consent_records.c.id.in_(ids))).all()
    by_id = {int(r.id): ConsentRecord.from_row(r) for r in rows}
    return {i: by_id[record_id] for i, record_id in enumerate(ids)}


def test_the_table_of_cases_is_what_the_rule_says():
    """The table itself, through the Python form with no database: so the agreement test below
    cannot pass with both forms wrong in the same way."""
    from privacy.consent import is_active

    for (scope, granted, withdrawn), (at, asked), expected in CASES:
        assert ((asked is None or asked == scope) and is_active(granted, withdrawn, at)) is expected


def test_python_and_sql_forms_agree_on_every_case(store):
    records = _records(store)
    c = schema.consent_records.c
    for i, (_, (at, asked), expected) in enumerate(CASES):
        record = records[i]
        with store.transaction() as conn:
            found = conn.execute(select(c.id).where(c.id == record.id, active_condition(at, asked))).first()
            in_sql = found is not None
        assert record.active_at(at, asked) is expected, (i, CASES[i])
        assert in_sql is expected, (i, CASES[i], "SQL")


def test_track_condition_agrees_with_has_consent_for_participants_and_attestations(store):
    """`track_consented` (SQL, per track) against `has_consent` (Python, per pseudonym), for a
    participant's track and for an attested track of a session whose attestation is withdrawn."""
    records = _records(store)
    session_id = run_rows.session_id(store, "sesi-1", cohort="latsar")
    run_id = run_rows.begin_run(store, session_id, mode="file", source="x.mp4", software_version="t", profile="id-pdp",
                                config={}, config_hash="0", models={})
    with store.transaction() as conn:
        conn.execute(insert(schema.consent_records).values(
            kind="attestation", cohort="latsar", session_name="sesi-1", scope=FF, notice_version="v1",
            language="id", evidence="form", granted_at=G, withdrawn_at=W, created_at=LONG_AGO,
        ))
        tracks = {run_rows.add_track(conn, run_id, f"t{i}", records[i].participant, 0): records[i].participant
                  for i in range(len(CASES))}
        tracks[run_rows.add_track(conn, run_id, "ta", "a-attested", 0)] = "a-attested"
        tracks[run_rows.add_track(conn, run_id, "tn", None, 0)] = None
    t = schema.tracks
    moments = sorted({at for _, (at, _), _ in CASES})
    checked = 0
    for at in moments:
        for asked in (None, FF, RESEARCH):
            with store.transaction() as conn:
                in_sql = {int(r[0]) for r in conn.execute(select(t.c.id).where(track_consented(asked, at)))}
            for track_id, pseudonym in tracks.items():
                in_python = pseudonym is not None and (
                    has_consent(store, pseudonym, asked, at) if asked else
                    any(has_consent(store, pseudonym, s, at) for s in (FF, RESEARCH)))
                assert (track_id in in_sql) is in_python, (pseudonym, at, asked)
                checked += in_python
    assert checked > 0  # some tracks were consented somewhere in the table
