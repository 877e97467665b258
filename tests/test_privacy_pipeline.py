"""End to end through engagement.app.pipeline: default deny and withdrawal during a run.

The same behaviour is covered at the gate + store level in test_privacy_consent.py; here the
real pipeline, models and a shared clip run, and any error (a missing model too) fails.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from conftest import require_shared
from engagement.app import pipeline
from engagement.core import schema
from engagement.core.config import AnalysisOptions
from engagement.core.repositories import runs as run_rows
from engagement.core.store import Store
from engagement.core.time import as_utc
from engagement.vision.sources import open_source
from privacy import consent
from privacy.audit import AuditAction, AuditLog

pytestmark = [pytest.mark.slow, pytest.mark.data]


def run_pipeline(store, session, consent_options, hook=None):
    p = pipeline.AnalysisPipeline(store, AnalysisOptions(expression=False), profile="eu-ai-act", consent=consent_options)
    source = open_source(require_shared("videos/pyfeat/single_face.mp4"))
    return p.run(source, session, cohort="c1", hook=hook)


def count(store, table, **where) -> int:
    q = select(func.count()).select_from(table)
    for k, v in where.items():
        q = q.where(table.c[k] == v)
    with store.transaction() as conn:
        return int(conn.execute(q).scalar_one())


@pytest.fixture
def store(isolated_data_dir):
    s = Store.open(f"sqlite:///{isolated_data_dir / 'e2e.db'}")
    yield s
    s.close()


def test_no_consent_no_rows_end_to_end(store):
    # Consent exists, but for somebody else: the face on this device is not theirs to analyse.
    consent.grant(store, "someone@x.id", cohort="c1", notice_version="v1", language="en", evidence="f")
    run_pipeline(store, "e2e-deny", pipeline.ConsentOptions())
    assert count(store, schema.tracks) == 0 and count(store, schema.window_features) == 0
    run = AuditLog(store).entries(action=AuditAction.ANALYSIS_RUN)[-1]
    assert run.details["profile"] == "eu-ai-act"


def test_withdrawal_during_a_run_end_to_end(store):
    pseud = consent.grant(store, "siti@x.id", cohort="c1", notice_version="v1", language="id", evidence="f")[0].participant
    state = {"done": False}

    def hook(progress):
        # One second into the video, Siti withdraws, effective from that second of the run.
        if not state["done"] and progress.t_ms >= 1000:
            run = run_rows.latest_run(store, "e2e-withdraw", statuses=("running",))
            consent.withdraw(store, pseudonym=pseud, at=as_utc(run["started_at"]) + timedelta(seconds=1))
            state["done"] = True

    run_pipeline(store, "e2e-withdraw", pipeline.ConsentOptions(device_participant="siti@x.id"), hook=hook)
    assert state["done"]
    assert count(store, schema.tracks, participant=pseud) == 0
    assert count(store, schema.window_features) == 0
    assert count(store, schema.engagement_estimates) == 0
