"""The hash-chained audit log: verify names an edited, deleted or reordered entry."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import delete, insert, select, update

from engagement.core import schema
from engagement.core.errors import StoreError
from engagement.core.store import Store
from engagement.core.time import utcnow
from privacy.audit import AuditAction, AuditLog, anchor_path, database_id
from privacy.errors import AuditError


@pytest.fixture
def store(isolated_data_dir):
    s = Store.open(f"sqlite:///{isolated_data_dir / 'test.db'}")
    yield s
    s.close()


@pytest.fixture
def log(store) -> AuditLog:
    log = AuditLog(store)
    for i in range(1, 7):
        log.record(AuditAction.ANALYSIS_RUN, "cli:test", {"run_id": i, "participants": [f"p-{i:040d}"]})
    assert log.verify().ok
    return log


def db_id(store) -> str:
    with store.transaction() as conn:
        return database_id(conn)


def kinds(result) -> list[tuple[int, str]]:
    return [(p.seq, p.kind) for p in result.problems]


def test_chain_links_and_intact(log):
    entries = log.entries()
    assert [e.seq for e in entries] == list(range(1, 7))
    assert entries[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))
    assert log.verify().summary().startswith("audit log intact: 6 entries")


def _edit_entry_3(conn):
    conn.execute(update(schema.audit_log).where(schema.audit_log.c.seq == 3).values(details='{"run_id":99}'))


def _delete_entry_2(conn):
    conn.execute(delete(schema.audit_log).where(schema.audit_log.c.seq == 2))


@pytest.mark.parametrize(
    "tamper, expected, message",
    [(_edit_entry_3, (3, "edited"), "entry 3 was edited"), (_delete_entry_2, (2, "deleted"), "entry 2 deleted")],
)
def test_detects_edit_and_delete(store, log, tamper, expected, message):
    with store.transaction() as conn:
        tamper(conn)
    result = log.verify()
    assert kinds(result) == [expected]
    assert message in result.problems[0].message


def test_detects_edit_with_recomputed_hash(store, log):
    from privacy.audit import entry_hash

    t = schema.audit_log
    with store.transaction() as conn:
        row = conn.execute(select(t).where(t.c.seq == 4)).one()
        forged = '{"run_id":40}'
        from engagement.core.time import as_utc

        h = entry_hash(row.prev_hash, as_utc(row.at), row.action, row.actor, forged, row.correlation_id)
        conn.execute(update(t).where(t.c.seq == 4).values(details=forged, hash=h))
    assert kinds(log.verify()) == [(4, "edited")]


def test_detects_deleted_tail_by_anchor(store, log):
    assert anchor_path(db_id(store)).exists()
    with store.transaction() as conn:
        conn.execute(delete(schema.audit_log).where(schema.audit_log.c.seq >= 5))
    result = log.verify()
    assert kinds(result) == [(5, "truncated")]
    assert "entries 5..6 deleted" in result.problems[0].message


def test_detects_reorder(store, log):
    t = schema.audit_log
    with store.transaction() as conn:
        conn.execute(update(t).where(t.c.seq == 3).values(seq=-1))
        conn.execute(update(t).where(t.c.seq == 4).values(seq=3))
        conn.execute(update(t).where(t.c.seq == -1).values(seq=4))
    result = log.verify()
    assert ("reordered" in {p.kind for p in result.problems}) and result.problems[0].seq == 3
    assert all(p.kind == "reordered" for p in result.problems)
    assert "entry 3 is out of order" in result.problems[0].message


def test_record_inside_callers_transaction_rolls_back(store, log):
    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with store.transaction() as conn:
            log.record(AuditAction.EXPORT, "cli:test", {"rows": 1}, conn=conn)
            raise Boom
    assert len(log.entries()) == 6 and log.verify().ok
    with store.transaction() as conn:
        log.record(AuditAction.EXPORT, "cli:test", {"rows": 1}, correlation_id="run-7", conn=conn)
    assert log.entries()[-1].correlation_id == "run-7" and log.verify().ok


@pytest.mark.parametrize("details", [{"email": "a@b"}, {"x": {"name": "Siti"}}, {"img": b"\x89PNG"}])
def test_refuses_personal_data(log, details):
    with pytest.raises(AuditError):
        log.record(AuditAction.EXPORT, "cli:test", details)
    assert len(log.entries()) == 6


def test_cli_verify_exit_codes(store, log, capsys):
    from engagement.cli.main import main

    assert main(["privacy", "audit", "verify", "--db", store.url]) == 0
    with store.transaction() as conn:
        conn.execute(update(schema.audit_log).where(schema.audit_log.c.seq == 5).values(actor="someone-else"))
    assert main(["privacy", "audit", "verify", "--db", store.url]) == 1
    out = capsys.readouterr().out
    assert "TAMPERED" in out and "entry 5: edited" in out
    assert main(["privacy", "audit", "list", "--db", store.url, "--action", "nonsense"]) == 2


def test_concurrent_writers_keep_one_chain(store):
    import threading

    errors = []

    def writer(k):
        log = AuditLog(store)
        try:
            for i in range(15):
                log.record(AuditAction.EXPORT, f"cli:w{k}", {"i": i})
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    result = AuditLog(store).verify()
    assert result.ok and result.entries == 45


# -- the anchor: every committed entry, also those written inside a caller's transaction ---------


def _delete_newest(store, n: int) -> None:
    t = schema.audit_log
    with store.transaction() as conn:
        newest = [r[0] for r in conn.execute(select(t.c.seq).order_by(t.c.seq.desc()).limit(n))]
        conn.execute(delete(t).where(t.c.seq.in_(newest)))


def _verify_cli(store, capsys) -> tuple[int, str]:
    from engagement.cli.main import main

    rc = main(["privacy", "audit", "verify", "--db", store.url])
    return rc, capsys.readouterr().out


CONSENT = dict(notice_version="v1", language="id", evidence="form")


def _grant(store):
    from privacy import consent

    consent.grant(store, "siti@x.id", cohort="c1", **CONSENT)


def _attest(store):
    from privacy import consent

    consent.attest(store, "hari-1", facilitator="wi@x.id", cohort="c1", **CONSENT)


def _withdraw(store):
    from privacy import consent

    consent.withdraw(store, "siti@x.id", cohort="c1")


def _withdraw_attestation(store):
    from privacy import consent

    consent.withdraw_attestation(store, "hari-1")


def _import(store):
    from privacy.roster import import_roster, parse_roster

    roster = parse_roster({"cohort": "c1", "participants": [{"identity": "a@x.id"}, {"identity": "b@x.id"}]})
    import_roster(store, roster, **CONSENT)


def _purge(store):
    from privacy.retention import load_policy, purge

    purge(store, load_policy(), trigger="cli")


def _destroy_key(store):
    from privacy.pseudonym import KeyRing

    KeyRing(store).destroy("c1")


def _erase(store):
    from privacy.subjects import erase

    erase(store, "siti@x.id", cohort="c1")


# action -> what must exist before it (its own entries are the newest ones afterwards)
IN_TRANSACTION = {
    "consent_granted": ([], _grant),
    "consent_attested": ([], _attest),
    "consent_withdrawn": ([_grant], _withdraw),
    "attestation_withdrawn": ([_attest], _withdraw_attestation),
    "consent_imported": ([], _import),
    "purge": ([], _purge),
    "key_destroyed": ([_grant], _destroy_key),
    "subject_erasure": ([_grant], _erase),
}


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("action", sorted(IN_TRANSACTION))
def test_deleting_newest_entries_after_an_in_transaction_action_is_detected(store, log, action, n, capsys):
    setup, act = IN_TRANSACTION[action]
    for step in setup:
        step(store)
    act(store)
    assert _verify_cli(store, capsys)[0] == 0
    last = log.entries()[-1].seq
    _delete_newest(store, n)
    rc, out = _verify_cli(store, capsys)
    assert rc == 1
    first = last - n + 1
    span = f"entry {last}" if n == 1 else f"entries {first}..{last}"
    assert f"entry {first}: truncated: {span} deleted from the end of the log" in out, out


def test_a_failed_commit_puts_the_anchor_back(store, log, monkeypatch):
    """The anchor moves on just before the commit; a commit that then fails restores it."""
    import sqlite3

    path = anchor_path(db_id(store))
    before = path.read_text()

    def refuse(dbapi_connection):
        raise sqlite3.OperationalError("database is locked")

    with monkeypatch.context() as patched:
        patched.setattr(store.engine.dialect, "do_commit", refuse)
        with pytest.raises(StoreError, match="locked"):
            with store.transaction() as conn:
                log.record(AuditAction.EXPORT, "cli:test", {"rows": 1}, conn=conn)
    assert path.read_text() == before
    assert len(log.entries()) == 6 and log.verify().ok


def test_an_unwritable_anchor_stops_the_action(store, log, isolated_data_dir):
    from privacy import consent

    path = anchor_path(db_id(store))
    path.unlink()
    path.parent.rmdir()
    path.parent.write_text("in the way")  # the anchor directory cannot be made
    with pytest.raises(AuditError, match="cannot write the audit anchor"):
        with store.transaction() as conn:
            log.record(AuditAction.EXPORT, "cli:test", {"rows": 1}, conn=conn)
    with pytest.raises(AuditError, match="cannot write the audit anchor"):
        consent.grant(store, "siti@x.id", cohort="c1", **CONSENT)
    assert len(log.entries()) == 6
    with store.transaction() as conn:
        assert conn.execute(select(schema.consent_records)).first() is None


def _write_anchor(store, **changes) -> None:
    import json

    path = anchor_path(db_id(store))
    anchor = json.loads(path.read_text())
    anchor.update(changes)
    path.write_text(json.dumps(anchor))


def test_missing_or_rewritten_anchor_fails(store, log, capsys):
    path = anchor_path(db_id(store))
    good = path.read_text()
    entries = log.entries()

    path.unlink()
    rc, out = _verify_cli(store, capsys)
    assert rc == 1 and "entry 6: anchor: the anchor file" in out and "is missing" in out and "re-anchor" in out

    path.write_text("{not json")
    rc, out = _verify_cli(store, capsys)
    assert rc == 1 and "unreadable or malformed" in out

    rewritten_anchors = [
        ({"hash": "f" * 64}, "entry 6: edited: entry 6 differs from the copy anchored outside the database"),
        # An older, genuine anchor: the last two entries are unanchored.
        ({"seq": 4, "hash": entries[3].hash}, "entry 5: unanchored: entries 5..6 not anchored"),
        ({"database_id": "0" * 32}, "belongs to another database"),
    ]
    for fields, expected in rewritten_anchors:
        path.write_text(good)
        _write_anchor(store, **fields)
        rc, out = _verify_cli(store, capsys)
        assert rc == 1 and expected in out, out

    path.write_text(good)
    assert _verify_cli(store, capsys)[0] == 0


def test_missing_database_id_fails(store, log):
    from engagement.core import schema

    with store.transaction() as conn:
        conn.execute(delete(schema.meta).where(schema.meta.c.key == "database_id"))
    result = log.verify()
    assert kinds(result) == [(6, "anchor")] and "no database id" in result.problems[0].message


def test_empty_log_needs_no_anchor(store):
    assert AuditLog(store).verify().ok


def test_anchor_follows_a_moved_database(store, log, isolated_data_dir):
    """The anchor is found by the database's id, not its URL: a copy moved elsewhere is still
    checked, and a deletion at its end is still caught."""
    import shutil

    store.close()
    moved = isolated_data_dir / "elsewhere" / "moved.db"
    moved.parent.mkdir()
    shutil.copy(isolated_data_dir / "test.db", moved)
    other = Store.open(f"sqlite:///{moved}")
    try:
        assert AuditLog(other).verify().ok
        _delete_newest(other, 1)
        assert kinds(AuditLog(other).verify()) == [(6, "truncated")]
    finally:
        other.close()


def test_reanchor_accepts_a_restore_and_is_audited(store, log, capsys):
    from engagement.cli.main import main

    _delete_newest(store, 2)  # e.g. the database restored from a backup two entries old
    assert _verify_cli(store, capsys)[0] == 1
    assert main(["privacy", "audit", "re-anchor", "--reason", "   ", "--db", store.url]) == 2
    assert "give the reason" in capsys.readouterr().err
    assert main(["privacy", "audit", "re-anchor", "--reason", "restored the 1 May backup", "--db", store.url]) == 0
    assert "re-anchored at entry 5" in capsys.readouterr().out
    rc, out = _verify_cli(store, capsys)
    assert rc == 0, out
    entry = log.entries()[-1]
    assert entry.action == AuditAction.AUDIT_REANCHORED.value
    assert entry.details["reason"] == "restored the 1 May backup"
    assert entry.details["problems"] == [{"seq": 5, "kind": "truncated"}] and entry.details["anchored_seq"] == 6
    assert entry.actor.startswith("cli:")
    # Re-anchoring resets the outside witness only: a gap inside the chain is still reported.
    with store.transaction() as conn:
        conn.execute(delete(schema.audit_log).where(schema.audit_log.c.seq == 2))
    AuditLog(store).reanchor("again", "cli:test")
    assert kinds(log.verify()) == [(2, "deleted")]


def test_actions_must_come_from_the_enum(log):
    with pytest.raises(AuditError, match="not an AuditAction"):
        log.record("export", "cli:test", {"rows": 1})
    assert len(log.entries()) == 6


def test_command_line_actions_name_the_os_account(store, capsys):
    """One actor resolution: every command-line action records resolve_actor()."""
    from engagement.cli.main import main
    from privacy.audit import resolve_actor
    from privacy.pseudonym import KeyRing

    actor = resolve_actor()
    assert actor.startswith("cli:") and len(actor) > 4
    KeyRing(store).pseudonym("a", "c1")
    assert main(["privacy", "keys", "destroy", "c1", "--yes", "--db", store.url]) == 0
    assert main(["privacy", "purge", "--yes", "--db", store.url]) == 0
    capsys.readouterr()
    actors = {e.action: e.actor for e in AuditLog(store).entries()}
    assert actors["key_created"] == actors["key_destroyed"] == actors["purge"] == actor


@pytest.mark.postgres
def test_anchor_on_postgres(pg_url):
    """The commit hook and the database id work the same on PostgreSQL."""
    store = Store.open(pg_url)
    try:
        log = AuditLog(store)
        for i in range(3):
            log.record(AuditAction.EXPORT, "cli:test", {"i": i})
        _grant(store)  # key created (own transaction), consent granted (inside the caller's)
        assert log.verify().ok
        _delete_newest(store, 1)
        assert kinds(log.verify()) == [(5, "truncated")]
        log.reanchor("test restore", "cli:test")
        assert log.verify().ok
    finally:
        store.close()


def test_wiping_the_whole_log_is_detected(store, log):
    """Everything deleted: with the database id left, the anchor names the lost entries; with the
    id removed too, consent records (always written with an entry) give it away."""
    from engagement.core import schema

    _grant(store)
    last = log.entries()[-1].seq
    with store.transaction() as conn:
        conn.execute(delete(schema.audit_log))
    result = log.verify()
    assert kinds(result) == [(1, "truncated")] and f"entries 1..{last} deleted" in result.problems[0].message
    with store.transaction() as conn:
        conn.execute(delete(schema.meta).where(schema.meta.c.key == "database_id"))
    result = log.verify()
    assert kinds(result) == [(1, "truncated")] and "the log and its id were removed" in result.problems[0].message


def test_read_only_commands_open_the_database_read_only(store, log, isolated_data_dir, capsys):
    """verify, list and consent list write nothing: an older schema stays as it is (a writing
    open would upgrade it and leave a backup beside it)."""
    from engagement.cli.main import main
    from engagement.core import schema

    with store.transaction() as conn:
        conn.execute(update(schema.meta).where(schema.meta.c.key == "schema_version").values(value="1"))
    store.close()
    for command in (["audit", "verify"], ["audit", "list"], ["consent", "list"]):
        assert main(["privacy", *command, "--db", store.url]) == 0, command
    capsys.readouterr()
    with store.transaction() as conn:
        version = conn.execute(select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")).scalar()
    assert version == "1"
    assert not list(isolated_data_dir.glob("*.bak"))


def test_an_interrupt_during_the_commit_leaves_anchor_and_log_agreeing(store, log, monkeypatch):
    """Ctrl-C or SIGTERM (a KeyboardInterrupt) right after the anchor moved, or inside the
    database's commit: the transaction is not committed and the anchor is put back."""
    import privacy.audit_anchor as audit

    path = anchor_path(db_id(store))
    before = path.read_text()
    real_replace = audit._replace_file

    def replace_then_interrupt(target, text):
        real_replace(target, text)
        raise KeyboardInterrupt

    def interrupted_commit(dbapi_connection):
        raise KeyboardInterrupt

    for where, name, fake in ((audit, "_replace_file", replace_then_interrupt),
                              (store.engine.dialect, "do_commit", interrupted_commit)):
        with monkeypatch.context() as patched:
            patched.setattr(where, name, fake)
            with pytest.raises(KeyboardInterrupt):
                with store.transaction() as conn:
                    log.record(AuditAction.EXPORT, "cli:test", {"rows": 1}, conn=conn)
        assert path.read_text() == before, name
        assert len(log.entries()) == 6 and log.verify().ok, name


