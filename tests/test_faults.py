"""Faults around a real `engagement` process: SIGTERM, SIGKILL, a database locked mid-run, input
refused before the run row, another program's database, a read-only data directory.

Each test runs the real command in a subprocess and then reads the database: no run may stay
`running` once the next command has started, no run that is not `complete` keeps rows, and every
outcome (complete, failed, interrupted, reaped) has its audit entry.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import cv2
import pytest

from engagement.core.repositories import runs as run_rows
from engagement.core.store import Store
from privacy.audit import resolve_actor
from privacy.consent import attest

from conftest import another_programs_database, require_shared

REPO = Path(__file__).resolve().parents[1]
ROW_TABLES = ("window_features", "engagement_estimates", "tracks", "class_timeline", "alerts")


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> Path:
    """The single-face clip played forwards and backwards to 40 s: long enough to kill mid-run."""
    cap = cv2.VideoCapture(str(require_shared("videos/pyfeat/single_face.mp4")))
    frames = []
    while (item := cap.read())[0]:
        frames.append(item[1])
    fps = cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    path = tmp_path_factory.mktemp("clips") / "long.mp4"
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for i in range(int(40 * fps / len(frames)) + 1):
        for frame in frames if i % 2 == 0 else frames[::-1]:
            writer.write(frame)
    writer.release()
    return path


@pytest.fixture
def db(isolated_data_dir) -> Path:
    """The default database of the test's data directory, with the session 'class' attested."""
    path = isolated_data_dir / "engagement.db"
    store = Store.open(f"sqlite:///{path}")
    attest(store, "class", facilitator="test facilitator", notice_version="t1", language="id", evidence="test")
    store.close()
    return path


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "engagement.cli.main", *args]


