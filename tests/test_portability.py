"""The command line without the POSIX-only pieces that Windows (and partly macOS) lack.

CI runs on Linux only; these tests take away what a facilitator's Windows laptop does not have:
`os.getuid` and friends, the POSIX-only modules (`resource`, `pwd`, `grp`, `fcntl`, `termios`), a
readable /proc, and a user name in the environment (so `getpass.getuser()` fails as it does in a
bare service account). The commands must still run; the audit log names an unknown actor rather
than crashing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import types
from pathlib import Path

import pytest
from sqlalchemy import update

from engagement.core import schema
from engagement.core.repositories import runs as run_rows
from engagement.core.repositories.runs import pid_alive
from engagement.core.store import Store

REPO = Path(__file__).resolve().parents[1]

# psutil is imported first and keeps its /proc: its Linux backend stands for the one it uses on
# Windows (the Win32 API), which the project cannot swap in here.
WITHOUT_POSIX = """
import builtins, io, os, sys
import psutil
for name in ("getuid", "geteuid", "getgid", "getegid"):
    delattr(os, name)
for name in ("resource", "pwd", "grp", "fcntl", "termios"):
    sys.modules[name] = None  # `import name` now raises ImportError, as on Windows
_open = builtins.open
def _no_proc(file, *args, **kwargs):
    if str(file).startswith("/proc") and not sys._getframe(1).f_globals.get("__name__", "").startswith("psutil"):
        raise PermissionError(13, "Permission denied", str(file))
    return _open(file, *args, **kwargs)
builtins.open = io.open = _no_proc
from engagement.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def run_without_posix(*args: str, data: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LOGNAME", "USER", "LNAME", "USERNAME", "ENGAGEMENT_DB", "ENGAGEMENT_LANG")}
    env["ENGAGEMENT_DATA_DIR"] = str(data)
    return subprocess.run([sys.executable, "-c", WITHOUT_POSIX, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=300)


def test_the_prelude_really_takes_the_posix_pieces_away(tmp_path):
    probe = run_without_posix("--version", data=tmp_path)
    assert probe.returncode == 0, probe.stderr
    check = subprocess.run([sys.executable, "-c", WITHOUT_POSIX.replace(
        "from engagement.cli.main import main\nsys.exit(main(sys.argv[1:]))",
        "import getpass\ntry:\n    getpass.getuser()\nexcept Exception:\n    print('no user')\n"
        "print(hasattr(os, 'getuid'))\ntry:\n    open('/proc/self/stat')\nexcept PermissionError:\n    print('no proc')")],
        env={k: v for k, v in os.environ.items() if k not in ("LOGNAME", "USER", "LNAME", "USERNAME")},
        capture_output=True, text=True, timeout=60)
    assert check.stdout.split() == ["no", "user", "False", "no", "proc"]


def test_commands_run_and_the_audit_names_an_unknown_actor(tmp_path):
    data = tmp_path / "data"
    assert run_without_posix("--help", data=data).returncode == 0  # imports every command, batch included
    doctor = run_without_posix("doctor", "--json", data=data)
    assert doctor.returncode == 0, doctor.stderr
    cpu = [c for c in json.loads(doctor.stdout)["checks"] if c["check"] == "cpu"][0]
    assert cpu["values"]["avx2"] is None  # /proc/cpuinfo unreadable: unknown, not a crash
    dpia = run_without_posix("privacy", "dpia", "--out", str(tmp_path / "dpia.md"), data=data)
    assert dpia.returncode == 0, dpia.stderr
    listing = run_without_posix("privacy", "audit", "list", "--json", data=data)
    assert listing.returncode == 0, listing.stderr
    actors = {entry["actor"] for entry in json.loads(listing.stdout)}
    assert actors == {"cli:unknown"}


@pytest.fixture
def like_windows(monkeypatch):
    """What Windows gives the project's own liveness check: no /proc to read, and an `os.kill`
    that terminates the process whatever the signal (TerminateProcess; signal 0 included).
    psutil's own Linux backend keeps its /proc: on Windows it asks the Win32 API instead."""
    real_read_text, real_kill = Path.read_text, os.kill

    def no_proc(self, *args, **kwargs):
        if str(self).startswith("/proc"):
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", no_proc)
    monkeypatch.setattr(os, "kill", lambda pid, sig: real_kill(pid, signal.SIGKILL))


def _os_named(name: str) -> types.SimpleNamespace:
    """The os module as one module sees it, with another os.name (patching os.name itself would
    turn every new Path into a WindowsPath, which cannot be made here)."""
    return types.SimpleNamespace(**{**vars(os), "name": name})


def _processes() -> tuple[subprocess.Popen, subprocess.Popen]:
    """A live process and a dead one (ended and collected)."""
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    return live, dead


def test_process_liveness_like_windows(like_windows):
    live, dead = _processes()
    try:
        assert pid_alive(live.pid) and not pid_alive(dead.pid)
        with pytest.raises(subprocess.TimeoutExpired):  # asking did not kill it
            live.wait(timeout=1)
    finally:
        live.kill()
        live.wait()
    assert not pid_alive(live.pid)


def test_a_crashed_run_is_reaped_at_once_like_windows(like_windows, monkeypatch, tmp_path):
    store = Store.open(f"sqlite:///{tmp_path / 'runs.db'}")
    session = run_rows.session_id(store, "class")
    running, crashed = (
        run_rows.begin_run(store, session, mode="file", source="x.mp4", software_version="t", profile="id-pdp",
                           config={}, config_hash="h", models={})  # fmt: skip
        for _ in range(2)
    )
    live, dead = _processes()
    try:
        with store.transaction() as conn:
            for run, proc in ((running, live), (crashed, dead)):
                conn.execute(update(schema.runs).where(schema.runs.c.id == run).values(writer_pid=proc.pid))
        monkeypatch.setattr(run_rows, "os", _os_named("nt"))  # both heartbeats are fresh
        found = [(run.id, run.reason) for run in run_rows.dead_runs(store)]
        assert found == [(crashed, "its process has ended")]
        with pytest.raises(subprocess.TimeoutExpired):
            live.wait(timeout=1)
    finally:
        live.kill()
        live.wait()
        store.close()


def test_a_cohort_key_is_read_again_where_modes_mean_nothing(monkeypatch, tmp_path):
    """Windows reports mode 0o666 for every writable file, whatever chmod was asked: the check
    that a key is private to its user refused every cohort key after the first use there (so a
    facilitator's second `live` or `analyze`). Simulated with a loose mode and os.name 'nt'."""
    from privacy import pseudonym
    from privacy.errors import CohortKeyError
    from privacy.pseudonym import KeyRing, key_path

    first = KeyRing().pseudonym("Budi", "c1")
    os.chmod(key_path("c1"), 0o666)
    with pytest.raises(CohortKeyError, match="chmod 600"):
        KeyRing().pseudonym("Budi", "c1")  # on POSIX a loose key is still refused
    monkeypatch.setattr(pseudonym, "os", _os_named("nt"))
    assert KeyRing().pseudonym("Budi", "c1") == first


@pytest.mark.parametrize("platform, shown", [("win32", True), ("darwin", True), ("linux", False)])
def test_a_display_is_found_without_x11_variables_on_windows_and_macos(monkeypatch, platform, shown):
    """`dashboard --demo` opened the browser only where DISPLAY or WAYLAND_DISPLAY was set, which
    Windows and macOS never set: a facilitator's laptop got no browser."""
    from engagement.core.config import has_display

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", platform)
    assert has_display() is shown
