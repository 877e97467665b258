"""Dashboard: sign-in and roles, every page per role, empty states, auditing, i18n, queries.

Pages run in streamlit.testing's AppTest against a small synthetic database made by the
benchmark generator (3 sessions x 8 participants x 15 min).
"""

from __future__ import annotations

import ast
import io
import json
import re
import sqlite3
import zipfile
from datetime import timezone

import pytest
from dashboard_support import PAGES, PASSWORD, ROOT, TIMEOUT, make_db
from dashboard_support import app as _app
from dashboard_support import audit_actions as _audit_actions
from dashboard_support import block_labels as _block_labels
from dashboard_support import charts as _charts
from dashboard_support import generator as _generator
from dashboard_support import main_app as _main_app
from dashboard_support import missing_words as _missing_words
from dashboard_support import no_failure as _no_failure
from dashboard_support import open_page as _open
from dashboard_support import session as _session
from streamlit.testing.v1 import AppTest

from dashboard import auth, queries, services
from engagement.app import agenda as agenda_store
from engagement.core.i18n import catalogue, translate

ALL_PAGES = ("facilitator", "researcher", "privacy_consent", "privacy_retention", "privacy_audit", "privacy_requests", "users")
ALLOWED = {
    "facilitator": ("facilitator",),
    "researcher": ("researcher",),
    "privacy_officer": ("privacy_consent", "privacy_retention", "privacy_audit", "privacy_requests"),
    "admin": ALL_PAGES,
}


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    return make_db(tmp_path, monkeypatch)


@pytest.fixture
def empty_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    monkeypatch.setenv("ENGAGEMENT_DB", url)
    return url


# -- sign-in -----------------------------------------------------------------------------------


def test_sign_in_and_out_are_audited(db_url):
    at = _main_app().run()
    assert at.title[0].value == translate("app.title", "id")
    at.text_input(key="sign_in_name").input("fasil")
    at.text_input(key="sign_in_password").input(PASSWORD)
    at.button[0].click().run()
    _no_failure(at)
    assert at.session_state["user"] == {"name": "fasil", "role": "facilitator"}
    assert at.title[0].value == translate("facilitator.title", "id")
    sign_out = next(b for b in at.sidebar.button if b.label == translate("auth.sign_out", "id"))
    sign_out.click().run()
    assert "user" not in at.session_state
    assert at.text_input(key="sign_in_name") is not None
    actions = _audit_actions(db_url)
    assert actions[-2:] == ["sign_in", "sign_out"]


@pytest.fixture(autouse=True)
def fresh_throttle():
    # The sign-in throttle lives for the server process; each test starts with a clean one.
    from dashboard import ui

    ui.sign_in_throttle.clear()
    yield
    ui.sign_in_throttle.clear()


def _sign_in(at: AppTest, name: str, password: str) -> AppTest:
    at.text_input(key="sign_in_name").input(name)
    at.text_input(key="sign_in_password").input(password)
    return at.button[0].click().run()


def test_wrong_password_is_refused_and_audited(db_url):
    at = _main_app().run()
    at.text_input(key="sign_in_name").input("fasil")
    at.text_input(key="sign_in_password").input("wrong-password")
    at.button[0].click().run()
    assert at.error[0].value == translate("auth.failed", "id")
    assert "user" not in at.session_state
    assert _audit_actions(db_url)[-1] == "sign_in_failed"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_throttle_locks_an_account_after_five_failures_for_a_growing_period():
    clock = FakeClock()
    throttle = auth.SignInThrottle(clock=clock)
    for _ in range(4):
        assert throttle.failure("fasil", "10.0.0.1") == []
        clock.now += 60
    assert throttle.wait_s("fasil", "10.0.0.1") == 0
    assert throttle.failure("fasil", "10.0.0.1") == [auth.Lock("account", 300)]
    assert throttle.wait_s("fasil", "10.0.0.2") == 300  # the account, from any address
    assert throttle.wait_s("Fasil ", "10.0.0.1") == 300  # the same account however typed
    assert throttle.wait_s("siti", "10.0.0.1") == 0  # other accounts from that address are free
    clock.now += 301
    assert throttle.wait_s("fasil", "10.0.0.1") == 0
    for _ in range(4):
        throttle.failure("fasil", "10.0.0.1")
    assert throttle.failure("fasil", "10.0.0.1") == [auth.Lock("account", 600)]  # twice as long
    clock.now += 601
    throttle.success("fasil")  # a successful sign-in starts the account afresh
    for _ in range(4):
        throttle.failure("fasil", "10.0.0.1")
    assert throttle.failure("fasil", "10.0.0.1") == [auth.Lock("account", 300)]


