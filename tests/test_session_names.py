"""One check of a session name for every way one enters: control characters are refused with an
`error:` line everywhere (never stripped in one place and kept in another), and `sessions list`
never prints one raw."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from sqlalchemy import insert

from engagement.cli.main import main
from engagement.core import schema
from engagement.core.store import Store

BAD = ["\t=1+1", "hari\x1b[31m1", "hari\n1", "hari 1\r", " hari 1"]
TERMS = ["--notice-version", "v1", "--language", "id", "--evidence", "form"]


def _refused(capsys, rc: int) -> str:
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and "session name" in err, err
    return err


@pytest.fixture
def db(isolated_data_dir) -> str:
    return f"sqlite:///{isolated_data_dir / 'names.db'}"


@pytest.mark.parametrize("name", BAD)
def test_attest_analyze_live_and_batch_refuse_the_same_names(name, db, tmp_path, capsys):
    _refused(capsys, main(["privacy", "consent", "attest", name, "--by", "wi@x.id", *TERMS, "--db", db]))
    video = tmp_path / "a.mp4"
    video.write_bytes(b"")
    _refused(capsys, main(["analyze", str(video), "--session", name, "--db", db]))
    _refused(capsys, main(["live", "--source", "webcam:0", "--session", name, "--db", db]))
    listing = tmp_path / "list.csv"
    listing.write_text(f'file,session\na.mp4,"{name}"\n', encoding="utf-8")
    err = _refused(capsys, main(["batch", str(listing), "--db", db]))
    assert "line 2" in err


def test_the_dashboard_attestation_form_refuses_them_too(db):
    from dashboard import services
    from privacy.errors import ConsentError

    store = Store.open(db)
    try:
        with pytest.raises(ConsentError, match="control characters"):
            services.consent_attest(store, "\t=1+1", "wi@x.id", None, ["facilitator_feedback"], "v1", "id", "form",
                                    "attested on paper", "dashboard:dpo")
    finally:
        store.close()


def test_sessions_list_never_prints_a_control_character(db, capsys):
    """A name stored by an older version (or written around this software) is shown escaped."""
    store = Store.open(db)
    try:
        with store.transaction() as conn:
            conn.execute(insert(schema.sessions).values(
                name="hari\x1b[2J\n1", created_at=datetime(2026, 1, 1, tzinfo=timezone.utc)))
    finally:
        store.close()
    assert main(["sessions", "list", "--db", db]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "hari\\x1b[2J\\n1" in out
