"""Subject requests (access, erase), the consent CLI, and the DPIA report."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select

from engagement.cli.main import main
from engagement.core import schema
from engagement.core.repositories import runs as run_rows
from engagement.core.store import Store
from privacy import consent
from privacy.audit import AuditAction, AuditLog
from privacy.dpia import render_dpia
from privacy.profiles import get_profile
from privacy.retention import load_policy
from privacy.subjects import access, erase



@pytest.fixture
def store(isolated_data_dir):
    s = Store.open(f"sqlite:///{isolated_data_dir / 'test.db'}")
    yield s
    s.close()


def analysed(store, who="siti@x.id", seconds=3) -> str:
    pseud = consent.grant(store, who, cohort="c1", notice_version="v1", language="id", evidence="f",
                          at=datetime.now(timezone.utc) - timedelta(days=1))[0].participant
    sid = run_rows.session_id(store, "s1", cohort="c1")
    run = run_rows.begin_run(store, sid, mode="file", source="a.mp4", software_version="t", profile="id-pdp", config={},
                             config_hash="0", models={})
    with store.transaction() as conn:
        track = run_rows.add_track(conn, run, "T1", pseud, 0)
        for s in range(seconds):
            conn.execute(insert(schema.window_features).values(
                run_id=run, track_id=track, second=s, created_at=datetime.now(timezone.utc), n_frames=1,
                n_face=1, present_ratio=1.0, blinks=0))
        AuditLog(store).record(AuditAction.ANALYSIS_RUN, "cli", {"run_id": run, "profile": "id-pdp"}, conn=conn)
    return pseud


def test_access_then_erase(store):
    pseud = analysed(store)
    other = analysed(store, "budi@x.id")
    data = access(store, "SITI@x.id", cohort="c1")
    assert data["participant"] == pseud and data["summary"]["seconds"] == 3
    assert len(data["tracks"][0]["window_features"]) == 3
    assert {e["action"] for e in data["processing_trail"]} >= {"consent_granted", "analysis_run"}
    assert json.dumps(data)  # JSON-ready
    result = erase(store, "siti@x.id", cohort="c1")
    assert result.counts["window_features"] == 3 and result.counts["tracks"] == 1
    assert result.receipt_file.exists()
    assert not consent.has_consent(store, pseud)
    assert consent.has_consent(store, other)
    assert access(store, pseud)["tracks"] == []
    actions = [e.action for e in AuditLog(store).entries()]
    assert actions.count("subject_access") == 2 and "subject_erasure" in actions
    assert AuditLog(store).verify().ok


def test_cli_consent_and_subject_commands(store, capsys, tmp_path):
    db = ["--db", store.url]
    base = ["privacy", "consent", "grant", "ani@x.id", "--cohort", "c1", "--notice-version", "v1", "--evidence", "f"]
    assert main(base + ["--language", "id", "--at", "yesterday"] + db) == 2
    assert "not a date" in capsys.readouterr().err
    assert main(base + ["--language", "jv"] + db) == 2
    assert "notice language" in capsys.readouterr().err
    with store.transaction() as conn:
        assert conn.execute(select(func.count()).select_from(schema.consent_records)).scalar_one() == 0
    assert main(base + ["--language", "id", "--scope", "research", "--scope", "facilitator_feedback"] + db) == 0
    assert main(["privacy", "consent", "list", "--json"] + db) == 0
    capsys.readouterr()
    roster = tmp_path / "r.csv"
    roster.write_text("identity,scopes\nbayu@x.id,facilitator_feedback\n,research\n")
    assert main(["privacy", "consent", "import", str(roster), "--cohort", "c1", "--notice-version", "v1",
                 "--language", "en", "--evidence", "forms"] + db) == 2
    assert "participant 2: identity is missing" in capsys.readouterr().err
    assert main(["privacy", "consent", "attest", "s9", "--by", "fasil", "--notice-version", "v1", "--language", "id",
                 "--evidence", "daftar hadir"] + db) == 0
    assert main(["privacy", "consent", "withdraw", "--session", "s9"] + db) == 0
    assert main(["privacy", "consent", "withdraw", "ani@x.id", "--cohort", "c1"] + db) == 0
    capsys.readouterr()
    out = tmp_path / "ani.json"
    assert main(["privacy", "access", "ani@x.id", "--cohort", "c1", "--out", str(out)] + db) == 0
    assert json.loads(out.read_text())["consents"][0]["withdrawn_at"] is not None
    assert (out.stat().st_mode & 0o077) == 0
    assert main(["privacy", "erase", "ani@x.id", "--cohort", "c1"] + db) == 2  # no --yes, no terminal
    assert main(["privacy", "erase", "ani@x.id", "--cohort", "c1", "--yes"] + db) == 0
    assert main(["privacy", "access", "nobody@x.id", "--cohort", "zz"] + db) == 2


@pytest.mark.parametrize("lang", ["id", "en"])
def test_dpia_from_live_configuration(store, lang):
    analysed(store)
    md = render_dpia(store, load_policy(), get_profile("id-pdp"), lang, "md")
    eu_html = render_dpia(store, load_policy(), get_profile("eu-ai-act"), lang, "html")
    if lang == "id":
        assert "Penilaian Dampak Pelindungan Data Pribadi" in md and "Masa retensi" in md
        assert "tidak pernah dijalankan" in eu_html
    else:
        assert "Data Protection Impact Assessment" in md and "Retention periods" in md
        assert "never runs" in eu_html
    # Periods and expression names in the reader's language ("30d" and "happy" in Indonesian text
    # were machine words to a privacy officer).
    days, happy = ("| 30 hari |", "senang") if lang == "id" else ("| 30 days |", "happy")
    assert days in md and "id-pdp" in md and happy in md
    assert "| 30d |" not in md and (lang == "en" or "happy" not in md)
    assert eu_html.startswith("<!DOCTYPE html>") and f'lang="{lang}"' in eu_html
    assert happy not in eu_html  # no expression data category under eu-ai-act
    assert "siti" not in md.lower()


def test_cli_dpia(store, tmp_path, capsys):
    out = tmp_path / "dpia.html"
    assert main(["privacy", "dpia", "--lang", "en", "--format", "html", "--out", str(out), "--db", store.url]) == 0
    assert "<h1>Data Protection Impact Assessment" in out.read_text()
    assert AuditLog(store).entries(action=AuditAction.DPIA_GENERATED)