def test_throttle_forgets_failures_outside_the_window():
    clock = FakeClock()
    throttle = auth.SignInThrottle(clock=clock)
    for _ in range(10):
        assert throttle.failure("fasil", "10.0.0.1") == []
        clock.now += 15 * 60 / 4 + 1  # never 5 failures within 15 minutes
    assert throttle.wait_s("fasil", "10.0.0.1") == 0


def test_throttle_locks_an_address_that_tries_many_names():
    clock = FakeClock()
    throttle = auth.SignInThrottle(clock=clock)
    locks = [throttle.failure(f"user{i}", "10.0.0.9") for i in range(20)]
    assert locks[-1] == [auth.Lock("address", 300)] and not any(locks[:-1])
    assert throttle.wait_s("anyone", "10.0.0.9") == 300
    assert throttle.wait_s("anyone", "10.0.0.8") == 0


def test_the_right_password_is_refused_while_locked_and_locks_are_audited(db_url):
    store = queries.open_store(db_url)
    clock = FakeClock()
    throttle = auth.SignInThrottle(clock=clock)
    for _ in range(25):
        assert auth.sign_in(store, throttle, "fasil", "wrong-password", "10.0.0.1").user is None
    refused = auth.sign_in(store, throttle, "fasil", PASSWORD, "10.0.0.1")
    assert refused.user is None and refused.wait_s > 0
    failed = [e for e in services.audit_entries(store) if e["action"] == "sign_in_failed"]
    assert len(failed) == 5  # attempts while locked are refused without a password check
    assert failed[-1]["actor"] == "dashboard:fasil"
    assert failed[-1]["details"]["locked"] == [{"scope": "account", "seconds": 300}]
    clock.now += 301
    assert auth.sign_in(store, throttle, "fasil", PASSWORD, "10.0.0.1").user.name == "fasil"
    assert services.audit_entries(store)[-1]["action"] == "sign_in"


def test_a_name_that_is_no_account_is_never_logged(db_url):
    store = queries.open_store(db_url)
    typed = "My-Secret-Passw0rd"  # a password typed into the name field
    auth.sign_in(store, auth.SignInThrottle(), typed, "anything-at-all", "10.0.0.1")
    entry = services.audit_entries(store)[-1]
    assert entry["action"] == "sign_in_failed" and entry["actor"] == "dashboard:unknown"
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as con:
        dump = "\n".join(con.iterdump())
    assert typed not in dump and typed.lower() not in dump.lower()


def test_sign_in_page_locks_after_five_failures(db_url):
    at = _main_app().run()
    for _ in range(4):
        _sign_in(at, "fasil", "wrong-password")
        assert at.error[0].value == translate("auth.failed", "id")
    _sign_in(at, "fasil", "wrong-password")  # the fifth failure says so at once
    assert at.error[0].value == translate("auth.locked", "id", minutes=5)
    _sign_in(at, "fasil", PASSWORD)
    assert "user" not in at.session_state
    assert at.error[0].value == translate("auth.locked", "id", minutes=5)


def test_passwords_are_salted_scrypt_hashes(db_url):
    store = queries.open_store(db_url)
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as con:
        hashes = [r[0] for r in con.execute("SELECT password_hash FROM dashboard_users")]
    assert all(h.startswith("scrypt$") and PASSWORD not in h for h in hashes)
    assert len(set(hashes)) == len(hashes)  # same password, different salts
    assert auth.authenticate(store, "dpo", PASSWORD).role == "privacy_officer"
    assert auth.authenticate(store, "dpo", PASSWORD + "x") is None
    assert auth.authenticate(store, "nobody", PASSWORD) is None
    with pytest.raises(auth.AuthError):
        auth.create_user(store, "short", "admin", "1234")


