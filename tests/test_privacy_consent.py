"""Consent records, rosters and the consent gate, at the gate + store level.

The pipeline-level behaviour ("no consent -> no rows", "withdrawal mid-session") is simulated
here exactly as engagement.app.pipeline does it: ask the gate for every face, write windows through
Store.write_windows only for admitted faces, call gate.sweep in every write transaction.
An end-to-end run through engagement.app.pipeline is in test_privacy_pipeline.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from engagement.core import schema
from engagement.core.records import FEATURE_NAMES, WindowFeatures
from engagement.core.repositories import runs as run_rows
from engagement.core.store import Store
from privacy import consent
from privacy.audit import AuditLog
from privacy.errors import ConsentError
from privacy.gate import ConsentGate
from privacy.pseudonym import KeyRing
from privacy.roster import import_roster, load_roster, parse_roster

T0 = datetime(2026, 3, 2, 1, 0, 0, tzinfo=timezone.utc)
SIZE = (1280, 720)
LEFT = (100.0, 100.0, 300.0, 300.0)  # centre in the top-left tile of a 2x2 grid
RIGHT = (800.0, 100.0, 1000.0, 300.0)  # top-right tile


@pytest.fixture
def store(isolated_data_dir):
    s = Store.open(f"sqlite:///{isolated_data_dir / 'test.db'}")
    yield s
    s.close()


def grant(store, who="siti@example.go.id", cohort="latsar", at=T0 - timedelta(days=1), scopes=None):
    return consent.grant(store, who, cohort=cohort, scopes=scopes, notice_version="v1", language="id",
                         evidence="form-001", at=at, actor="test")


def window(track: int, second: int) -> WindowFeatures:
    n = len(FEATURE_NAMES)
    return WindowFeatures(track, second, 10, 10, 0, (0.1,) * n, (0.01,) * n)


class FakeRun:
    """What the pipeline does with the gate, minus the vision: one face per track per second."""

    def __init__(self, store, session="sesi-1", cohort="latsar"):
        self.store = store
        self.session_id = run_rows.session_id(store, session, cohort=cohort)
        self.run_id = run_rows.begin_run(store, self.session_id, mode="file", source="x.mp4", software_version="t",
                                         profile="id-pdp", config={}, config_hash="0", models={})
        self.track_db: dict[str, int] = {}

    def second(self, gate: ConsentGate, s: int, faces: dict[str, tuple]) -> dict[str, str | None]:
        decided = {label: gate.participant_for(label, bbox, SIZE, s * 1000.0 + 500.0) for label, bbox in faces.items()}
        with self.store.transaction() as conn:
            gone = gate.sweep(conn, self.run_id)
            for label in list(self.track_db):
                if decided.get(label) in gone:
                    del self.track_db[label]
            rows = []
            for label, participant in decided.items():
                if participant is None or participant in gone:
                    continue
                if label not in self.track_db:
                    self.track_db[label] = run_rows.add_track(conn, self.run_id, label, participant, s)
                rows.append((self.track_db[label], window(int(label[1:]), s)))
            run_rows.write_windows(conn, self.run_id, rows)
        return decided


def rows_of(store, pseudonym=None) -> int:
    t, w = schema.tracks, schema.window_features
    q = select(func.count()).select_from(w.join(t, t.c.id == w.c.track_id))
    if pseudonym:
        q = q.where(t.c.participant == pseudonym)
    with store.transaction() as conn:
        return int(conn.execute(q).scalar_one())


def counts(store) -> tuple[int, int]:
    with store.transaction() as conn:
        return (conn.execute(select(func.count()).select_from(schema.consent_records)).scalar_one(),
                conn.execute(select(func.count()).select_from(schema.audit_log)).scalar_one())


# -- records ------------------------------------------------------------------------------------


def test_grant_stores_pseudonym_only(store):
    recs = grant(store, scopes=["facilitator_feedback", "research"])
    assert {r.scope for r in recs} == {"facilitator_feedback", "research"}
    assert recs[0].participant.startswith("p-") and len(recs[0].participant) == 42
    with store.transaction() as conn:
        text = " ".join(str(v) for row in conn.execute(select(schema.consent_records)) for v in row)
        text += " ".join(str(v) for row in conn.execute(select(schema.audit_log)) for v in row)
    assert "siti" not in text.lower()
    # Granting again keeps the one active record.
    assert [r.id for r in grant(store)] == [recs[0].id]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"language": "fr"}, "notice language"),
        ({"evidence": "  "}, "evidence reference is missing"),
        ({"scopes": ["marketing"]}, "unknown consent scope"),
        ({"notice_version": ""}, "notice version is missing"),
        ({"at": "2026-02-30"}, "not a date"),
        ({"cohort": "../etc"}, "cohort name"),
    ],
)
def test_malformed_consent_changes_nothing(store, kwargs, message):
    grant(store)
    before = counts(store)
    args = dict(cohort="latsar", scopes=None, notice_version="v1", language="id", evidence="form-9")
    args.update(kwargs)
    with pytest.raises(Exception) as info:
        consent.grant(store, "budi@example.go.id", **args)
    assert message in str(info.value)
    assert counts(store) == before


def test_roster_import_is_all_or_nothing(store, tmp_path):
    bad = tmp_path / "roster.toml"
    bad.write_text(
        'cohort = "latsar"\nnotice_version = "v1"\nlanguage = "id"\nevidence = "forms"\ngrid = "2x2"\n'
        '[[participants]]\nidentity = "a@x.id"\ntile = "1,1"\n'
        '[[participants]]\nidentity = "b@x.id"\ntile = "3,1"\n'
    )
    before = counts(store)
    with pytest.raises(ConsentError, match="participant 2: tile 3,1 is outside the 2x2 grid"):
        import_roster(store, load_roster(bad))
    assert counts(store) == before
    for text, msg in [
        ("cohort = [", "not valid TOML"),
        ('[[participants]]\nidentity = "a"\nfoo = 1\n', "unknown field"),
        ('[[participants]]\nidentity = "a"\n[[participants]]\nidentity = "A "\n', "same identity appears twice"),
        ('[[participants]]\nidentity = "a"\nscopes = ["research", "ads"]\n', "unknown consent scope"),
    ]:
        bad.write_text(text)
        with pytest.raises(ConsentError, match=msg):
            load_roster(bad)
    csv = tmp_path / "roster.csv"
    csv.write_text("identity,scopes,tile\na@x.id,facilitator_feedback,1;1\nb@x.id,research;facilitator_feedback,1;2\n")
    roster = load_roster(csv, grid="2x2")
    n = import_roster(store, roster, cohort="latsar", notice_version="v2", language="en", evidence="forms")
    assert n == 3
    # An entry missing its notice version (no default given) fails before anything is written.
    before = counts(store)
    with pytest.raises(ConsentError, match="notice version"):
        import_roster(store, load_roster(csv, grid="2x2"), cohort="other", language="en", evidence="x")
    assert counts(store) == before


# -- the gate -----------------------------------------------------------------------------------


def test_no_consent_no_rows(store):
    """Default deny: of two faces only the consenting participant's gets rows."""
    siti = grant(store)[0].participant
    roster = parse_roster({"grid": "2x2", "participants": [
        {"identity": "siti@example.go.id", "tile": "1,1"},
        {"identity": "budi@example.go.id", "tile": "1,2"},  # on the roster but never consented
    ]})
    run = FakeRun(store)
    gate = ConsentGate.for_session(store, "sesi-1", at=T0, roster=roster)
    for s in range(5):
        decided = run.second(gate, s, {"T1": LEFT, "T2": RIGHT, "T3": (600.0, 500.0, 700.0, 600.0)})
        assert decided == {"T1": siti, "T2": None, "T3": None}
    assert rows_of(store) == rows_of(store, siti) == 5
    with store.transaction() as conn:
        parts = [r[0] for r in conn.execute(select(schema.tracks.c.participant))]
    assert parts == [siti]


