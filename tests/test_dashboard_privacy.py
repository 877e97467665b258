"""Privacy officer pages: consent grant / attest / withdraw forms (reason, audited, the command
line's rules), the per-participant lookup (cohort required, a neutral "not found"), subject
requests, readable values, the purge preview under a changed policy, one audit entry per policy
change, and the audit log's filters, readable details and CSV export."""

from __future__ import annotations

import io
import re
import sqlite3
from datetime import date

import pandas as pd
import pytest
from dashboard_support import PAGES, app, audit_actions, audit_entries, db_path, elements, make_db, missing_words, no_failure, open_page

from dashboard import auditview, queries, services
from dashboard.clock import zone
from engagement.core.i18n import translate
from privacy import consent
from privacy.audit import AuditAction

IDENTITY, COHORT = "siti@example.id", "angkatan-1"
RAW_TABLES = ("window_features", "engagement_estimates", "class_timeline", "purge_receipts", "audit_log")


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    return make_db(tmp_path, monkeypatch)


def _page(page: str):
    return open_page(app("privacy_officer").run(), page)


def _submit(at, form: str, label_key: str):
    return at.button(key=f"FormSubmitter:{form}-{translate(label_key, 'id')}").click().run()


def _participant_with_data(url: str) -> str:
    """Siti consented and is track T1 of sesi-001: her pseudonym."""
    store = queries.open_store(url)
    records = consent.grant(store, IDENTITY, cohort=COHORT, notice_version="2026-1", language="id", evidence="form 7",
                            actor="cli:test")
    pseudonym = records[0].participant
    with sqlite3.connect(db_path(url)) as con:
        con.execute("UPDATE tracks SET participant = ? WHERE run_id = 1 AND label = 'T1'", (pseudonym,))
    return pseudonym


def _last(url: str, action: str) -> dict:
    return [e for e in audit_entries(url) if e["action"] == action][-1]


# -- consent forms --------------------------------------------------------------------------------


def test_grant_needs_a_reason_and_a_cohort_and_is_audited_with_them(db_url):
    at = _page("privacy_consent")
    no_failure(at)
    at.text_input(key="grant_identity").input(IDENTITY)
    at.text_input(key="grant_notice").input("2026-1")
    at.text_input(key="grant_evidence").input("form 7")
    at.text_input(key="grant_cohort").input(COHORT)
    _submit(at, "consent_grant", "consent.grant")
    assert at.error[0].value == translate("consent.need_reason", "id")
    at.text_area(key="grant_reason").input("signed at enrolment")
    at.text_input(key="grant_cohort").input("")
    _submit(at, "consent_grant", "consent.grant")
    assert at.error[0].value == translate("consent.need_cohort", "id")
    assert "consent_granted" not in audit_actions(db_url)
    at.text_input(key="grant_cohort").input(COHORT)
    _submit(at, "consent_grant", "consent.grant")
    no_failure(at)
    assert at.success[0].value.startswith("Persetujuan dicatat untuk p-")
    entry = _last(db_url, "consent_granted")
    assert entry["actor"] == "dashboard:dpo" and entry["details"]["reason"] == "signed at enrolment"
    assert entry["details"]["cohort"] == COHORT and IDENTITY not in str(entry)
    # The tables above follow at once (the page reran after the action).
    assert any("Peserta" in v for v in at.dataframe[1].value[translate("consent.kind", "id")])


def test_grant_keeps_the_command_lines_rules(db_url):
    at = _page("privacy_consent")
    at.text_input(key="grant_identity").input(IDENTITY)
    at.text_input(key="grant_cohort").input("angkatan satu")  # a space: not a valid cohort name
    at.text_input(key="grant_notice").input("2026-1")
    at.text_input(key="grant_evidence").input("form 7")
    at.text_area(key="grant_reason").input("enrolment")
    _submit(at, "consent_grant", "consent.grant")
    assert at.error[0].value.startswith(translate("error.action", "id", detail="")) and "cohort name" in at.error[0].value
    assert "consent_granted" not in audit_actions(db_url)


def test_attestation_form_records_with_reason(db_url):
    with sqlite3.connect(db_path(db_url)) as con:  # the generator attests every session: end sesi-002's
        con.execute("UPDATE consent_records SET withdrawn_at = '2026-01-01 00:00:00' WHERE session_name = 'sesi-002'")
    at = _attest(_page("privacy_consent"), "sesi-002")
    no_failure(at)
    entry = _last(db_url, "consent_attested")
    assert entry["actor"] == "dashboard:dpo" and entry["details"]["session"] == "sesi-002"
    assert entry["details"]["reason"] == "formulir kertas dikumpulkan"


