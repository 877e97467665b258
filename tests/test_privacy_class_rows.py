"""Class-level rows follow the people they were made from: a withdrawal or an erasure takes the
person's share out of the class timeline and its alerts (recomputed from what remains, hidden
below k), and no class row survives that only they made."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from engagement.core import schema
from engagement.core.repositories import runs as run_rows
from engagement.core.store import Store
from privacy import consent
from privacy.subjects import erase

T0 = datetime(2026, 3, 2, 1, 0, 0, tzinfo=timezone.utc)
NOTICE = dict(notice_version="v1", language="id", evidence="form")
PEOPLE = ("siti@x.id", "budi@x.id", "ani@x.id", "dewi@x.id")
SCORES = {"siti@x.id": 0.9, "budi@x.id": 0.3, "ani@x.id": 0.5, "dewi@x.id": 0.4}


@pytest.fixture
def store(isolated_data_dir):
    s = Store.open(f"sqlite:///{isolated_data_dir / 'test.db'}")
    yield s
    s.close()


def _second(conn, run, track, second, score):
    conn.execute(insert(schema.engagement_estimates).values(
        run_id=run, track_id=track, second=second, created_at=T0, state="present", score=score))
    conn.execute(insert(schema.window_features).values(
        run_id=run, track_id=track, second=second, created_at=T0, n_frames=1, n_face=1, present_ratio=1.0,
        blinks=0, on_screen_ratio=score, attention="on_screen"))


def make_run(store) -> int:
    """Four people in seconds 0..9, Siti alone in 10..12; the class rows as the analysis wrote
    them (her score in every mean) and an alert."""
    run = run_rows.begin_run(store, run_rows.session_id(store, "hari-1", cohort="c1"), mode="file", source="a.mp4",
                             software_version="t", profile="id-pdp", config={}, config_hash="0", models={})
    pseuds = [consent.grant(store, who, cohort="c1", at=T0 - timedelta(days=1), **NOTICE)[0].participant
              for who in PEOPLE]
    with store.transaction() as conn:
        for i, (who, pseud) in enumerate(zip(PEOPLE, pseuds)):
            track = run_rows.add_track(conn, run, f"T{i}", pseud, i)
            for second in range(10 if i else 13):
                _second(conn, run, track, second, SCORES[who])
        for second in range(13):
            alone = second >= 10
            conn.execute(insert(schema.class_timeline).values(
                run_id=run, second=second, created_at=T0, n_present=1 if alone else 4, n_tracked=1 if alone else 4,
                score=None if alone else 0.525, suppressed=int(alone), n_judged=1 if alone else 4,
                on_screen_share=None if alone else 0.525, n_absent=None if alone else 0))
        conn.execute(insert(schema.alerts).values(run_id=run, kind="on_screen_drop", start_second=10,
                                                  end_second=12, magnitude=0.5, created_at=T0))
    return run


def class_rows(store, run):
    with store.transaction() as conn:
        ct, al = schema.class_timeline, schema.alerts
        points = conn.execute(select(ct).where(ct.c.run_id == run).order_by(ct.c.second)).all()
        alerts = conn.execute(select(al).where(al.c.run_id == run)).all()
    return points, alerts


def test_a_withdrawal_takes_the_person_out_of_the_class_rows(store):
    run = make_run(store)
    result = consent.withdraw(store, "siti@x.id", cohort="c1")
    points, alerts = class_rows(store, run)
    # Seconds only she was in are gone; the others are the mean of the three who remain.
    assert [p.second for p in points] == list(range(10))
    assert all(p.n_tracked == 3 and p.score == pytest.approx(0.4) and p.on_screen_share == pytest.approx(0.4)
               for p in points)
    assert alerts == []
    counts = result.receipt["counts"]
    assert counts["class_timeline"] == 13 and counts["alerts"] == 1 and counts["class_timeline_recomputed"] == 10
    # One more withdrawal leaves two people: below k = 3 every figure is hidden again.
    consent.withdraw(store, "budi@x.id", cohort="c1")
    points, _ = class_rows(store, run)
    assert all(p.n_tracked == 2 and p.suppressed and p.score is None and p.on_screen_share is None
               and p.n_absent is None for p in points)


def test_fatigue_figures_of_those_who_remain_survive_a_withdrawal(store):
    # Budi yawns in seconds 3..5 and Ani has heavy eyes throughout: after Siti withdraws, the
    # recomputed class rows still count Budi's one yawn start and the heavy-eyed share.
    run = make_run(store)
    wf = schema.window_features
    with store.transaction() as conn:
        tracks = dict(conn.execute(select(schema.tracks.c.label, schema.tracks.c.id).where(
            schema.tracks.c.run_id == run)).all())
        conn.execute(wf.update().where(wf.c.run_id == run).values(yawn=0, perclos=0.05))
        conn.execute(wf.update().where(wf.c.track_id == tracks["T1"], wf.c.second.between(3, 5)).values(yawn=1))
        conn.execute(wf.update().where(wf.c.track_id == tracks["T2"]).values(perclos=0.4))
    consent.withdraw(store, "siti@x.id", cohort="c1")
    points, _ = class_rows(store, run)
    assert [p.n_yawns for p in points] == [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    assert all(p.n_seen == 3 and p.perclos_share == pytest.approx(1 / 3) for p in points)


def test_erasure_leaves_no_class_row_only_the_person_made(store):
    run = make_run(store)
    erase(store, "siti@x.id", cohort="c1")
    points, _ = class_rows(store, run)
    assert [p.second for p in points] == list(range(10)) and {p.n_tracked for p in points} == {3}


def test_an_attestation_withdrawal_receipt_names_the_session(store):
    consent.attest(store, "hari-2", facilitator="wi@x.id", cohort="c1", at=T0 - timedelta(days=1), **NOTICE)
    session = run_rows.session_id(store, "hari-2", cohort="c1")
    result = consent.withdraw_attestation(store, "hari-2")
    assert result.receipt["subject"] == f"session:{session}"
    with store.transaction() as conn:
        row = conn.execute(select(schema.purge_receipts.c.subject).order_by(schema.purge_receipts.c.id.desc())).first()
    assert row.subject == f"session:{session}"
