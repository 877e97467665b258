"""Shared fixtures. Tests that need the public data set read it by path and skip where it is
absent (a user's fresh machine), except when ENGAGEMENT_REQUIRE_DATA=1 (CI): then they fail."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from engagement.config import shared_data_dir
from postgres_server import PostgresServer


def require_shared(relative: str) -> Path:
    """Path to a file or folder under the shared data directory, or skip/fail when absent."""
    path = shared_data_dir() / relative
    if not path.exists():
        message = f"shared data not found: {path} (set ENGAGEMENT_SHARED_DATA)"
        if os.environ.get("ENGAGEMENT_REQUIRE_DATA") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def another_programs_database(path: Path) -> bytes:
    """An SQLite file of some other program (a contacts list) at `path`; returns its bytes, so a
    test can check the file was left exactly as it was."""
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('Budi', '0812')")
    conn.commit()
    conn.close()
    return path.read_bytes()


@pytest.fixture
def videos_dir() -> Path:
    return require_shared("videos")


@pytest.fixture(autouse=True)
def isolated_data_dir(tmp_path, monkeypatch) -> Path:
    """Every test gets its own data directory and database; nothing touches the user's."""
    data = tmp_path / "engagement-data"
    monkeypatch.setenv("ENGAGEMENT_DATA_DIR", str(data))
    monkeypatch.delenv("ENGAGEMENT_DB", raising=False)
    return data


@pytest.fixture(scope="session")
def postgres_server():
    """One throw-away PostgreSQL server for the whole run (see tests/postgres_server.py)."""
    server = PostgresServer()
    try:
        server.start()
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        server.stop()
        detail = getattr(exc, "stderr", "") or str(exc)
        message = f"no PostgreSQL server for the postgres tests: {detail.strip()}"
        if os.environ.get("ENGAGEMENT_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres_server) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path) -> str:
    """The same test against SQLite and a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'engagement.db'}"
    return request.getfixturevalue("pg_url")