def _attest(at, session: str | None = None, new: str = "", cohort: str = ""):
    if session:
        at.selectbox(key="attest_session").set_value(session)
    at.text_input(key="attest_new_session").input(new)
    at.text_input(key="attest_cohort").input(cohort)
    at.text_input(key="attest_facilitator").input("Ibu Widya")
    at.text_input(key="attest_notice").input("2026-1")
    at.text_input(key="attest_evidence").input("daftar hadir 3")
    at.text_area(key="attest_reason").input("formulir kertas dikumpulkan")
    return _submit(at, "consent_attest", "consent.attest")


def test_an_attestation_can_be_recorded_before_class_for_a_new_session(db_url):
    at = _attest(_page("privacy_consent"), new="kelas-besok", cohort="angkatan-9")
    no_failure(at)
    entry = _last(db_url, "consent_attested")
    assert entry["details"]["session"] == "kelas-besok" and entry["details"]["cohort"] == "angkatan-9"
    assert at.success[0].value.startswith(translate("consent.attested", "id", session="kelas-besok", n=1)[:30])


def test_an_outcome_shows_beside_the_forms_not_at_the_top(db_url):
    at = _attest(_page("privacy_consent"), new="kelas-lusa")
    no_failure(at)
    shown = [e for e in elements(at) if getattr(e, "type", "") in ("subheader", "success")]
    order = [e.type for e in shown]
    assert order.index("success") > [i for i, e in enumerate(shown) if e.value == translate("consent.actions", "id")][0]


def test_a_second_attestation_for_a_session_is_recorded_only_after_a_warning(db_url):
    count = audit_actions(db_url).count("consent_attested")
    at = _attest(_page("privacy_consent"), "sesi-002")  # the generator attested every session
    assert at.warning[0].value == translate("consent.attest_duplicate", "id", session="sesi-002")
    assert audit_actions(db_url).count("consent_attested") == count  # warned, nothing recorded
    at = _attest(at, "sesi-002")
    no_failure(at)
    assert audit_actions(db_url).count("consent_attested") == count + 1


def test_an_attestation_without_a_session_is_refused_in_words(db_url):
    count = audit_actions(db_url).count("consent_attested")
    at = _attest(_page("privacy_consent"))
    assert at.error[0].value == translate("consent.need_session", "id")
    assert audit_actions(db_url).count("consent_attested") == count


def test_the_audit_filter_offers_every_action_kind(db_url):
    _participant_with_data(db_url)
    at = _page("privacy_audit")
    offered = at.multiselect(key="audit_actions").options
    assert len(offered) == len(AuditAction)
    for action in ("sign_in_failed", "agenda_changed", "report_download", "user_created"):
        assert translate(f"action.{action}", "id") in offered


def test_withdrawal_needs_confirmation_then_purges_and_is_audited(db_url):
    pseudonym = _participant_with_data(db_url)
    at = _page("privacy_consent")
    at.text_input(key="withdraw_person").input(IDENTITY)
    at.text_input(key="withdraw_cohort").input(COHORT)
    at.text_area(key="withdraw_reason").input("asked by e-mail")
    _submit(at, "consent_withdraw", "consent.withdraw")
    assert at.error[0].value == translate("consent.need_confirm", "id")
    assert "consent_withdrawn" not in audit_actions(db_url)
    at.checkbox(key="withdraw_confirm").check()
    _submit(at, "consent_withdraw", "consent.withdraw")
    no_failure(at)
    assert at.success[0].value.startswith("Persetujuan ditarik (1 catatan);")
    entry = _last(db_url, "consent_withdrawn")
    assert entry["details"]["participant"] == pseudonym and entry["details"]["reason"] == "asked by e-mail"
    assert entry["details"]["purged"]["tracks"] == 1
    with sqlite3.connect(db_path(db_url)) as con:
        assert con.execute("SELECT count(*) FROM tracks WHERE participant = ?", (pseudonym,)).fetchone()[0] == 0


