"""Keyed pseudonyms and cohort keys (crypto-shredding)."""

from __future__ import annotations

import os
import stat

import pytest
from sqlalchemy import select

from engagement.core import schema
from engagement.core.errors import ConfigError
from engagement.core.store import Store
from privacy.audit import AuditAction, AuditLog
from privacy.errors import CohortKeyError
from privacy.pseudonym import KeyRing, key_path


@pytest.fixture
def store(isolated_data_dir):
    s = Store.open(f"sqlite:///{isolated_data_dir / 'test.db'}")
    yield s
    s.close()


def test_key_file_apart_and_private(store, isolated_data_dir):
    ring = KeyRing(store)
    p1 = ring.pseudonym("Siti@Example.go.id", "latsar")
    path = key_path("latsar")
    assert path.parent == isolated_data_dir / "keys" and path.exists()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    # Deterministic across instances; normalised identity; cohort-specific.
    assert KeyRing().pseudonym(" siti@example.GO.id ", "latsar") == p1
    assert KeyRing().pseudonym("siti@example.go.id", "other") != p1
    assert p1.startswith("p-") and len(p1) == 42
    assert AuditLog(store).entries(action=AuditAction.KEY_CREATED)[0].details["cohort"] == "latsar"


def test_destroyed_key_breaks_the_link(store):
    ring = KeyRing(store)
    old = ring.pseudonym("siti@example.go.id", "latsar")
    fp = ring.destroy("latsar")
    assert not key_path("latsar").exists()
    with pytest.raises(CohortKeyError, match="no key"):
        KeyRing().lookup("siti@example.go.id", "latsar")
    # Using the cohort again makes a new key: the same identity no longer maps to the old pseudonym.
    assert KeyRing(store).pseudonym("siti@example.go.id", "latsar") != old
    with store.transaction() as conn:
        events = [(r.event, r.fingerprint) for r in conn.execute(select(schema.cohort_key_events).order_by(schema.cohort_key_events.c.id))]
    assert events[0][0] == "created" and ("destroyed", fp) in events and events[-1][0] == "created"
    destroyed = AuditLog(store).entries(action=AuditAction.KEY_DESTROYED)
    assert destroyed[0].details == {"cohort": "latsar", "fingerprint": fp}
    with pytest.raises(CohortKeyError):
        KeyRing(store).destroy("never-used")


def test_refuses_loose_or_corrupt_key(store):
    ring = KeyRing()
    ring.pseudonym("a", "c1")
    path = key_path("c1")
    os.chmod(path, 0o644)
    with pytest.raises(CohortKeyError, match="chmod 600"):
        KeyRing().pseudonym("a", "c1")
    os.chmod(path, 0o600)
    path.write_text("nonsense\n")
    with pytest.raises(CohortKeyError, match="corrupt"):
        KeyRing().pseudonym("a", "c1")


@pytest.mark.parametrize("bad", ["../x", ".hidden", "a/b", "x" * 65, "spa ce"])
def test_cohort_names_cannot_escape(bad):
    with pytest.raises(ConfigError, match="cohort name"):
        KeyRing().pseudonym("a", bad)


def test_cli_keys_destroy(store, capsys):
    from engagement.cli.main import main

    KeyRing(store).pseudonym("a", "c1")
    # Without --yes and without a terminal: refused, nothing destroyed.
    assert main(["privacy", "keys", "destroy", "c1", "--db", store.url]) == 2
    assert key_path("c1").exists()
    assert main(["privacy", "keys", "destroy", "c1", "--yes", "--db", store.url]) == 0
    assert not key_path("c1").exists()


def test_keys_destroy_on_a_locked_database_keeps_the_key(store, isolated_data_dir):
    """The real command in a subprocess while another program holds the database's write lock:
    one error line, exit 2, the key file untouched, nothing recorded. Released, it goes through."""
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    KeyRing(store).pseudonym("a", "c1")
    path = key_path("c1")
    key_text = path.read_text()
    command = [sys.executable, "-m", "engagement.cli.main", "privacy", "keys", "destroy", "c1", "--yes", "--db", store.url]
    env = {**os.environ, "ENGAGEMENT_DATA_DIR": str(isolated_data_dir)}
    root = Path(__file__).resolve().parent.parent
    locker = sqlite3.connect(store.url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root)
    finally:
        locker.close()
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1 and "locked" in done.stderr
    assert path.read_text() == key_text
    with store.transaction() as conn:
        assert [r.event for r in conn.execute(select(schema.cohort_key_events))] == ["created"]
    assert AuditLog(store).entries(action=AuditAction.KEY_DESTROYED) == []

    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=root)
    assert done.returncode == 0, done.stderr
    assert not path.exists()
    with store.transaction() as conn:
        assert [r.event for r in conn.execute(select(schema.cohort_key_events))] == ["created", "destroyed"]
    assert len(AuditLog(store).entries(action=AuditAction.KEY_DESTROYED)) == 1


def _key_of(cohort: str, barrier, out) -> None:
    barrier.wait()
    try:
        out.put(KeyRing().key(cohort).hex())
    except Exception as exc:  # noqa: BLE001 - the test reports whatever a racing process met
        out.put(f"error: {exc}")


def test_processes_creating_one_cohort_key_at_once_all_get_the_same_whole_key(isolated_data_dir):
    # Batch workers on one machine make a new cohort's key at the same moment. Before, the key file
    # was created empty and then written, and a worker reading it in between found it "corrupt".
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    for round_ in range(12):
        cohort, n = f"race-{round_}", 6
        barrier, out = ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_key_of, args=(cohort, barrier, out)) for _ in range(n)]
        for p in procs:
            p.start()
        keys = [out.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(timeout=60)
        assert len(set(keys)) == 1 and not keys[0].startswith("error"), keys
        assert KeyRing().key(cohort).hex() == keys[0]
    leftovers = [p.name for p in key_path("x").parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
