"""Shared fixtures. Tests that need the public data set read it by path and skip where it is
absent (a user's fresh machine), except when ENGAGEMENT_REQUIRE_DATA=1 (CI): then they fail.
The same holds for the PostgreSQL server (ENGAGEMENT_REQUIRE_POSTGRES=1) and the browser
(ENGAGEMENT_REQUIRE_BROWSER=1). As a second lock, a test marked `data`, `postgres` or `browser`
that was skipped for any reason while its variable is set fails the whole run at the end, with
the list of those tests: CI cannot pass having silently run fewer tests than it should."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from engagement.core.config import shared_data_dir
from postgres_server import PostgresServer


# Marker -> the variable under which a skip of a test so marked fails the run.
REQUIRED_BY_MARKER = {
    "data": "ENGAGEMENT_REQUIRE_DATA",
    "postgres": "ENGAGEMENT_REQUIRE_POSTGRES",
    "browser": "ENGAGEMENT_REQUIRE_BROWSER",
}
_FORBIDDEN_SKIPS_KEY = pytest.StashKey[list]()


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives a real browser (Debian's system chromium)")
    config.stash[_FORBIDDEN_SKIPS_KEY] = []


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not report.skipped or hasattr(report, "wasxfail"):
        return
    for marker, variable in REQUIRED_BY_MARKER.items():
        if os.environ.get(variable) == "1" and item.get_closest_marker(marker) is not None:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            item.config.stash[_FORBIDDEN_SKIPS_KEY].append(f"{item.nodeid} [{marker}, {variable}=1]: {reason}")
            return


def pytest_sessionfinish(session, exitstatus):
    if session.config.stash.get(_FORBIDDEN_SKIPS_KEY, None) and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = config.stash.get(_FORBIDDEN_SKIPS_KEY, None)
    if skipped:
        terminalreporter.section("required tests that skipped (the run fails)", red=True)
        for line in skipped:
            terminalreporter.line(line)


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


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built once per run (tests/installed_wheel.py)."""
    from installed_wheel import build_wheel

    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture(scope="session")
def wheel_env(wheel, tmp_path_factory):
    """A fresh virtual environment with the wheel installed, once per run."""
    from installed_wheel import fresh_env

    return fresh_env(wheel, tmp_path_factory.mktemp("fresh") / "venv")