def _forge_checkpoint(store, k: int) -> None:
    """What an attacker with the database but not the anchor's folder can do: delete entries
    1..k and write a checkpoint naming entry k, as a purge of the audit tier would."""
    a, cp = schema.audit_log, schema.audit_checkpoint
    with store.transaction() as conn:
        h = conn.execute(select(a.c.hash).where(a.c.seq == k)).scalar_one()
        conn.execute(delete(a).where(a.c.seq <= k))
        conn.execute(insert(cp).values(id=1, seq=k, hash=h, at=utcnow()))


def test_a_forged_checkpoint_is_tampering(store, log, capsys):
    _forge_checkpoint(store, 3)
    result = log.verify()
    assert not result.ok and (3, "checkpoint") in kinds(result)
    assert "no purge entry records" in " ".join(p.message for p in result.problems)
    rc, out = _verify_cli(store, capsys)
    assert rc == 1 and "TAMPERED" in out


def test_a_forged_checkpoint_stays_tampering_after_re_anchoring(store, log):
    """Re-anchoring accepts the database as it stands, so the anchor then names the forged
    checkpoint; the missing purge entry and receipt still give it away."""
    _forge_checkpoint(store, 4)
    log.reanchor("restored from backup", "cli:test")
    result = log.verify()
    assert kinds(result) == [(4, "checkpoint")]


