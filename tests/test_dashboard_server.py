"""`engagement dashboard` as a process: signals, a busy port, a fresh machine, the demo database.

Each test runs the real command in a subprocess on a free port (its own process group, so the
test can see whether anything is left behind and clean up whatever is).
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from dashboard import auth, queries
from engagement.cli.dashboard import CONFIG, streamlit_flags

ROOT = Path(__file__).resolve().parent.parent
ENGAGEMENT = [sys.executable, "-m", "engagement.cli.main"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ENGAGEMENT_DB", "DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    home = tmp_path / "home"  # a fresh machine: no ~/.streamlit, no credentials file
    home.mkdir(exist_ok=True)
    env.update(HOME=str(home), ENGAGEMENT_DATA_DIR=str(tmp_path / "data"), **extra)
    return env


def _start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [*ENGAGEMENT, "dashboard", *args],
        env=env, cwd=str(log.parent), stdin=subprocess.DEVNULL, stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def _wait_healthy(port: int, proc: subprocess.Popen, log: Path, bound_s: float = 240) -> None:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dashboard exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"dashboard never answered on port {port}: {log.read_text()[-2000:]}")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_group_gone(pgid: int, bound_s: float = 30) -> bool:
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return True
        time.sleep(0.2)
    return False


def _port_answers(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def cleanup():
    procs: list[subprocess.Popen] = []
    yield procs.append
    for proc in procs:
        if _group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


# -- signals -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_signal_to_the_command_leaves_no_server_behind(tmp_path, cleanup, sig):
    port = _free_port()
    log = tmp_path / "dashboard.log"
    proc = _start(["--port", str(port)], _env(tmp_path), log)
    cleanup(proc)
    _wait_healthy(port, proc, log)
    os.kill(proc.pid, sig)  # the command only, as `kill` or a service manager would
    proc.wait(timeout=60)
    # Nothing of the process group may survive it (a child server would keep the port).
    assert _wait_group_gone(proc.pid), log.read_text()[-2000:]
    assert not _port_answers(port)
    # And the next start on the same port serves.
    again = _start(["--port", str(port)], _env(tmp_path), tmp_path / "again.log")
    cleanup(again)
    _wait_healthy(port, again, tmp_path / "again.log")
    again.send_signal(signal.SIGTERM)
    assert again.wait(timeout=60) == 0


def test_a_busy_port_is_one_error_line_and_exit_2(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(
            [*ENGAGEMENT, "dashboard", "--port", str(port)],
            env=_env(tmp_path), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and f"port {port}" in lines[0] and "--port" in lines[0]
    assert not (tmp_path / "data").exists()  # refused before the database was touched


# -- a fresh machine: headless, no prompt, no browser without a display ------------------------


def _fake_browser(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """PATH and BROWSER pointing at a script that records being asked to open anything."""
    marker = tmp_path / "browser-opened"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "fake-browser"
    script.write_text(f'#!/bin/sh\necho "$@" >> {marker}\n')
    script.chmod(0o755)
    for name in ("xdg-open", "sensible-browser", "x-www-browser", "www-browser", "gio"):
        (bin_dir / name).symlink_to(script)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "BROWSER": str(script)}, marker


@pytest.mark.slow
def test_demo_serves_headless_on_a_fresh_machine_from_its_own_database(tmp_path, cleanup):
    # The README's path on a new machine: no ~/.streamlit, stdin closed, no display. The demo is
    # analysed into its own database on first use, the server answers, and nothing prompts.
    extra, marker = _fake_browser(tmp_path)
    env = _env(tmp_path, **extra)
    port = _free_port()
    log = tmp_path / "demo.log"
    proc = _start(["--demo", "--port", str(port)], env, log)
    cleanup(proc)
    _wait_healthy(port, proc, log, bound_s=400)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as resp:
        assert resp.status == 200
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    out = log.read_text()
    assert "Email" not in out
    assert not marker.exists(), marker.read_text()  # no display: no browser, no xdg-open
    assert not (tmp_path / "home" / ".streamlit" / "credentials.toml").exists()
    # The demo account and session live in demo.sqlite only; the real database is untouched.
    data = tmp_path / "data"
    assert not (data / "engagement.db").exists()
    with sqlite3.connect(data / "demo.sqlite") as con:
        names = sorted(name for (name,) in con.execute("SELECT name FROM dashboard_users"))
        assert names == sorted(name for name, _ in auth.DEMO_ACCOUNTS)  # facilitator, researcher, privacy officer
        assert con.execute("SELECT count(*) FROM sessions WHERE name = 'demo'").fetchone()[0] == 1


@pytest.mark.slow
def test_demo_opens_a_browser_only_where_there_is_a_display(tmp_path, cleanup):
    extra, marker = _fake_browser(tmp_path)
    env = _env(tmp_path, DISPLAY=":97", **extra)
    _seed_demo_database(tmp_path / "data" / "demo.sqlite")
    port = _free_port()
    log = tmp_path / "demo.log"
    proc = _start(["--demo", "--port", str(port)], env, log)
    cleanup(proc)
    _wait_healthy(port, proc, log)
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert marker.read_text().strip() == f"http://127.0.0.1:{port}"


def _seed_demo_database(path: Path) -> None:
    """A demo database whose newest session is named like the demo's (no analysis needed)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gen_dash", ROOT / "benchmarks" / "generate_dashboard_data.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    path.parent.mkdir(parents=True)
    gen.generate(path, sessions=1, participants=4, seconds=60, estimates=True, seed=5)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE sessions SET name = 'demo'")