def test_a_session_attestation_is_withdrawn_from_the_form(db_url):
    at = _page("privacy_consent")
    at.radio(key="withdraw_kind").set_value("attestation").run()
    at.selectbox(key="withdraw_session").set_value("sesi-001")
    at.text_area(key="withdraw_reason").input("facilitator's statement was wrong")
    at.checkbox(key="withdraw_confirm").check()
    _submit(at, "consent_withdraw", "consent.withdraw")
    no_failure(at)
    entry = _last(db_url, "consent_withdrawn")
    assert entry["details"]["session"] == "sesi-001" and entry["details"]["purged"]["tracks"] == 8
    with sqlite3.connect(db_path(db_url)) as con:
        assert con.execute("SELECT count(*) FROM tracks WHERE run_id = 1").fetchone()[0] == 0


# -- lookup and subject requests -------------------------------------------------------------------


def test_lookup_shows_consent_and_data_of_one_person_and_is_audited(db_url):
    pseudonym = _participant_with_data(db_url)
    at = _page("privacy_consent")
    at.text_input(key="lookup_person").input(IDENTITY)
    at.text_input(key="lookup_cohort").input(COHORT)
    _submit(at, "consent_lookup", "consent.lookup")
    no_failure(at)
    assert pseudonym in " ".join(m.value for m in at.markdown)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics[translate("consent.held_sessions", "id")] == "1"
    assert metrics[translate("consent.held_seconds", "id")] == "900"
    entry = _last(db_url, "individual_view")
    assert entry["details"] == {"view": "participant_lookup", "participant": pseudonym, "found": True}


@pytest.mark.parametrize(
    ("person", "cohort", "outcome"),
    [
        (IDENTITY, "", "consent.need_cohort"),  # an identity means nothing without its cohort
        ("budi@example.id", COHORT, "consent.not_found"),  # never took part
        (IDENTITY, "angkatan-9", "consent.not_found"),  # a cohort without a key
    ],
)
def test_lookup_is_validated_and_says_not_found_neutrally(db_url, person, cohort, outcome):
    _participant_with_data(db_url)
    at = _page("privacy_consent")
    at.text_input(key="lookup_person").input(person)
    at.text_input(key="lookup_cohort").input(cohort)
    _submit(at, "consent_lookup", "consent.lookup")
    assert not at.exception and not at.success
    shown = [e.value for e in at.error] + [i.value for i in at.info]
    assert translate(outcome, "id") in shown


def test_subject_access_needs_the_cohort_and_an_unknown_person_is_not_a_success(db_url):
    _participant_with_data(db_url)
    at = _page("privacy_requests")
    at.text_input(key="request_participant").input(IDENTITY)
    _submit(at, "subject_request", "requests.submit")
    assert at.error[0].value == translate("requests.need_cohort", "id")
    assert "subject_access" not in audit_actions(db_url)
    at.text_input(key="request_participant").input("budi@example.id")
    at.text_input(key="request_cohort").input(COHORT)
    _submit(at, "subject_request", "requests.submit")
    assert not at.success and at.info[0].value == translate("requests.not_found", "id")
    at.text_input(key="request_participant").input(IDENTITY)
    _submit(at, "subject_request", "requests.submit")
    assert at.success[0].value == translate("requests.access_done", "id", n=1)


def test_erasure_of_an_unknown_person_is_not_found_and_a_known_one_is_readable(db_url):
    _participant_with_data(db_url)
    at = _page("privacy_requests")
    at.text_input(key="request_participant").input("budi@example.id")
    at.text_input(key="request_cohort").input(COHORT)
    at.radio(key="request_kind").set_value("erasure")
    at.checkbox(key="request_confirm").check()
    _submit(at, "subject_request", "requests.submit")
    assert not at.success and at.info[0].value == translate("requests.not_found", "id")
    at.text_input(key="request_participant").input(IDENTITY)
    _submit(at, "subject_request", "requests.submit")
    no_failure(at)
    counts = at.dataframe[0].value
    assert translate("data.window_features", "id") in counts[translate("purge.table", "id")].tolist()
    assert not set(RAW_TABLES) & set(counts[translate("purge.table", "id")])


# -- readable values ------------------------------------------------------------------------------