def test_a_checkpoint_the_anchor_does_not_record_is_tampering(store, log, monkeypatch):
    """A real purge's checkpoint, then the anchor file rewritten without it (an older copy)."""
    import privacy.audit
    from privacy.retention import load_policy, policy_path, purge

    three_days_ago = utcnow() - timedelta(days=3)
    fresh = Store.open(store.url.replace("test.db", "old.db"))
    try:
        monkeypatch.setattr(privacy.audit, "utcnow", lambda: three_days_ago)
        AuditLog(fresh).record(AuditAction.EXPORT, "cli:test", {"rows": 1})
        monkeypatch.undo()
        policy_path().parent.mkdir(parents=True, exist_ok=True)
        policy_path().write_text('[retention]\naudit = "1d"\n')
        purge(fresh, load_policy())
        assert AuditLog(fresh).verify().ok
        path = anchor_path(db_id(fresh))
        anchor = json.loads(path.read_text())
        del anchor["checkpoint"]
        path.write_text(json.dumps(anchor))
        assert kinds(AuditLog(fresh).verify()) == [(1, "checkpoint")]
    finally:
        fresh.close()


def test_a_wiped_log_and_meta_table_read_as_tampering(store, log, capsys):
    """`delete from audit_log; delete from meta` used to read as "another program's database"."""
    with store.transaction() as conn:
        conn.execute(delete(schema.audit_log))
        conn.execute(delete(schema.meta))
    rc, out = _verify_cli(store, capsys)
    assert rc == 1 and "TAMPERED" in out and "meta table was emptied" in out
    assert "another program" not in out + capsys.readouterr().err
    with pytest.raises(StoreError, match="reads as tampering"):
        Store.open(store.url)