def run_cli(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), cwd=REPO, capture_output=True, text=True, timeout=300, **kwargs)


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(command(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def query(db: Path, sql: str, *params) -> list[tuple]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def wait_for_rows(db: Path, proc: subprocess.Popen, timeout_s: float = 120.0) -> int:
    """Wait until the running run has committed per-second rows; returns its id."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if db.exists():
            rows = query(
                db,
                "SELECT r.id FROM runs r JOIN window_features w ON w.run_id = r.id WHERE r.status = 'running' LIMIT 1",
            )
            if rows:
                return rows[0][0]
        time.sleep(0.2)
    raise AssertionError("the analysis wrote no rows in time")


def rows_of(db: Path, run_id: int) -> dict[str, int]:
    return {t: query(db, f"SELECT count(*) FROM {t} WHERE run_id = ?", run_id)[0][0] for t in ROW_TABLES}


def orphan_rows(db: Path) -> int:
    """Rows of runs that are not complete (and not running): what a failed run must not keep."""
    return sum(
        query(db, f"SELECT count(*) FROM {t} WHERE run_id IN (SELECT id FROM runs WHERE status NOT IN ('complete', 'running'))")[0][0]
        for t in ROW_TABLES
    )


def outcomes(db: Path) -> list[tuple[str, str]]:
    """(actor, details) of every analysis_run audit entry, oldest first."""
    return query(db, "SELECT actor, details FROM audit_log WHERE action = 'analysis_run' ORDER BY seq")


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip() and not _library_chatter(line)]
    assert len(lines) == 1, stderr
    return lines[0]


def _library_chatter(line: str) -> bool:
    # MediaPipe/TFLite write their own start-up lines on stderr before our code runs.
    return line.startswith(("INFO:", "WARNING:", "W0000", "I0000", "E0000"))


def audit_intact() -> bool:
    return run_cli("privacy", "audit", "verify").returncode == 0


# -- signals ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_marks_the_analysis_interrupted_and_removes_its_rows(db, long_clip):
    proc = start("analyze", str(long_clip), "--session", "class", "--no-progress")
    run_id = wait_for_rows(db, proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143
    assert one_line(stderr) == f"terminated (SIGTERM): run {run_id} was marked interrupted and its rows removed"
    assert query(db, "SELECT status, error FROM runs WHERE id = ?", run_id) == [("interrupted", "stopped by SIGTERM")]
    assert set(rows_of(db, run_id).values()) == {0}
    actor, details = outcomes(db)[-1]
    assert actor == resolve_actor() and '"status":"interrupted"' in details and f'"run_id":{run_id}' in details
    assert audit_intact()


@pytest.mark.slow
def test_sigkilled_analysis_is_reaped_by_the_next_command(db, long_clip):
    proc = start("analyze", str(long_clip), "--session", "class", "--no-progress")
    run_id = wait_for_rows(db, proc)
    proc.kill()
    proc.communicate(timeout=60)
    # What SIGKILL leaves: a `running` run with rows and nobody to clean up.
    assert query(db, "SELECT status FROM runs WHERE id = ?", run_id) == [("running",)]
    assert rows_of(db, run_id)["window_features"] > 0
    # A read-only command changes nothing but says so.
    listing = run_cli("sessions", "list")
    assert listing.returncode == 0 and f"run {run_id} of session 'class' shows as running but its writer is gone" in listing.stderr
    # The next writing command (here another analysis) reaps it first.
    result = run_cli("analyze", str(require_shared("videos/pyfeat/single_face.mp4")), "--session", "class", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert f"note: run {run_id} of session 'class' was left running by a writer that is gone" in result.stderr
    assert query(db, "SELECT status FROM runs WHERE status = 'running'") == []
    assert query(db, "SELECT status FROM runs WHERE id = ?", run_id) == [("interrupted",)]
    assert set(rows_of(db, run_id).values()) == {0} and orphan_rows(db) == 0
    reaped = [d for _, d in outcomes(db) if '"reaped":true' in d]
    assert len(reaped) == 1 and f'"run_id":{run_id}' in reaped[0] and "its process has ended" in reaped[0]
    assert '"status":"complete"' in outcomes(db)[-1][1]
    assert audit_intact()


@pytest.mark.slow
def test_sigterm_ends_a_live_session_complete(db, long_clip):
    proc = start("live", "--source", str(long_clip), "--session", "class", "--no-status", "--profile", "eu-ai-act")
    run_id = wait_for_rows(db, proc)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "stopping (SIGTERM)" in stderr and "complete" in stdout
    assert query(db, "SELECT status, mode FROM runs WHERE id = ?", run_id) == [("complete", "live")]
    assert rows_of(db, run_id)["class_timeline"] > 0
    assert '"status":"complete"' in outcomes(db)[-1][1]


@pytest.mark.slow
def test_sigkilled_live_session_is_reaped_by_a_privacy_command(db, long_clip):
    proc = start("live", "--source", str(long_clip), "--session", "class", "--no-status", "--profile", "eu-ai-act")
    run_id = wait_for_rows(db, proc)
    proc.kill()
    proc.communicate(timeout=60)
    assert query(db, "SELECT status FROM runs WHERE id = ?", run_id) == [("running",)]
    result = run_cli("privacy", "purge", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert query(db, "SELECT status FROM runs WHERE id = ?", run_id) == [("interrupted",)]
    assert set(rows_of(db, run_id).values()) == {0}
    assert any('"reaped":true' in d and f'"run_id":{run_id}' in d for _, d in outcomes(db))


@pytest.mark.slow
def test_database_locked_mid_run_leaves_no_rows(db, long_clip):
    proc = start("analyze", str(long_clip), "--session", "class", "--no-progress")
    run_id = wait_for_rows(db, proc)
    # Another program takes the write lock and keeps it past the analysis' busy timeout (5 s):
    # the next flush fails, and so does marking the run.
    other = sqlite3.connect(db, timeout=30)
    other.execute("BEGIN IMMEDIATE")
    try:
        _, stderr = proc.communicate(timeout=120)
    finally:
        other.rollback()
        other.close()
    assert proc.returncode == 2
    assert one_line(stderr).startswith("error: the database") and "locked" in stderr
    # Still `running` with its rows (the database refused every write); the next command reaps it.
    result = run_cli("privacy", "purge", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert query(db, "SELECT status FROM runs WHERE id = ?", run_id) == [("interrupted",)]
    assert set(rows_of(db, run_id).values()) == {0} and orphan_rows(db) == 0
    assert audit_intact()


# -- refused before the run row -------------------------------------------------------------------


def runs_and_sessions(db: Path) -> tuple[list, list]:
    if not db.exists():
        return [], []
    return query(db, "SELECT id, status FROM runs"), query(db, "SELECT name FROM sessions")


def test_missing_roster_writes_nothing(db, tmp_path):
    video = require_shared("videos/pyfeat/single_face.mp4")
    result = run_cli("analyze", str(video), "--session", "class", "--roster", str(tmp_path / "nope.csv"))
    assert result.returncode == 2 and "nope.csv does not exist" in one_line(result.stderr)
    assert runs_and_sessions(db) == ([], [])


def test_semicolon_roster_names_the_delimiter(db, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text("identity;scopes;tile\nbudi@example.id;facilitator_feedback;1,1\n")
    video = require_shared("videos/pyfeat/single_face.mp4")
    result = run_cli("analyze", str(video), "--session", "class", "--roster", str(roster))
    assert result.returncode == 2, result.stderr
    line = one_line(result.stderr)
    assert "separated by ';' (semicolons)" in line and "','" in line
    assert runs_and_sessions(db) == ([], [])


def test_unwritable_key_directory_writes_no_run(isolated_data_dir):
    isolated_data_dir.mkdir(parents=True)
    (isolated_data_dir / "keys").write_text("a file where the key directory should be")
    video = require_shared("videos/pyfeat/single_face.mp4")
    result = run_cli("analyze", str(video), "--session", "class", "--no-progress")
    assert result.returncode == 2 and one_line(result.stderr).startswith("error:")
    runs, sessions = runs_and_sessions(isolated_data_dir / "engagement.db")
    assert runs == [] and sessions == []


def test_session_name_longer_than_its_column_is_refused(db):
    video = require_shared("videos/pyfeat/single_face.mp4")
    result = run_cli("analyze", str(video), "--session", "x" * 201)
    assert result.returncode == 2
    assert one_line(result.stderr) == "error: the session name is 201 characters long; at most 200 are allowed"
    result = run_cli("live", "--source", str(video), "--session", "y" * 300)
    assert result.returncode == 2 and "at most 200" in one_line(result.stderr)
    assert runs_and_sessions(db) == ([], [])


def test_another_programs_database_is_left_untouched(tmp_path):
    other = tmp_path / "contacts.sqlite"
    before = another_programs_database(other)
    video = require_shared("videos/pyfeat/single_face.mp4")
    url = f"sqlite:///{other}"
    for args in (("analyze", str(video), "--session", "s", "--db", url), ("sessions", "list", "--db", url),
                 ("privacy", "audit", "verify", "--db", url)):  # fmt: skip
        result = run_cli(*args)
        assert result.returncode == 2 and "another program's database" in one_line(result.stderr), args
    assert other.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name != "engagement-data"] == ["contacts.sqlite"]  # no -wal


# -- the file name is not recorded -----------------------------------------------------------------


def test_video_file_name_is_not_stored_unless_asked(isolated_data_dir, tmp_path):
    video = tmp_path / "Budi Santoso kelas 3.mp4"
    shutil.copy(require_shared("videos/pyfeat/single_face.mp4"), video)
    result = run_cli("analyze", str(video), "--no-progress")
    assert result.returncode == 0, result.stderr
    db = isolated_data_dir / "engagement.db"
    ((session, source),) = query(db, "SELECT s.name, r.source FROM runs r JOIN sessions s ON s.id = r.session_id")
    assert session.startswith("video-") and source.startswith("file-") and source.endswith(".mp4")
    for path in isolated_data_dir.rglob("*"):  # the database, its WAL, keys, anchors: nowhere
        if path.is_file():
            assert b"Budi" not in path.read_bytes(), path
    result = run_cli("analyze", str(video), "--no-progress", "--store-file-name")
    assert result.returncode == 0, result.stderr
    assert query(db, "SELECT s.name, r.source FROM runs r JOIN sessions s ON s.id = r.session_id WHERE r.id = 2") == [
        ("Budi Santoso kelas 3", "Budi Santoso kelas 3.mp4")
    ]


# -- a read-only data directory -------------------------------------------------------------------


def test_read_only_commands_work_on_a_read_only_data_directory(isolated_data_dir):
    data = isolated_data_dir
    setup = run_cli("privacy", "consent", "attest", "class", "--by", "fac", "--notice-version", "t1", "--language", "id",
                    "--evidence", "test")  # fmt: skip
    assert setup.returncode == 0, setup.stderr
    store = Store.open(f"sqlite:///{data / 'engagement.db'}")
    run_rows.session_id(store, "class")
    store.close()
    before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    for path in [data, *data.rglob("*")]:
        path.chmod(0o500 if path.is_dir() else 0o400)
    try:
        listing, verify, writing = (
            subprocess.run(unprivileged() + command(*args), cwd=REPO, capture_output=True, text=True, timeout=120)
            for args in (("sessions", "list"), ("privacy", "audit", "verify"), ("privacy", "purge", "--dry-run"))
        )
    finally:
        for path in [data, *data.rglob("*")]:
            path.chmod(0o700 if path.is_dir() else 0o600)
    assert listing.returncode == 0 and "class" in listing.stdout, listing.stderr
    assert verify.returncode == 0 and "intact" in verify.stdout, verify.stderr
    assert writing.returncode == 2 and "not writable" in one_line(writing.stderr), writing.stderr
    assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before  # nothing written


def unprivileged() -> list[str]:
    """As root, file modes do not bind: run without the capabilities that override them."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: a read-only directory cannot be simulated")
    caps = "-dac_override,-dac_read_search,-fowner"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


# -- the reaper and the heartbeat, in process ------------------------------------------------------


def test_reaper_marks_empties_and_audits_a_dead_run_on_both_backends(db_url):
    from engagement.app.reaper import reap_dead_runs
    from engagement.core import schema
    from engagement.core.records import FEATURE_NAMES, WindowFeatures
    from privacy.audit import AuditLog
    from sqlalchemy import func, select, update

    store = Store.open(db_url)
    session = run_rows.session_id(store, "class")
    live, dead = (
        run_rows.begin_run(store, session, mode="file", source="x.mp4", software_version="t", profile="id-pdp",
                           config={}, config_hash="h", models={})  # fmt: skip
        for _ in range(2)
    )
    values = (0.1,) * len(FEATURE_NAMES)
    with store.transaction() as conn:
        for run in (live, dead):
            track = run_rows.add_track(conn, run, "T1", "p-x", 0)
            run_rows.write_windows(conn, run, [(track, WindowFeatures(1, 0, 10, 10, 0, values, values))])
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        conn.execute(update(schema.runs).where(schema.runs.c.id == dead).values(writer_pid=gone.pid))
    assert [r.id for r in reap_dead_runs(store, actor="cli:test")] == [dead]
    assert reap_dead_runs(store) == []  # nothing left to reap; the living run is left alone
    with store.transaction() as conn:
        status = dict(conn.execute(select(schema.runs.c.id, schema.runs.c.status)).all())
        counts = dict(conn.execute(select(schema.tracks.c.run_id, func.count()).group_by(schema.tracks.c.run_id)).all())
    assert status == {live: "running", dead: "interrupted"} and counts == {live: 1}
    (entry,) = AuditLog(store).entries(action="analysis_run")
    assert entry.actor == "cli:test"
    assert entry.details == {"run_id": dead, "session_id": session, "status": "interrupted", "reaped": True,
                             "reason": "its process has ended"}  # fmt: skip
    assert AuditLog(store).verify().ok
    store.close()


def test_heartbeat_thread_keeps_a_run_alive_and_notices_a_reap(tmp_path):
    from engagement.app.run_writer import Heartbeat
    from engagement.core.repositories.runs import RunGone

    store = Store.open(f"sqlite:///{tmp_path / 'r.db'}")
    run = run_rows.begin_run(store, run_rows.session_id(store, "s"), mode="live", source="webcam:0",
                             software_version="t", profile="id-pdp", config={}, config_hash="h", models={})  # fmt: skip
    first = run_rows.latest_run(store, "s", statuses=("running",))["heartbeat_at"]
    beat = Heartbeat(store, run, every_s=0.05)
    beat.start()
    try:
        deadline = time.monotonic() + 30
        while run_rows.latest_run(store, "s", statuses=("running",))["heartbeat_at"] == first:
            assert time.monotonic() < deadline, "no heartbeat"
            time.sleep(0.05)
        beat.check()  # still running: nothing to say
        run_rows.abandon_run(store, run, status="interrupted", error="reaped by another host")
        while not beat.gone:
            assert time.monotonic() < deadline, "the reap went unnoticed"
            time.sleep(0.05)
        with pytest.raises(RunGone):
            beat.check()
    finally:
        beat.stop()
    store.close()


# -- a full disk ----------------------------------------------------------------------------------

# Where the machine does not let the test mount a small file system, the command runs with a
# writer patched to fail the way SQLite does on a full disk, from its second flush on.
FULL_DISK_PATCH = """
import sys
import sqlite3
from sqlalchemy.exc import OperationalError
from engagement.core.store import Store
real, calls = Store.write_windows, []
def write_windows(self, *args, **kwargs):
    calls.append(1)
    if len(calls) > 1:
        raise OperationalError("INSERT", {}, sqlite3.OperationalError("database or disk is full"))
    return real(self, *args, **kwargs)
Store.write_windows = write_windows
from engagement.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture
def small_disk(tmp_path):
    """A 4 MB tmpfs where the machine allows mounting one (root), else None."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        yield None
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.slow
def test_full_disk_mid_run_leaves_no_rows(small_disk, tmp_path, long_clip):
    data = (small_disk or tmp_path) / "data"
    env = {**os.environ, "ENGAGEMENT_DATA_DIR": str(data)}
    db = data / "engagement.db"
    setup = subprocess.run(
        command("privacy", "consent", "attest", "class", "--by", "fac", "--notice-version", "t1", "--language", "id",
                "--evidence", "test"),
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert setup.returncode == 0, setup.stderr
    analysis = ["analyze", str(long_clip), "--session", "class", "--no-progress"]
    if small_disk is not None:
        filler = small_disk / "filler"
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        filler.write_bytes(b"\0" * max(0, free - 160_000))  # room for a flush or two, not for 40 s
        result = subprocess.run(command(*analysis), cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        filler.unlink()  # the user frees space
    else:
        result = subprocess.run([sys.executable, "-c", FULL_DISK_PATCH, *analysis], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert one_line(result.stderr).startswith("error: the disk holding") and "is full" in result.stderr
    # Marked failed at once, or (no room even for that) reaped by the next command.
    after = subprocess.run(command("privacy", "purge", "--dry-run"), cwd=REPO, env=env, capture_output=True,
                           text=True, timeout=120)  # fmt: skip
    assert after.returncode == 0, after.stderr
    ((run_id, status),) = query(db, "SELECT id, status FROM runs")
    assert status in ("failed", "interrupted")
    assert set(rows_of(db, run_id).values()) == {0}
    assert any(f'"run_id":{run_id}' in d and status in d for _, d in outcomes(db))
    verify = subprocess.run(command("privacy", "audit", "verify"), cwd=REPO, env=env, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