def test_consent_granted_after_the_moment_does_not_count(store):
    grant(store, at=T0 + timedelta(seconds=3))
    gate = ConsentGate.for_session(store, "sesi-1", at=T0, cohort="latsar", device_participant="siti@example.go.id")
    assert gate.participant_for("T1", LEFT, SIZE, 2999.0) is None
    assert gate.participant_for("T1", LEFT, SIZE, 3000.0) is not None


def test_device_participant_binds_one_face(store):
    siti = grant(store)[0].participant
    gate = ConsentGate.for_session(store, "sesi-1", at=T0, cohort="latsar", device_participant="Siti@Example.go.id ")
    assert gate.participant_for("T1", LEFT, SIZE, 0.0) == siti
    # Someone behind the participant, at the same time: not the device owner, denied.
    assert gate.participant_for("T2", RIGHT, SIZE, 40.0) is None
    assert gate.participant_for("T1", LEFT, SIZE, 80.0) == siti
    # T1 lost for longer than hold_ms: a new track of the same person takes over.
    assert gate.participant_for("T3", LEFT, SIZE, 5000.0) == siti


def test_attestation_covers_session_tracks(store):
    gate = ConsentGate.for_session(store, "sesi-1", at=T0)
    assert gate.participant_for("T1", LEFT, SIZE, 0.0) is None
    recs = consent.attest(store, "sesi-1", facilitator="fasil@example.go.id", notice_version="v1", language="id",
                          evidence="lembar hadir", at=T0 - timedelta(hours=1))
    assert recs[0].kind == "attestation" and recs[0].attested_by.startswith("p-")
    gate.refresh()
    a1 = gate.participant_for("T1", LEFT, SIZE, 0.0)
    assert a1.startswith("a-")
    assert gate.participant_for("T1", LEFT, SIZE, 100.0) == a1
    assert gate.participant_for("T2", RIGHT, SIZE, 100.0) not in (None, a1)
    # The same label in another session is an unrelated pseudonym.
    consent.attest(store, "sesi-2", facilitator="fasil@example.go.id", notice_version="v1", language="id",
                   evidence="lembar hadir", at=T0 - timedelta(hours=1))
    other = ConsentGate.for_session(store, "sesi-2", at=T0)
    assert other.participant_for("T1", LEFT, SIZE, 0.0) not in (None, a1)


