"""Retention policy and purge: exact period edges, receipts, dry runs, bad policy files."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select, update

from engagement.core import schema
from engagement.core.repositories import runs as run_rows
from engagement.core.store import Store
from engagement.core.time import as_utc
from privacy import consent
from privacy.audit import AuditAction, AuditLog
from privacy.errors import PolicyError
from privacy.retention import DEFAULT_PERIODS, load_policy, policy_path, purge
from privacy.roster import import_roster, parse_roster


NOW = datetime(2026, 6, 1, 12, 0, 0, tzinfo=timezone.utc)
US = timedelta(microseconds=1)


@pytest.fixture
def store(isolated_data_dir):
    s = Store.open(f"sqlite:///{isolated_data_dir / 'test.db'}")
    yield s
    s.close()


def setup_run(store, started: datetime) -> tuple[int, int, str]:
    pseud = consent.grant(store, "siti@x.id", cohort="c1", notice_version="v1", language="id", evidence="f",
                          at=started - timedelta(days=1))[0].participant
    sid = run_rows.session_id(store, "s1", cohort="c1")
    run = run_rows.begin_run(store, sid, mode="file", source="a.mp4", software_version="t", profile="id-pdp", config={},
                             config_hash="0", models={})
    with store.transaction() as conn:
        conn.execute(update(schema.runs).where(schema.runs.c.id == run).values(started_at=started, status="complete"))
        track = run_rows.add_track(conn, run, "T1", pseud, 0)
    return run, track, pseud


def add_rows(store, run: int, track: int, second: int, created: datetime) -> None:
    # Written aware, as engagement.core.store writes every row.
    assert created.tzinfo is not None
    with store.transaction() as conn:
        conn.execute(insert(schema.window_features).values(
            run_id=run, track_id=track, second=second, created_at=created, n_frames=1, n_face=1,
            present_ratio=1.0, blinks=0))
        conn.execute(insert(schema.engagement_estimates).values(
            run_id=run, track_id=track, second=second, created_at=created, state="present"))
        conn.execute(insert(schema.class_timeline).values(
            run_id=run, second=second, created_at=created, n_present=1, n_tracked=1, suppressed=1))


def count(store, table) -> int:
    with store.transaction() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_defaults_without_file():
    policy = load_policy()
    assert policy.periods == DEFAULT_PERIODS and policy.raw_frames == "never" and policy.profile == "id-pdp"


def test_purge_boundaries_exact(store):
    policy = load_policy()
    feat, tl, agg = (DEFAULT_PERIODS[k] for k in ("features", "timelines", "aggregates"))
    run, track, _ = setup_run(store, NOW - agg - timedelta(days=1))
    add_rows(store, run, track, 0, NOW - feat)  # exactly at the features edge: kept
    add_rows(store, run, track, 1, NOW - feat - US)  # one microsecond past: features deleted
    add_rows(store, run, track, 2, NOW - tl - US)  # past timelines too
    add_rows(store, run, track, 3, NOW - agg)  # aggregates edge: class row kept
    add_rows(store, run, track, 4, NOW - agg - US)  # everything past
    dry = purge(store, policy, now=NOW, dry_run=True)
    assert (dry.counts["window_features"], dry.counts["engagement_estimates"], dry.counts["class_timeline"]) == (4, 3, 1)
    assert count(store, schema.window_features) == 5  # a dry run changes nothing
    assert count(store, schema.purge_receipts) == 0
    receipt = purge(store, policy, now=NOW)
    assert receipt.counts["window_features"] == 4
    assert receipt.counts["engagement_estimates"] == 3
    assert receipt.counts["class_timeline"] == 1
    with store.transaction() as conn:
        assert [r[0] for r in conn.execute(select(schema.window_features.c.second))] == [0]
        assert sorted(r[0] for r in conn.execute(select(schema.engagement_estimates.c.second))) == [0, 1]
        assert sorted(r[0] for r in conn.execute(select(schema.class_timeline.c.second))) == [0, 1, 2, 3]
    # The receipt: table row, JSON file, audit entry, all with the policy hash.
    data = json.loads(receipt.file.read_text())
    assert data["policy_hash"] == policy.hash and data["counts"]["window_features"] == 4
    assert receipt.file.parent.name == "receipts"
    assert count(store, schema.purge_receipts) == 1
    purges = AuditLog(store).entries(action=AuditAction.PURGE)
    assert purges[-1].details["receipt_id"] == receipt.receipt_id
    # Purging again at the same moment deletes nothing more.
    assert purge(store, policy, now=NOW).total == 0


def test_track_goes_when_its_rows_are_gone(store):
    policy = load_policy()
    run, track, _ = setup_run(store, NOW - timedelta(days=400))
    add_rows(store, run, track, 0, NOW - timedelta(days=400))
    receipt = purge(store, policy, now=NOW)
    assert receipt.counts["tracks"] == 1 and receipt.counts["runs"] == 1
    assert count(store, schema.tracks) == 0 and count(store, schema.runs) == 0


def test_purge_enforces_consent(store):
    run, track, pseud = setup_run(store, NOW - timedelta(days=1))
    with store.transaction() as conn:
        run_rows.add_track(conn, run, "T2", None, 0)  # a track nobody consented for
    add_rows(store, run, track, 0, NOW)
    receipt = purge(store, load_policy(), now=NOW)
    assert receipt.counts["unconsented_tracks"] == 1
    # A row written for a participant after their consent ended goes too.
    with store.transaction() as conn:
        conn.execute(update(schema.consent_records).values(withdrawn_at=NOW))
    assert purge(store, load_policy(), now=NOW).counts["unconsented_tracks"] == 1
    assert count(store, schema.window_features) == 0


def test_before_date_and_audit_tier(store, isolated_data_dir):
    run, track, _ = setup_run(store, NOW - timedelta(days=3))
    add_rows(store, run, track, 0, NOW - timedelta(days=3))
    add_rows(store, run, track, 1, NOW - timedelta(hours=1))
    receipt = purge(store, load_policy(), now=NOW, before=NOW - timedelta(days=1))
    assert receipt.counts["window_features"] == 1 and receipt.counts["class_timeline"] == 1
    # Audit tier: a short period removes the oldest entries as a prefix; the chain still verifies.
    policy_file = policy_path()
    policy_file.parent.mkdir(parents=True, exist_ok=True)
    policy_file.write_text('[retention]\naudit = "1d"\n')
    n_before = len(AuditLog(store).entries())
    receipt = purge(store, load_policy(), now=datetime.now(timezone.utc) + timedelta(days=2))
    assert receipt.counts["audit_log"] == n_before
    result = AuditLog(store).verify()
    assert result.ok, result.problems
    # The changed policy was audited, with the old and new hashes.
    assert AuditLog(store).entries(action=AuditAction.POLICY_CHANGE)[-1].details["new_hash"] == load_policy().hash


@pytest.mark.parametrize(
    "text, message",
    [
        ("[retention\nfeatures = 1", "not valid TOML"),
        ('[retention]\nfeatures = "30 days"\n', "not a period"),
        ('[retention]\nfeatures = -1\n', "between 0 and 10 years"),
        ('[retention]\nraw_frames = "7d"\n', "raw_frames must be \"never\""),
        ('[retention]\nfeature = "7d"\n', "unknown retention tier"),
        ('[compliance]\nprofile = "gdpr-lite"\n', "unknown compliance profile"),
        ('[extra]\nx = 1\n', "unknown section"),
    ],
)
def test_malformed_policy_changes_nothing(store, text, message, capsys):
    from engagement.cli.main import main

    run, track, _ = setup_run(store, NOW - timedelta(days=400))
    add_rows(store, run, track, 0, NOW - timedelta(days=400))
    p = policy_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    with pytest.raises(PolicyError, match=message):
        load_policy()
    assert main(["privacy", "purge", "--yes", "--db", store.url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message.split()[0] in err and err.count("\n") == 1
    assert count(store, schema.window_features) == 1 and count(store, schema.purge_receipts) == 0


def test_cli_purge(store, capsys):
    from engagement.cli.main import main

    assert main(["privacy", "purge", "--before", "01/02/2026", "--yes", "--db", store.url]) == 2
    assert "not a date" in capsys.readouterr().err
    assert main(["privacy", "purge", "--dry-run", "--db", store.url]) == 0
    assert json.loads(capsys.readouterr().out)["dry_run"] is True
    assert count(store, schema.purge_receipts) == 0
    assert main(["privacy", "purge", "--yes", "--db", store.url]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["receipt_id"] == 1
    assert main(["privacy", "policy", "show"]) == 0
    assert 'raw_frames = "never"' in capsys.readouterr().out


# -- consent enforcement over many sessions and every consent kind --------------------------------


def _tie(store, session: str, *, cohort="latsar", faces=None, device=None, roster=None, scope="facilitator_feedback"):
    """One analysed second of `session`, exactly as the pipeline ties and stores faces: ask the
    consent gate for each face, store a track (and one window) only for admitted faces."""
    from privacy.gate import ConsentGate

    faces = faces or {"T1": (100.0, 100.0, 300.0, 300.0)}
    sid = run_rows.session_id(store, session, cohort=cohort)
    run = run_rows.begin_run(store, sid, mode="file", source="x.mp4", software_version="t", profile="id-pdp", config={},
                             config_hash="0", models={})
    gate = ConsentGate.for_session(store, session, roster=roster, device_participant=device, scope=scope)
    tied = {}
    with store.transaction() as conn:
        for label, bbox in faces.items():
            pseud = gate.participant_for(label, bbox, (1280, 720), 500.0)
            if pseud is not None:
                tied[label] = run_rows.add_track(conn, run, label, pseud, 0)
                conn.execute(insert(schema.window_features).values(
                    run_id=run, track_id=tied[label], second=0, created_at=datetime.now(timezone.utc),
                    n_frames=1, n_face=1, present_ratio=1.0, blinks=0))
        conn.execute(update(schema.runs).where(schema.runs.c.id == run).values(status="complete"))
    return run, tied


def _late_track(store, run: int, label: str, pseudonym: str | None) -> int:
    """A track written after its consent ended (an in-flight run's last flush, say)."""
    with store.transaction() as conn:
        return run_rows.add_track(conn, run, label, pseudonym, 0)


def _track_ids(store) -> set[int]:
    with store.transaction() as conn:
        return {int(r[0]) for r in conn.execute(select(schema.tracks.c.id))}


@pytest.fixture
def any_store(db_url):
    """The same store on SQLite and on a real PostgreSQL server."""
    s = Store.open(db_url)
    yield s
    s.close()


def test_purge_keeps_every_consented_track_across_sessions(any_store, capsys):
    store = any_store
    from engagement.cli.main import main
    from privacy.pseudonym import KeyRing

    args = dict(notice_version="v1", language="id", evidence="form")
    consented: set[int] = set()
    # Personal consent + analysis of the participant's own device.
    consent.grant(store, "siti@x.id", cohort="latsar", **args)
    run_own, tied = _tie(store, "own-device", device="siti@x.id")
    consented |= set(tied.values())
    # Facilitator attestations, one per session, several tracks each.
    for name in ("hari-1", "hari-2", "hari-3"):
        run_rows.session_id(store, name, cohort="latsar")
        consent.attest(store, name, facilitator="wi@x.id", **args)
        _, tied = _tie(store, name, faces={"T1": (0, 0, 10, 10), "T2": (20, 0, 30, 10)})
        assert len(tied) == 2
        consented |= set(tied.values())
    # Roster import: two participants in a 2x2 gallery.
    roster = parse_roster({"cohort": "latsar", "grid": "2x2", "participants": [
        {"identity": "budi@x.id", "tile": "1,1"}, {"identity": "ani@x.id", "tile": "1,2"}]})
    import_roster(store, roster, **args)
    _, tied = _tie(store, "galeri", roster=roster,
                   faces={"T1": (100.0, 100.0, 300.0, 300.0), "T2": (800.0, 100.0, 1000.0, 300.0)})
    assert len(tied) == 2
    consented |= set(tied.values())
    # Research-only consent (a run under the research scope): still an active consent.
    consent.grant(store, "eko@x.id", cohort="latsar", scopes=["research"], **args)
    _, tied = _tie(store, "riset", device="eko@x.id", scope="research")
    consented |= set(tied.values())
    assert len(consented) == 10

    unconsented: set[int] = set()
    # A withdrawn personal consent: its purge ran, then a late row arrived.
    consent.grant(store, "dewi@x.id", cohort="latsar", **args)
    run_dewi, tied = _tie(store, "dewi-sesi", device="dewi@x.id")
    consent.withdraw(store, "dewi@x.id", cohort="latsar")
    unconsented.add(_late_track(store, run_dewi, "T1", KeyRing(store).pseudonym("dewi@x.id", "latsar")))
    # A withdrawn attestation, while other sessions' attestations stay active.
    run_rows.session_id(store, "hari-4", cohort="latsar")
    consent.attest(store, "hari-4", facilitator="wi@x.id", **args)
    run_h4, tied = _tie(store, "hari-4")
    consent.withdraw_attestation(store, "hari-4")
    unconsented.add(_late_track(store, run_h4, "T1", KeyRing(store).attested_pseudonym("latsar", "hari-4", "T1")))
    # Consent given in another cohort does not cover this cohort's pseudonym.
    consent.grant(store, "fajar@x.id", cohort="lain", **args)
    assert _tie(store, "own-device-2", device="fajar@x.id")[1] == {}
    unconsented.add(_late_track(store, run_own, "T9", KeyRing(store).pseudonym("fajar@x.id", "latsar")))
    # An attested-style pseudonym in a session nobody attested.
    unconsented.add(_late_track(store, run_own, "T8", KeyRing(store).attested_pseudonym("latsar", "own-device", "T8")))
    # No pseudonym at all.
    unconsented.add(_late_track(store, run_own, "T7", None))
    assert _track_ids(store) == consented | unconsented

    assert main(["privacy", "purge", "--dry-run", "--db", store.url]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["unconsented_tracks"] == len(unconsented)
    assert _track_ids(store) == consented | unconsented  # the dry run changed nothing
    assert main(["privacy", "purge", "--yes", "--db", store.url]) == 0
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["counts"]["unconsented_tracks"] == len(unconsented)
    assert _track_ids(store) == consented
    # Purging again (what every analysis start does) takes nothing more.
    assert purge(store, load_policy()).counts["unconsented_tracks"] == 0
    assert _track_ids(store) == consented


# -- times: aware UTC end to end -----------------------------------------------------------------

JAKARTA = timezone(timedelta(hours=7))


def test_as_utc_gives_aware_utc():
    local = datetime(2026, 6, 1, 19, 0, tzinfo=JAKARTA)
    assert as_utc(local) == NOW and as_utc(local).utcoffset() == timedelta(0)
    assert as_utc(datetime(2026, 6, 1, 12, 0)) == NOW  # naive is taken as UTC
    assert as_utc(local).tzinfo is timezone.utc


def test_privacy_code_binds_no_naive_datetime(store):
    """A naive datetime is read by PostgreSQL in the session time zone (Asia/Jakarta: 7 h off), so
    every time the privacy code writes or compares must be bound aware."""
    from sqlalchemy import event

    from privacy.pseudonym import KeyRing
    from privacy.subjects import erase

    naive: list[str] = []

    def check(conn, clause, multiparams, params, options):
        if not hasattr(clause, "compile"):
            return
        values = list(clause.compile(dialect=conn.dialect).params.values())
        for group in (multiparams or ()):
            values += list(group.values()) if isinstance(group, dict) else [v for d in group for v in d.values()]
        values += list((params or {}).values())
        naive.extend(str(clause).split("\n")[0] for v in values if isinstance(v, datetime) and v.tzinfo is None)

    event.listen(store.engine, "before_execute", check)
    run, track, _ = setup_run(store, datetime.now(timezone.utc) - timedelta(days=400))
    add_rows(store, run, track, 0, datetime.now(timezone.utc) - timedelta(days=400))
    consent.attest(store, "s1", facilitator="wi@x.id", notice_version="v1", language="id", evidence="f",
                   at=datetime(2026, 1, 1, 9, 0, tzinfo=JAKARTA))
    purge(store, load_policy(), now=datetime.now(JAKARTA), dry_run=True)
    purge(store, load_policy(), now=datetime.now(JAKARTA), before=datetime(2026, 1, 1, tzinfo=JAKARTA))
    consent.withdraw_attestation(store, "s1")
    erase(store, "siti@x.id", cohort="c1")
    KeyRing(store).destroy("c1")
    event.remove(store.engine, "before_execute", check)
    assert naive == []


def test_cutoffs_are_the_same_instant_in_any_time_zone(store):
    """A cut-off given in Jakarta time deletes exactly what the same instant in UTC does."""
    _check_features_edge(store)


@pytest.mark.postgres
def test_cutoffs_exact_on_postgres_in_a_jakarta_session(pg_url):
    """PostgreSQL reads a naive value in the session's time zone: with Asia/Jakarta a naive UTC
    cut-off would be 7 h off. Aware binding keeps the edge exact to the microsecond."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(pg_url)
    with admin.begin() as conn:
        conn.execute(text(f"ALTER DATABASE {make_url(pg_url).database} SET timezone TO 'Asia/Jakarta'"))
    admin.dispose()
    store = Store.open(pg_url)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("SHOW timezone")).scalar_one() == "Asia/Jakarta"
        _check_features_edge(store)
    finally:
        store.close()


def _check_features_edge(store):
    run, track, _ = setup_run(store, NOW - timedelta(days=400))
    add_rows(store, run, track, 0, NOW - DEFAULT_PERIODS["features"])  # exactly at the edge: kept
    add_rows(store, run, track, 1, NOW - DEFAULT_PERIODS["features"] - US)
    local_now = NOW.astimezone(JAKARTA)
    assert purge(store, load_policy(), now=local_now, dry_run=True).counts["window_features"] == 1
    receipt = purge(store, load_policy(), now=local_now)
    assert receipt.counts["window_features"] == 1 and receipt.cutoffs["features"] == "2026-05-02T12:00:00.000000Z"
    with store.transaction() as conn:
        assert [r[0] for r in conn.execute(select(schema.window_features.c.second))] == [0]
