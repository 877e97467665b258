"""The hash-chained audit log: verify names an edited, deleted or reordered entry."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select, update

from engagement.store import Store
from privacy import tables
from privacy.audit import AuditAction, AuditLog, anchor_path
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


def kinds(result) -> list[tuple[int, str]]:
    return [(p.seq, p.kind) for p in result.problems]


def test_chain_links_and_intact(log):
    entries = log.entries()
    assert [e.seq for e in entries] == list(range(1, 7))
    assert entries[0].prev_hash == "0" * 64
    assert all(b.prev_hash == a.hash for a, b in zip(entries, entries[1:]))
    assert log.verify().summary().startswith("audit log intact: 6 entries")


def test_detects_edit(store, log):
    with store.transaction() as conn:
        conn.execute(update(tables.audit_log).where(tables.audit_log.c.seq == 3).values(details='{"run_id":99}'))
    result = log.verify()
    assert kinds(result) == [(3, "edited")]
    assert "entry 3 was edited" in result.problems[0].message


def test_detects_edit_with_recomputed_hash(store, log):
    from privacy.audit import entry_hash

    t = tables.audit_log
    with store.transaction() as conn:
        row = conn.execute(select(t).where(t.c.seq == 4)).one()
        forged = '{"run_id":40}'
        from privacy.timeutil import as_utc

        h = entry_hash(row.prev_hash, as_utc(row.at), row.action, row.actor, forged, row.correlation_id)
        conn.execute(update(t).where(t.c.seq == 4).values(details=forged, hash=h))
    assert kinds(log.verify()) == [(4, "edited")]


def test_detects_delete(store, log):
    with store.transaction() as conn:
        conn.execute(delete(tables.audit_log).where(tables.audit_log.c.seq == 2))
    result = log.verify()
    assert kinds(result) == [(2, "deleted")]
    assert "entry 2 deleted" in result.problems[0].message


def test_detects_deleted_tail_by_anchor(store, log):
    assert anchor_path(store.url).exists()
    with store.transaction() as conn:
        conn.execute(delete(tables.audit_log).where(tables.audit_log.c.seq >= 5))
    result = log.verify()
    assert kinds(result) == [(5, "truncated")]
    assert "entries 5..6 deleted" in result.problems[0].message


def test_detects_reorder(store, log):
    t = tables.audit_log
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
    from engagement.cli import main

    assert main(["privacy", "audit", "verify", "--db", store.url]) == 0
    with store.transaction() as conn:
        conn.execute(update(tables.audit_log).where(tables.audit_log.c.seq == 5).values(actor="someone-else"))
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