def test_withdrawal_mid_session_stops_rows_and_purges(store):
    siti = grant(store)[0].participant
    budi = grant(store, "budi@example.go.id")[0].participant
    roster = parse_roster({"grid": "2x2", "participants": [
        {"identity": "siti@example.go.id", "tile": "1,1"}, {"identity": "budi@example.go.id", "tile": "1,2"}]})
    run = FakeRun(store)
    gate = ConsentGate.for_session(store, "sesi-1", at=T0, roster=roster, refresh_s=3600)
    for s in range(5):
        run.second(gate, s, {"T1": LEFT, "T2": RIGHT})
    assert rows_of(store, siti) == 5
    # Siti withdraws at second 5 of the run (wall-clock T0 + 5 s).
    result = consent.withdraw(store, "siti@example.go.id", cohort="latsar", at=T0 + timedelta(seconds=5), actor="test")
    assert result.receipt["counts"]["window_features"] == 5
    assert rows_of(store, siti) == 0  # earlier rows purged at once
    # The gate has not re-read consent yet (stale cache): sweep, run in the write transaction,
    # re-reads it and stops the write.
    run.second(gate, 5, {"T1": LEFT, "T2": RIGHT})
    gate.refresh()
    for s in range(6, 9):
        decided = run.second(gate, s, {"T1": LEFT, "T2": RIGHT})
        assert decided["T1"] is None and decided["T2"] == budi
    assert rows_of(store, siti) == 0
    assert rows_of(store, budi) == 9
    # The moment of withdrawal is exact: 4.999 s still consented, 5.0 s not.
    assert gate.allowed(siti, 4999.0) and not gate.allowed(siti, 5000.0)
    assert consent.has_consent(store, budi) and not consent.has_consent(store, siti)
    actions = [e.action for e in AuditLog(store).entries()]
    assert "consent_withdrawn" in actions


def test_withdrawing_one_scope_keeps_data(store):
    siti = grant(store, scopes=["facilitator_feedback", "research"])[0].participant
    run = FakeRun(store)
    gate = ConsentGate.for_session(store, "sesi-1", at=T0, cohort="latsar", device_participant="siti@example.go.id")
    run.second(gate, 0, {"T1": LEFT})
    result = consent.withdraw(store, "siti@example.go.id", cohort="latsar", scopes=["research"])
    assert result.receipt is None and rows_of(store, siti) == 1
    assert consent.has_consent(store, siti, "facilitator_feedback")
    assert not consent.has_consent(store, siti, "research")
    with pytest.raises(ConsentError, match="no active consent"):
        consent.withdraw(store, "siti@example.go.id", cohort="latsar", scopes=["research"])


def test_attestation_withdrawal_purges_attested_tracks(store):
    consent.attest(store, "sesi-1", facilitator="f", notice_version="v1", language="en", evidence="e",
                   at=T0 - timedelta(hours=1))
    run = FakeRun(store)
    gate = ConsentGate.for_session(store, "sesi-1", at=T0)
    for s in range(3):
        run.second(gate, s, {"T1": LEFT, "T2": RIGHT})
    assert rows_of(store) == 6
    consent.withdraw_attestation(store, "sesi-1", at=T0 + timedelta(seconds=3))
    assert rows_of(store) == 0
    gate.refresh()
    assert gate.participant_for("T1", LEFT, SIZE, 3000.0) is None
    assert gate.participant_for("T1", LEFT, SIZE, 2999.0) is not None


def test_key_destruction_makes_consent_unlinkable(store):
    siti = grant(store)[0].participant
    KeyRing(store).destroy("latsar")
    gate = ConsentGate.for_session(store, "sesi-1", at=T0, cohort="latsar", device_participant="siti@example.go.id")
    assert gate.device_participant != siti
    assert gate.participant_for("T1", LEFT, SIZE, 0.0) is None  # must consent again
