"""Two processes writing shared bookkeeping at once (a batch's analyses starting together): each
read-then-write step takes its turn, on SQLite and on PostgreSQL, so neither fails on a primary
key and nothing is recorded twice."""

from __future__ import annotations

import threading
import time

import pytest

from sqlalchemy import func, select

from engagement.core import schema
from engagement.core.store import Store
from privacy.audit import AuditAction, AuditLog
from privacy.retention import load_policy, note_policy


def _overlap(store: Store, first, second) -> list:
    """Run `first(conn)` in a transaction held open while `second(conn)` starts in another;
    returns what `second` returned or raised."""
    inside, release, outcome = threading.Event(), threading.Event(), []

    def hold():
        with store.transaction() as conn:
            first(conn)
            inside.set()
            release.wait(20)

    def follow():
        try:
            with store.transaction() as conn:
                outcome.append(second(conn))
        except Exception as exc:  # the failure this test is about: reported, not raised in a thread
            outcome.append(exc)

    a = threading.Thread(target=hold)
    a.start()
    assert inside.wait(20)
    b = threading.Thread(target=follow)
    b.start()
    time.sleep(0.5)  # let the second transaction reach its write while the first is still open
    release.set()
    a.join()
    b.join()
    return outcome


@pytest.fixture
def store(db_url):
    store = Store.open(db_url)
    yield store
    store.close()


def test_a_policy_seen_by_two_writers_at_once_is_recorded_once(store):
    policy = load_policy(None)
    outcome = _overlap(
        store,
        lambda conn: note_policy(store, policy, conn, "cli:first"),
        lambda conn: note_policy(store, policy, conn, "cli:second"),
    )
    assert outcome == [False]
    with store.transaction() as conn:
        a = schema.audit_log
        changes = conn.execute(
            select(func.count()).where(a.c.action == AuditAction.POLICY_CHANGE.value)
        ).scalar_one()
    assert changes == 1


def test_two_audit_entries_appended_at_once_both_land_in_one_chain(store):
    log = AuditLog(store)
    outcome = _overlap(
        store,
        lambda conn: log.record(AuditAction.EXPORT, "cli:first", {"n": 1}, conn=conn),
        lambda conn: log.record(AuditAction.EXPORT, "cli:second", {"n": 2}, conn=conn),
    )
    assert len(outcome) == 1 and not isinstance(outcome[0], Exception), outcome
    result = log.verify()
    assert result.ok and result.last_seq == 2, result