def test_cli_users_add_reads_password_from_stdin(empty_url, monkeypatch, capsys):
    from engagement.cli.main import main

    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    assert main(["dashboard", "users", "add", "siti", "--role", "researcher", "--password-stdin"]) == 0
    store = queries.open_store(empty_url)
    assert auth.authenticate(store, "siti", "a-long-password").role == "researcher"
    assert "user_created" in _audit_actions(empty_url)
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    assert main(["dashboard", "users", "add", "siti", "--role", "researcher", "--password-stdin"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_session_named_on_the_command_line_is_preselected(db_url, monkeypatch):
    monkeypatch.setenv("ENGAGEMENT_DASHBOARD_SESSION", "sesi-001")
    at = _open(_app("facilitator").run(), "facilitator")
    _no_failure(at)
    assert at.selectbox(key="facilitator_session").value == 2  # newest first: sesi-001 is last


# -- pages and roles ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", list(ALLOWED))
def test_every_allowed_page_renders_for_each_role(db_url, role):
    at = _app(role).run()
    _no_failure(at)
    for page in ALLOWED[role]:
        _open(at, page)
        _no_failure(at)
        assert at.title[0].value == translate(
            {"privacy_consent": "consent.title", "privacy_retention": "retention.title", "privacy_audit": "audit.title",
             "privacy_requests": "requests.title", "users": "users.title"}.get(page, f"{page}.title"),
            "id",
        )


@pytest.mark.parametrize("role", ["researcher", "facilitator"])
def test_researcher_and_facilitator_cannot_open_privacy_pages(db_url, role):
    at = _app(role).run()
    privacy_titles = {translate(k, "id") for k in ("consent.title", "retention.title", "audit.title", "requests.title")}
    for page in ("privacy_consent", "privacy_retention", "privacy_audit", "privacy_requests", "users"):
        try:
            _open(at, page)  # up to Streamlit 1.62: an unknown page falls back to the role's own
        except ValueError:
            # From 1.63 AppTest refuses a page st.navigation did not register: the role has no
            # address for it. What the role sees then is still checked below.
            at.run()
        assert not at.exception
        assert not privacy_titles & {t.value for t in at.title}
        assert not at.dataframe or translate("audit.seq", "id") not in at.dataframe[0].value.columns


def test_page_guard_stops_a_role_that_reaches_a_page_anyway(db_url):
    # st.navigation does not register forbidden pages; the page's own guard is the second lock.
    at = AppTest.from_file(str(PAGES / "privacy_audit.py"), default_timeout=TIMEOUT)
    at.session_state["user"] = {"name": "peneliti", "role": "researcher"}
    at.run()
    assert at.error[0].value == translate("auth.not_allowed", "id")
    assert not at.dataframe


# -- facilitator -------------------------------------------------------------------------------


def test_facilitator_page_shows_timeline_alerts_distribution_presence(db_url):
    at = _open(_app("facilitator").run(), "facilitator")
    _no_failure(at)
    assert _charts(at) >= 4  # on-screen timeline, cameras off, engagement estimate, attention states
    labels = [m.label for m in at.metric]
    assert labels[:2] == [translate("kpi.on_screen", "id"), translate("kpi.cameras_off", "id")]
    assert at.get("download_button")
    alerts_table = at.dataframe[0].value
    assert translate("alerts.from", "id") in alerts_table.columns and len(alerts_table) >= 1


def test_individual_lanes_need_profile_and_are_audited(db_url):
    at = _open(_app("facilitator").run(), "facilitator")
    sessions = queries.list_sessions(queries.open_store(db_url))
    # The generator alternates profiles: odd sessions id-pdp (lanes allowed), even eu-ai-act.
    for index, row in sessions.iterrows():
        at.selectbox(key="facilitator_session").set_value(index).run()
        if row["profile"] == "eu-ai-act":
            assert not at.toggle
            assert translate("lanes.profile_forbids", "id", profile="eu-ai-act") in [c.value for c in at.caption]
        else:
            before = _charts(at)
            assert "individual_view" not in _audit_actions(db_url)
            at.toggle[0].set_value(True).run()
            _no_failure(at)
            assert _charts(at) == before + 1
            assert _audit_actions(db_url).count("individual_view") == 1
            at.run()  # a rerun while open is the same opening: no second entry
            assert _audit_actions(db_url).count("individual_view") == 1
            return
    pytest.fail("no session with an id-pdp profile")


def test_page_survives_k_hiding_every_agenda_item(db_url):
    # Every second below the minimum group size: no class score anywhere in the session.
    index, session_id, run_id = _session(db_url, "sesi-001")
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as con:
        con.execute("UPDATE class_timeline SET score = NULL, suppressed = 1, on_screen_share = NULL, n_absent = NULL"
                    " WHERE run_id = ?", (run_id,))
        con.execute("DELETE FROM alerts WHERE run_id = ?", (run_id,))
    agenda_store.replace_agenda(queries.open_store(db_url), session_id, agenda_store.parse_agenda_csv("0:00,Pembukaan\n5:00,Materi\n"))
    at = _open(_app("facilitator").run(), "facilitator")
    at.selectbox(key="facilitator_session").set_value(index).run()
    _no_failure(at)
    agenda_table = next(df.value for df in at.dataframe if translate("agenda.title", "id") in df.value.columns
                        and translate("kpi.mean_score", "id") in df.value.columns)
    assert agenda_table[translate("kpi.mean_score", "id")].tolist() == ["–", "–"]
    assert agenda_table[translate("kpi.on_screen", "id")].tolist() == ["–", "–"]
    assert at.info[0].value == translate("summary.none", "id")
    assert not _missing_words(at), _missing_words(at)
    # The agenda editor is still there to undo what hid everything.
    assert translate("agenda.edit", "id") in _block_labels(at)


def test_missing_values_show_as_a_dash_never_none_or_nan(db_url):
    index, session_id, run_id = _session(db_url, "sesi-002")
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as con:
        con.execute("UPDATE sessions SET cohort = NULL")
    at = _open(_app("facilitator").run(), "facilitator")
    at.selectbox(key="facilitator_session").set_value(index).run()
    _no_failure(at)
    assert not _missing_words(at), _missing_words(at)
    at = _open(_app("researcher").run(), "researcher")
    _no_failure(at)
    assert not _missing_words(at), _missing_words(at)


def test_a_session_without_any_consent_says_so_and_how_to_record_it(db_url):
    from privacy.audit import AuditAction, AuditLog

    index, session_id, run_id = _session(db_url, "sesi-001")
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as con:
        for table in ("class_timeline", "engagement_estimates", "alerts", "tracks"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
    AuditLog(queries.open_store(db_url)).record(
        AuditAction.ANALYSIS_RUN, "cli:test", {"run_id": run_id, "status": "complete", "tracks": 0, "denied_tracks": 5}
    )
    at = _open(_app("facilitator").run(), "facilitator")
    at.selectbox(key="facilitator_session").set_value(index).run()
    _no_failure(at)
    assert at.info[0].value == translate("facilitator.no_consent", "id", n=5)
    assert "consent attest sesi-001" in at.code[0].value and "--session sesi-001" in at.code[0].value
    assert translate("facilitator.no_timeline", "id") not in [i.value for i in at.info]


def test_live_run_shows_live_notice(db_url):
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as con:
        con.execute("UPDATE runs SET status = 'running' WHERE id = (SELECT max(id) FROM runs)")
    at = _open(_app("facilitator").run(), "facilitator")
    _no_failure(at)
    assert any(translate("facilitator.live", "id", seconds="15:00") == i.value for i in at.info)
    # The generator's heartbeat is long past: the page says the analysis may have stopped.
    assert at.warning and "menit" in at.warning[0].value


def test_agenda_csv_import_and_summary(db_url):
    store = queries.open_store(db_url)
    rows = agenda_store.parse_agenda_csv("start,title\n0:00,Pembukaan\n5:00,Materi; bagian 1\n0:12:30,Penutup\n")
    assert [(r.start_second, r.title) for r in rows] == [(0, "Pembukaan"), (300, "Materi; bagian 1"), (750, "Penutup")]
    with pytest.raises(Exception, match="line 2"):
        agenda_store.parse_agenda_csv("0:00,A\nsoon,B\n")
    agenda_store.replace_agenda(store, 1, rows)
    agenda = queries.agenda(store, 1)
    assert agenda["end_second"].tolist()[:2] == [300, 750]
    scores = queries.agenda_scores(store, 1, 1)
    assert scores["title"].tolist() == ["Pembukaan", "Materi; bagian 1", "Penutup"]

    from dashboard.clock import Clock
    from dashboard.report import session_summary_html

    tl = queries.class_timeline(store, 1, 10)
    html = session_summary_html("en", {"name": "sesi-001", "cohort": "A"}, queries.session_stats(store, 1), tl,
                                scores, agenda, queries.alerts(store, 1), Clock(None, timezone.utc, 900),
                                "Attention was lowest at 5:00–6:30.", "on_screen_share")
    assert "<svg" in html and "Materi; bagian 1" in html and "<script" not in html
    assert "Attention was lowest at 5:00–6:30." in html and "15:00" in html


# -- researcher --------------------------------------------------------------------------------


def test_researcher_trends_filters_and_audited_export(db_url):
    at = _open(_app("researcher").run(), "researcher")
    _no_failure(at)
    assert _charts(at) >= 3
    assert at.metric[0].value == "3"
    at.multiselect(key="researcher_cohorts").set_value(["Angkatan-I"]).run()
    assert at.metric[0].value == "1"
    at.multiselect(key="researcher_titles").set_value(["Materi inti"]).run()
    _no_failure(at)

    store = queries.open_store(db_url)
    blob = services.export_bundle(store, ["sesi-001"], "csv", "dashboard:peneliti")
    names = zipfile.ZipFile(io.BytesIO(blob)).namelist()
    assert {"sesi-001.csv", "sesi-001.schema.json", "sesi-001.manifest.json"} <= set(names)
    entry = services.audit_entries(store)[-1]
    assert entry["action"] == "export" and entry["details"]["sessions"] == ["sesi-001"]


def test_download_selection_defaults_to_the_newest_ten_of_many_sessions(tmp_path, monkeypatch):
    path = tmp_path / "many.db"
    _generator().generate(path, sessions=12, participants=3, seconds=60, estimates=False, seed=2)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("ENGAGEMENT_DB", url)
    store = queries.open_store(url)
    auth.create_user(store, "peneliti", "researcher", PASSWORD)
    at = _open(_app("researcher").run(), "researcher")
    _no_failure(at)
    newest = queries.trends(store, queries.Filters())["name"].tolist()[-10:]
    assert at.multiselect(key="researcher_download_sessions").value == newest
    labels = [b.label for b in at.get("download_button")]
    assert translate("researcher.download_button", "id", n=10) in labels


def test_a_failed_export_is_not_audited(db_url, monkeypatch):
    from engagement.app import export as exporter

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(exporter, "export_session", broken)
    store = queries.open_store(db_url)
    with pytest.raises(OSError):
        services.export_bundle(store, ["sesi-001"], "csv", "dashboard:peneliti")
    assert "export" not in _audit_actions(db_url)


def test_trends_aggregate_in_sql_matches_python(db_url):
    store = queries.open_store(db_url)
    df = queries.trends(store, queries.Filters())
    with sqlite3.connect(db_url.removeprefix("sqlite:///")) as con:
        expected = con.execute("SELECT avg(score) FROM class_timeline WHERE run_id = 2").fetchone()[0]
        scored = con.execute("SELECT count(score) FROM class_timeline").fetchone()[0]
    assert df.loc[df["name"] == "sesi-002", "score"].item() == pytest.approx(expected)
    assert queries.score_histogram(store, queries.Filters())["n"].sum() == scored


# -- privacy officer ---------------------------------------------------------------------------


def test_privacy_pages_policy_edit_purge_and_audit_verify(db_url):
    at = _open(_app("privacy_officer").run(), "privacy_retention")
    _no_failure(at)
    # A change without a reason is refused.
    at.text_input[0].input("20d")
    at.button(key="FormSubmitter:policy_edit-" + translate("retention.save", "id")).click().run()
    assert at.error[0].value == translate("retention.reason_required", "id")
    at.text_input[0].input("20d")
    at.text_area[0].input("shorter feature retention after DPIA review")
    at.button(key="FormSubmitter:policy_edit-" + translate("retention.save", "id")).click().run()
    _no_failure(at)
    assert services.policy_periods(services.load_policy())["features"] == "20d"
    entries = services.audit_entries(queries.open_store(db_url))
    assert any(e["action"] == "policy_change" and "reason" in e["details"] for e in entries)

    dry = next(b for b in at.button if b.label == translate("purge.dry_run", "id"))
    dry.click().run()
    _no_failure(at)
    assert any("**" in m.value for m in at.markdown)

    at = _open(at, "privacy_audit")
    _no_failure(at)
    assert at.success[0].value.startswith(translate("audit.intact", "id", n=0)[:10])


def test_consent_page_counts_attestations_and_shows_no_none(empty_url):
    from privacy.consent import attest

    store = queries.open_store(empty_url)
    auth.create_user(store, "dpo", "privacy_officer", PASSWORD)
    attest(store, "kelas-a", facilitator="Widyaiswara", notice_version="2026-1", language="id", evidence="form 12",
           actor="cli:test")
    at = _open(_app("privacy_officer").run(), "privacy_consent")
    _no_failure(at)
    summary = at.dataframe[0].value
    assert summary[translate("consent.count", "id")].sum() == 1  # the attestation (no cohort) is counted
    assert summary[translate("consent.status", "id")].tolist() == [translate("consent.active", "id")]
    assert not _missing_words(at), _missing_words(at)


def test_privacy_pages_empty_states(empty_url):
    store = queries.open_store(empty_url)
    auth.create_user(store, "dpo", "privacy_officer", PASSWORD)
    at = _app("privacy_officer").run()
    _open(at, "privacy_consent")
    _no_failure(at)
    assert at.info[0].value == translate("consent.empty", "id")
    _open(at, "privacy_requests")
    _no_failure(at)


# -- empty database ----------------------------------------------------------------------------


def test_empty_database_shows_how_to_create_the_first_account(empty_url):
    at = _main_app().run()
    _no_failure(at)
    assert at.info[0].value == translate("auth.no_users", "id")
    assert "users add" in at.code[0].value


def test_empty_database_pages_give_guidance(empty_url):
    store = queries.open_store(empty_url)
    auth.create_user(store, "admin", "admin", PASSWORD)
    at = _app("admin").run()
    _no_failure(at)
    assert at.info[0].value == translate("facilitator.no_sessions", "id")
    assert "engagement analyze" in at.code[0].value
    _open(at, "researcher")
    _no_failure(at)
    assert at.info[0].value == translate("researcher.no_sessions", "id")


def test_unreadable_database_is_one_calm_line(tmp_path, monkeypatch):
    bad = tmp_path / "not-a-db.db"
    bad.write_bytes(b"this is not sqlite" * 100)
    monkeypatch.setenv("ENGAGEMENT_DB", f"sqlite:///{bad}")
    at = _main_app().run()
    assert not at.exception
    assert at.error[0].value.startswith(translate("error.db", "id", detail="")[:20])


# -- language --------------------------------------------------------------------------------


def test_indonesian_by_default_and_english_on_switch(db_url):
    at = _app("facilitator").run()
    assert at.title[0].value == "Sesi kelas"
    at.sidebar.selectbox[0].set_value("en").run()
    assert at.title[0].value == "Class session"
    _no_failure(at)


def test_catalogues_have_the_same_keys_and_cover_every_key_used():
    ids, ens = catalogue("id"), catalogue("en")
    assert set(ids) == set(ens)
    assert all(v.strip() for v in ids.values()) and all(v.strip() for v in ens.values())
    for key in ids:  # same placeholders in both languages
        assert set(re.findall(r"{(\w+)}", ids[key])) == set(re.findall(r"{(\w+)}", ens[key])), key
    used: set[str] = set()
    for path in (ROOT / "dashboard").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        used |= set(re.findall(r"""\b(?:t|tr|translate|empty_state)\(\s*["']([a-z_]+\.[a-z_.0-9]+)["']""", text))
        used |= set(re.findall(r"""empty_state\(\s*["'][a-z_.]+["']\s*,\s*["']([a-z_]+\.[a-z_.0-9]+)["']""", text))
        used |= set(re.findall(r"""\(\s*["'](nav\.[a-z_.]+)["']""", text))
    missing = sorted(k for k in used if k not in ids)
    assert not missing, missing
    # dynamic keys built from known sets
    from dashboard.auth import ROLES
    from engagement.core.i18n import LANGUAGES
    from privacy.audit import AuditAction

    dynamic = [f"role.{r}" for r in ROLES] + [f"lang.{code}" for code in LANGUAGES]
    dynamic += [f"action.{a.value}" for a in AuditAction]
    dynamic += [f"action.{getattr(services, n)}" for n in dir(services) if n.isupper() and isinstance(getattr(services, n), str)]
    dynamic += [f"level.level{i}" for i in range(4)] + ["level.absent", "level.unknown"]
    dynamic += [f"tier.{k}" for k in ("raw_frames", "features", "timelines", "aggregates", "audit")]
    dynamic += [f"status.{s}" for s in ("complete", "running", "failed", "interrupted", "none")]
    from dashboard.charts import STATE_ORDER
    from dashboard.ui import COUNT_KEYS
    from privacy.consent import LANGUAGES as NOTICE_LANGUAGES
    from privacy.consent import SCOPES
    from privacy.profiles import PROFILES

    dynamic += [f"state.{s}" for s in STATE_ORDER] + [f"data.{k}" for k in COUNT_KEYS]
    dynamic += [f"alert.{k}" for k in ("attention_drop", "on_screen_drop", "cameras_off_rise")]
    dynamic += [f"scope.{s}" for s in SCOPES] + [f"lang.{c}" for c in NOTICE_LANGUAGES] + [f"profile.{p}" for p in PROFILES]
    dynamic += [f"consent_kind.{k}" for k in ("participant", "attestation")]
    dynamic += [f"receipt.{k}" for k in ("purge", "erasure", "withdrawal")]
    dynamic += [f"trigger.{k}" for k in ("cli", "analyze", "dashboard", "api", "consent", "subject_request")]
    dynamic += [f"measure.{m}" for m in ("on_screen_share", "score")] + [f"live.view_{v}" for v in ("recent", "all")]
    dynamic += [f"summary.suggest.{s}" for s in ("break", "discussion", "quiz")]
    dynamic += [f"researcher.trend_{m}" for m in ("on_screen_share", "score")]
    dynamic += [f"consent.withdraw_{k}" for k in ("participant", "attestation")]
    assert not [k for k in dynamic if k not in ids]


# Streamlit calls whose first argument (or label-like keyword) is shown to the user.
_UI_CALLS = {
    "title", "header", "subheader", "markdown", "write", "caption", "text", "info", "warning", "error", "success",
    "button", "download_button", "form_submit_button", "selectbox", "multiselect", "radio", "checkbox", "toggle",
    "text_input", "text_area", "number_input", "date_input", "file_uploader", "metric", "expander", "tabs",
    "slider", "select_slider", "toast", "Page", "set_page_config", "code",
}
_UI_KEYWORDS = {"label", "help", "placeholder", "page_title", "title", "caption"}


def _has_words(node: ast.AST) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(re.search(r"[A-Za-z]{2,}", node.value))
    if isinstance(node, ast.JoinedStr):
        return any(_has_words(v) for v in node.values if isinstance(v, ast.Constant))
    return False


def test_no_hard_coded_user_facing_strings_in_pages():
    offenders = []
    files = sorted(PAGES.glob("*.py")) + [ROOT / "dashboard" / "app.py", ROOT / "dashboard" / "charts.py"]
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name not in _UI_CALLS:
                continue
            candidates = node.args[:1] + [k.value for k in node.keywords if k.arg in _UI_KEYWORDS]
            for arg in candidates:
                if _has_words(arg):
                    offenders.append(f"{path.name}:{node.lineno} {ast.unparse(arg)[:60]}")
    assert not offenders, offenders


def test_page_roles_cover_every_page_file():
    from dashboard.ui import PAGE_ROLES

    stems = {p.stem for p in PAGES.glob("*.py")} - {"sign_in", "__init__"}
    assert stems == set(PAGE_ROLES)
    # Plain data, reviewable at a glance: it survives JSON unchanged (tuples read back as lists).
    assert json.loads(json.dumps(PAGE_ROLES)) == {page: list(roles) for page, roles in PAGE_ROLES.items()}
    # Every page opens to at least one real role, always to admin (who sets the others up), and
    # the users page to admin alone.
    from dashboard.auth import ROLES

    for page, roles in PAGE_ROLES.items():
        assert roles and set(roles) <= set(ROLES) and "admin" in roles, (page, roles)
    assert PAGE_ROLES["users"] == ("admin",)


def test_users_page_shows_local_minutes_not_raw_timestamps(db_url):
    at = _open(_app("admin").run(), "users")
    _no_failure(at)
    created = at.dataframe[0].value[translate("users.created", "id")]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", v) for v in created), created.tolist()