# -- the demo account outside --demo -----------------------------------------------------------


def test_demo_needs_loopback_and_its_own_database(tmp_path, capsys):
    from engagement.cli.main import main

    assert main(["dashboard", "--demo", "--address", "0.0.0.0"]) == 2
    assert "127.0.0.1" in capsys.readouterr().err
    assert main(["dashboard", "--demo", "--db", f"sqlite:///{tmp_path / 'real.db'}"]) == 2
    assert "own database" in capsys.readouterr().err
    assert not (tmp_path / "real.db").exists()


def test_demo_account_left_in_a_real_database_does_not_sign_in(tmp_path):
    # Older versions created demo/demo in the default database; outside --demo it is refused.
    store = queries.open_store(f"sqlite:///{tmp_path / 'real.db'}")
    assert auth.ensure_demo_account(store).role == "facilitator"
    assert auth.ensure_demo_account(store) is None  # once
    assert auth.authenticate(store, "demo", "demo") is None
    assert auth.authenticate(store, "demo", "demo", demo=True).name == "demo"


# -- settings ----------------------------------------------------------------------------------


def _contrast(a: str, b: str) -> float:
    def luminance(colour: str) -> float:
        channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_server_settings_headless_private_and_our_own_calm_theme():
    flags = streamlit_flags("127.0.0.1", 8611)
    pairs = dict(zip(flags[::2], flags[1::2]))
    assert pairs["--server.headless"] == "true"  # no first-run prompt, no browser, no nudges
    assert pairs["--server.showEmailPrompt"] == "false"
    assert pairs["--browser.gatherUsageStats"] == "false"
    assert pairs["--logger.hideWelcomeMessage"] == "true"
    assert pairs["--client.showErrorDetails"] == "none"
    assert pairs["--server.port"] == "8611" and pairs["--server.address"] == "127.0.0.1"
    theme = tomllib.loads(CONFIG.read_text())["theme"]
    assert theme["primaryColor"].lower() not in ("#ff4b4b", "#f63366")  # not Streamlit's red
    assert _contrast(theme["textColor"], theme["backgroundColor"]) >= 7
    assert _contrast(theme["textColor"], theme["secondaryBackgroundColor"]) >= 7
    assert _contrast(theme["primaryColor"], theme["backgroundColor"]) >= 4.5
    assert _contrast("#FFFFFF", theme["primaryColor"]) >= 4.5  # white text on primary buttons


def test_an_unknown_time_zone_is_one_error_line_and_exit_2(tmp_path, capsys):
    from engagement.cli.main import main

    assert main(["dashboard", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--timezone", "Asia/Bandung"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown time zone 'Asia/Bandung'")
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened
