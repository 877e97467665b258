"""Two processes writing shared bookkeeping at once (a batch's analyses starting together): each
read-then-write step takes its turn, on SQLite and on PostgreSQL, so neither fails on a primary
key and nothing is recorded twice."""

from __future__ import annotations

import threading

import pytest

from sqlalchemy import event, func, select

from engagement.core import schema
from engagement.core.store import Store
from privacy.audit import AuditAction, AuditLog
from privacy.retention import load_policy, note_policy


def _is_write_turn(statement: str) -> bool:
    """The statement `take_write_turn` sends on either database (see engagement.core.store)."""
    return "pg_advisory_xact_lock" in statement or statement.lstrip().upper().startswith("DELETE FROM META")


def _overlap(store: Store, first, second) -> list:
    """Run `first(conn)` in a transaction held open while `second(conn)` starts in another;
    returns what `second` returned or raised.

    The first transaction is released only once the second has either asked for the write turn
    (it then waits on it) or finished a statement without asking (a read inside the first's
    open transaction: the overlap a missing write turn lets through, which the callers' checks
    then catch). Events from the second thread's own statements say which; no sleep guesses."""
    inside, release, outcome = threading.Event(), threading.Event(), []
    follower: list[threading.Thread] = []

    def before(_conn, _cursor, statement, *_args) -> None:
        if follower and threading.current_thread() is follower[0] and _is_write_turn(statement):
            release.set()

    def after(_conn, _cursor, statement, *_args) -> None:
        if follower and threading.current_thread() is follower[0]:
            release.set()

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

    event.listen(store.engine, "before_cursor_execute", before)
    event.listen(store.engine, "after_cursor_execute", after)
    try:
        a = threading.Thread(target=hold)
        a.start()
        assert inside.wait(20)
        follower.append(threading.Thread(target=follow))
        follower[0].start()
        a.join()
        follower[0].join()
        assert release.is_set(), "the second transaction never reached the database"
    finally:
        event.remove(store.engine, "before_cursor_execute", before)
        event.remove(store.engine, "after_cursor_execute", after)
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