def test_consent_records_read_as_words_and_local_minutes(db_url):
    _participant_with_data(db_url)
    at = _page("privacy_consent")
    no_failure(at)
    records = at.dataframe[1].value
    text = " ".join(records.astype(str).to_numpy().ravel())
    for raw in ("attestation", "facilitator_feedback", "participant"):
        assert not re.search(rf"\b{raw}\b", text), raw
    for column in (translate("consent.granted_at", "id"), translate("consent.withdrawn_at", "id")):
        assert all(v == "–" or re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", v) for v in records[column]), records[column]
    assert not missing_words(at)


def test_purge_preview_names_data_in_words_and_follows_a_policy_change(db_url):
    at = _page("privacy_retention")
    next(b for b in at.button if b.label == translate("purge.dry_run", "id")).click().run()
    no_failure(at)
    preview = at.dataframe[1].value
    labels = preview[translate("purge.table", "id")].tolist()
    assert translate("data.window_features", "id") in labels and not set(RAW_TABLES) & set(labels)
    before = dict(zip(labels, preview[translate("purge.rows", "id")]))
    assert before[translate("data.window_features", "id")] == 0  # all younger than 30 days
    # Keep per-second features for no time at all: the preview counts again under that policy.
    at.text_input[0].input("0d")
    at.text_area[0].input("features are not needed after the session")
    at.button(key="FormSubmitter:policy_edit-" + translate("retention.save", "id")).click().run()
    no_failure(at)
    assert at.success[0].value == translate("retention.saved", "id")
    preview = at.dataframe[1].value
    after = dict(zip(preview[translate("purge.table", "id")], preview[translate("purge.rows", "id")]))
    assert after[translate("data.window_features", "id")] == 3 * 8 * 900
    assert at.session_state["purge_preview"]["policy_hash"] == services.load_policy().hash


def test_purge_preview_counts_per_session_and_table(db_url):
    """Whose data a purge would take: the preview lists each session with its rows per kind of
    data, beside the total per table (the total alone was all an officer saw)."""
    with sqlite3.connect(db_path(db_url)) as con:
        for table in ("window_features", "engagement_estimates"):
            con.execute(f"UPDATE {table} SET created_at = '2020-01-01 00:00:00.000000' WHERE run_id = 1")
        con.execute("UPDATE window_features SET created_at = '2020-01-01 00:00:00.000000' WHERE run_id = 2 AND second < 10")
    at = _page("privacy_retention")
    next(b for b in at.button if b.label == translate("purge.dry_run", "id")).click().run()
    no_failure(at)
    assert translate("purge.by_session", "id") in [m.value for m in at.markdown]
    per_session = at.dataframe[2].value.set_index(translate("chart.session", "id"))
    features, estimates = translate("data.window_features", "id"), translate("data.engagement_estimates", "id")
    assert per_session.loc["sesi-001", features] == 8 * 900 and per_session.loc["sesi-001", estimates] == 8 * 900
    assert per_session.loc["sesi-002", features] == 8 * 10 and per_session.loc["sesi-002", estimates] == 0
    assert "sesi-003" not in per_session.index
    totals = at.dataframe[1].value.set_index(translate("purge.table", "id"))[translate("purge.rows", "id")]
    assert totals[features] == per_session[features].sum()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_a_bad_retention_period_is_refused_in_words_without_the_servers_path(db_url, lang):
    at = app("privacy_officer", lang)
    at.switch_page(str(PAGES / "privacy_retention.py"))
    at.run()
    before = services.load_policy().hash
    at.text_input[0].input("soon")
    at.text_area[0].input("a test of a typo")
    at.button(key="FormSubmitter:policy_edit-" + translate("retention.save", lang)).click().run()
    (error,) = at.error
    assert error.value == translate("retention.bad_period", lang, tier=translate("tier.features", lang), value="soon")
    assert "/" not in error.value and services.load_policy().hash == before
    assert not [c.value for c in at.caption if "/" in c.value]  # the policy file by name only


def test_one_policy_change_is_one_audit_entry_and_a_no_op_is_none(db_url):
    at = _page("privacy_retention")
    at.text_input[0].input("20d")
    at.text_area[0].input("DPIA review")
    at.button(key="FormSubmitter:policy_edit-" + translate("retention.save", "id")).click().run()
    changes = [e for e in audit_entries(db_url) if e["action"] == "policy_change"]
    assert len(changes) == 1 and changes[0]["details"]["reason"] == "DPIA review"
    assert changes[0]["details"]["policy"]["retention"]["features"] == "20d"
    at.text_area[0].input("saved again without changes")
    at.button(key="FormSubmitter:policy_edit-" + translate("retention.save", "id")).click().run()
    assert at.info[0].value == translate("retention.unchanged", "id")
    assert [e["action"] for e in audit_entries(db_url)].count("policy_change") == 1
    # The next purge knows this policy already: no second entry for the same change.
    services.purge(queries.open_store(db_url), dry_run=False, actor="dashboard:dpo")
    assert [e["action"] for e in audit_entries(db_url)].count("policy_change") == 1


def test_receipts_read_as_words_and_local_times(db_url):
    services.purge(queries.open_store(db_url), dry_run=False, actor="dashboard:dpo")
    at = _page("privacy_retention")
    receipts = at.dataframe[-1].value
    assert receipts[translate("consent.kind", "id")].tolist() == [translate("receipt.purge", "id")]
    assert receipts[translate("purge.trigger", "id")].tolist() == [translate("trigger.dashboard", "id")]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", receipts[translate("purge.at", "id")][0])


# -- audit log --------------------------------------------------------------------------------------


def test_audit_log_filters_by_actor_action_and_date(db_url):
    _participant_with_data(db_url)
    at = _page("privacy_audit")
    no_failure(at)
    everything = at.dataframe[0].value
    assert len(everything) >= 3
    at.multiselect(key="audit_actions").set_value(["consent_granted"]).run()
    shown = at.dataframe[0].value
    assert set(shown[translate("audit.action", "id")]) == {translate("action.consent_granted", "id")}
    at.multiselect(key="audit_actions").set_value([]).run()
    at.multiselect(key="audit_actors").set_value(["cli:test"]).run()
    assert set(at.dataframe[0].value[translate("audit.actor", "id")]) == {"cli:test"}
    at.date_input(key="audit_dates").set_value((date(2020, 1, 1), date(2020, 1, 31))).run()
    assert at.info[0].value == translate("audit.no_match", "id") and not at.dataframe


def test_audit_details_are_readable_not_raw_json(db_url):
    pseudonym = _participant_with_data(db_url)
    at = _page("privacy_audit")
    details = at.dataframe[0].value[translate("audit.details", "id")].tolist()
    granted = next(d for d in details if pseudonym in d)
    assert f"{translate('detail.participant', 'id')}: {pseudonym}" in granted
    assert "{" not in granted and '"' not in granted
    assert re.search(r"diberikan: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", granted)  # local time, no microseconds
    assert at.get("download_button")


def test_audit_detail_codes_read_as_words():
    text = auditview.details_text({"kind": "attestation", "locked": [{"scope": "account", "seconds": 300}],
                                   "scopes": ["research"]}, zone("Asia/Jakarta"))
    assert text == "jenis: Pernyataan fasilitator · dikunci: akun selama 5 mnt 0 dtk · cakupan: Riset", text


def test_audit_csv_keeps_everything_and_is_safe_in_a_spreadsheet(db_url):
    store = queries.open_store(db_url)
    services.audit(store, "sign_in", "=HYPERLINK(\"x\")", {"role": "researcher"})
    entries = queries.audit_log(store, queries.AuditFilter(), zone("Asia/Jakarta"), limit=None)
    data = auditview.audit_csv(entries, zone("Asia/Jakarta"))
    assert data.startswith("\ufeff".encode())
    table = pd.read_csv(io.BytesIO(data), encoding="utf-8-sig")
    assert list(table.columns) == ["seq", "at_utc", "at_local", "action", "action_text", "actor", "details_json", "hash"]
    assert len(table) == len(entries)
    row = table[table["action"] == "sign_in"].iloc[0]
    assert row["actor"].startswith("'=")  # a formula is text in a spreadsheet
    assert row["details_json"] == '{"role": "researcher"}' and len(row["hash"]) == 64
    assert row["at_utc"].endswith("Z") and not row["at_local"].endswith("Z")


def test_details_text_formats_counts_times_hashes_and_lists():
    tz = zone("Asia/Jakarta")
    text = auditview.details_text(
        {"counts": {"window_features": 10, "tracks": 2}, "granted_at": "2025-01-06T03:00:00.123456Z",
         "new_hash": "a" * 64, "scopes": ["facilitator_feedback", "research"], "found": False},
        tz,
    )
    assert "Fitur per detik 10" in text and "2025-01-06 10:00:00" in text
    assert "aaaaaaaaaaaa…" in text and "ditemukan: tidak" in text
    assert "cakupan: Umpan balik fasilitator, Riset" in text  # scope codes in words
