"""`engagement batch`: many recordings on Ray, each the same analysis as `engagement analyze`."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from sqlalchemy import select

from clips import write_repeated
from engagement.app.batch import Recording, collect, read_listing, require_ray
from engagement.core import schema
from engagement.core.errors import ConfigError
from engagement.core.repositories import runs as run_rows
from engagement.core.store import Store
from engagement.vision.sources import name_digest
from privacy.consent import attest


def _touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


# -- what to analyse ---------------------------------------------------------------------------


def test_folder_gives_its_videos_sorted_with_the_stem_as_session_when_asked(tmp_path):
    _touch(tmp_path / "b" / "Kelas B.mov")
    _touch(tmp_path / "a.mp4")
    _touch(tmp_path / "notes.txt")
    found = collect([tmp_path], file_names=True)
    assert [(r.path.name, r.session) for r in found] == [("a.mp4", "a"), ("Kelas B.mov", "Kelas B")]


def test_sessions_are_not_named_after_files_by_default(tmp_path):
    """`in/Budi_Santoso.mp4` became session `Budi_Santoso`; now it gets the hashed name
    `engagement analyze` gives, and the analysis is asked for that name."""
    from engagement.app.batch import BatchOptions, analyze_argv
    from engagement.core.config import AnalysisOptions

    video = _touch(tmp_path / "in" / "Budi_Santoso.mp4")
    listing = tmp_path / "list.csv"
    listing.write_text("file,cohort\nin/Budi_Santoso.mp4,c1\n")
    hashed = f"video-{name_digest(video)}"
    for found in (collect([tmp_path / "in"]), collect([video]), collect([listing])):
        assert [r.session for r in found] == [hashed]
    argv = analyze_argv(found[0], BatchOptions(db_url="sqlite://", analysis=AnalysisOptions()))
    assert argv[argv.index("--session") + 1] == hashed and "Budi" not in " ".join(argv[argv.index("--session"):])
    asked = BatchOptions(db_url="sqlite://", analysis=AnalysisOptions(), store_file_name=True)
    assert "--store-file-name" in analyze_argv(collect([video], file_names=True)[0], asked)


def test_the_analysis_command_is_taken_on_the_worker(tmp_path, monkeypatch):
    """The batch machine's interpreter path was sent to every worker: on a worker machine it may
    not exist, or be a source checkout instead of the installed wheel. The task now takes the
    worker's own interpreter."""
    from engagement.app import batch
    from engagement.core.config import AnalysisOptions

    opts = batch.BatchOptions(db_url="sqlite://", analysis=AnalysisOptions())
    argv = batch.analyze_argv(collect([_touch(tmp_path / "x.mp4")])[0], opts)
    assert argv[0] == "analyze" and sys.executable not in argv
    ran = []
    monkeypatch.setattr(batch, "run_analysis", lambda command, env: ran.append(command) or (0, "", 0.0, 0.0))
    monkeypatch.setattr(batch.sys, "executable", "/the/worker's/python")
    batch.analyse_recording(argv, {})
    assert ran == [["/the/worker's/python", "-m", "engagement.cli.main", *argv]]


def test_listing_resolves_paths_relative_to_the_csv(tmp_path):
    _touch(tmp_path / "rec" / "x.mp4")
    listing = tmp_path / "list.csv"
    listing.write_text("file,session,cohort,agenda\nrec/x.mp4,Pelatihan A,angkatan-7,agenda.csv\nrec/y.mp4,,,\n")
    first, second = read_listing(listing, file_names=True)
    assert first == Recording(tmp_path / "rec" / "x.mp4", "Pelatihan A", "angkatan-7", None, tmp_path / "agenda.csv")
    assert second.session == "y" and second.cohort is None


@pytest.mark.parametrize(
    "text, message",
    [
        ("video,session\nx.mp4,A\n", "needs a 'file' column"),
        ("file,speaker\nx.mp4,A\n", "unknown column(s) speaker"),
        ("file,session\n,A\n", "line 2: the file is empty"),
    ],
)
def test_malformed_listing_is_one_clear_error(tmp_path, text, message):
    listing = tmp_path / "list.csv"
    listing.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_listing(listing)


def test_two_recordings_into_one_session_are_refused(tmp_path):
    _touch(tmp_path / "a" / "kelas.mp4")
    _touch(tmp_path / "b" / "kelas.mp4")
    with pytest.raises(ConfigError, match="two recordings would go into session 'kelas'"):
        collect([tmp_path], file_names=True)


def test_without_ray_it_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ModuleNotFoundError
    with pytest.raises(ConfigError, match=r"pip install 'engagement\[cluster\]'"):
        require_ray()


# -- the real command on real clips ------------------------------------------------------------


def _batch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engagement.cli.main", "batch", *args],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )


@pytest.mark.slow
@pytest.mark.data
def test_batch_analyses_a_folder_skips_it_the_second_time_and_a_corrupt_file_fails_alone(tmp_path, videos_dir):
    pytest.importorskip("ray", reason="the [cluster] extra is not installed")  # third-party, optional
    folder = tmp_path / "archive"
    folder.mkdir()
    shutil.copy(videos_dir / "pyfeat" / "single_face.mp4", folder / "kelas-a.mp4")
    shutil.copy(videos_dir / "grid" / "lbax4n.mpg", folder / "kelas-b.mpg")
    (folder / "rusak.mp4").write_bytes((videos_dir / "pyfeat" / "single_face.mp4").read_bytes()[:4000])
    db = f"sqlite:///{tmp_path / 'batch.db'}"

    first = _batch(str(folder), "--workers", "2", "--db", db, "--sample-fps", "10")
    assert first.returncode == 1, first.stderr  # one recording failed
    assert first.stdout.count("done") >= 2 and "rusak.mp4" in first.stdout
    failure_lines = [ln for ln in first.stderr.splitlines() if ln.startswith("failed:")]
    assert len(failure_lines) == 1 and "rusak.mp4" in failure_lines[0]

    store = Store.open(db)
    try:
        with store.transaction() as conn:
            rows = conn.execute(
                select(schema.sessions.c.name, schema.runs.c.status)
                .join(schema.runs, schema.runs.c.session_id == schema.sessions.c.id)
            ).all()
    finally:
        store.close()
    statuses = {name: status for name, status in rows}
    # Sessions are named as `engagement analyze` names them, never after the files.
    hashed = {f"video-{name_digest(folder / name)}" for name in ("kelas-a.mp4", "kelas-b.mpg")}
    assert all(statuses[name] == "complete" for name in hashed)
    assert "running" not in statuses.values()

    second = _batch(str(folder), "--workers", "2", "--db", db, "--sample-fps", "10")
    assert second.returncode == 1
    assert second.stdout.count("skipped") >= 2 and "2 skipped" in second.stdout and "1 failed" in second.stdout


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.postgres
def test_two_workers_write_one_postgres_database_while_a_reader_reads(tmp_path, videos_dir, pg_url):
    pytest.importorskip("ray", reason="the [cluster] extra is not installed")  # third-party, optional
    import threading

    folder = tmp_path / "archive"
    folder.mkdir()
    for name in ("lbax4n", "brbk7n", "sbwe5n"):
        shutil.copy(videos_dir / "grid" / f"{name}.mpg", folder / f"{name}.mpg")
    reads, errors, stop = [], [], threading.Event()

    def dashboard_like_reader():
        store = Store.open(pg_url)
        try:
            while not stop.is_set():
                try:
                    reads.append(len(run_rows.list_sessions(store)))
                except Exception as exc:  # any read failure while writers write is the bug
                    errors.append(exc)
                stop.wait(0.2)
        finally:
            store.close()

    Store.open(pg_url).close()  # schema in place before the reader starts
    reader = threading.Thread(target=dashboard_like_reader)
    reader.start()
    try:
        result = _batch(str(folder), "--workers", "2", "--db", pg_url, "--sample-fps", "10")
    finally:
        stop.set()
        reader.join()
    assert result.returncode == 0, result.stderr
    assert errors == [] and reads and max(reads) == 3
    store = Store.open(pg_url)
    try:
        with store.transaction() as conn:
            statuses = conn.execute(select(schema.runs.c.status)).scalars().all()
    finally:
        store.close()
    assert sorted(statuses) == ["complete"] * 3


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_ctrl_c_or_sigterm_cancels_the_batch_and_leaves_no_run_running(tmp_path, videos_dir, sig):
    pytest.importorskip("ray", reason="the [cluster] extra is not installed")  # third-party, optional
    import signal
    import time

    # A recording long enough to be interrupted: d9 played 6 times (about 2 minutes).
    folder = tmp_path / "archive"
    folder.mkdir()
    write_repeated(videos_dir / "liveportrait" / "d9.mp4", 6, folder / "panjang.mp4")
    db = f"sqlite:///{tmp_path / 'batch.db'}"
    # Consent recorded first, so the analysis computes and writes per-second rows (without it,
    # none are ever written and "no rows left" below would hold whatever the cancel did).
    store = Store.open(db)
    try:
        # The session a batch gives a recording nobody named: the hashed name `analyze` gives.
        attest(store, f"video-{name_digest(folder / 'panjang.mp4')}", facilitator="test facilitator",
               notice_version="t1", language="id", evidence="test")
    finally:
        store.close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "engagement.cli.main", "batch", str(folder), "--workers", "1", "--db", db],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )

    def read(column) -> list:
        if not (tmp_path / "batch.db").exists():
            return []
        try:
            store = Store.open(db, create=False, read_only=True)
        except Exception:  # the file is there but its schema not yet
            return []
        try:
            with store.transaction() as conn:
                return conn.execute(select(column)).scalars().all()
        except Exception:  # the schema may not be there yet
            return []
        finally:
            store.close()

    def statuses() -> list[str]:
        return read(schema.runs.c.status)

    # Signal only once the running analysis has committed per-second rows: the assertion at the
    # end (none are left) then says they were removed, not that none were ever written.
    deadline = time.monotonic() + 120
    while not (statuses() == ["running"] and read(schema.window_features.c.second)) and (
        time.monotonic() < deadline and proc.poll() is None
    ):
        time.sleep(0.5)
    assert statuses() == ["running"], "the analysis never started"
    assert read(schema.window_features.c.second), "the analysis wrote no per-second rows before the signal"
    proc.send_signal(getattr(signal, sig))
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 128 + getattr(signal, sig), err
    assert "none is left running" in err
    assert "cancelled" in out
    assert statuses() == ["interrupted"]
    store = Store.open(db)
    try:
        with store.transaction() as conn:
            rows = conn.execute(select(schema.window_features.c.second)).all()
    finally:
        store.close()
    assert rows == []  # an interrupted run keeps no rows


# -- rough edges ---------------------------------------------------------------------------------


def test_a_file_listed_twice_is_analysed_once(tmp_path):
    video = _touch(tmp_path / "rec" / "x.mp4")
    listing = tmp_path / "list.csv"
    listing.write_text("file,session\nrec/x.mp4,Pelatihan A\nrec/x.mp4,Pelatihan A\n")
    assert [r.session for r in collect([listing, listing])] == ["Pelatihan A"]
    assert len(collect([video, tmp_path / "rec"])) == 1
    with pytest.raises(ConfigError, match="listed twice, for sessions 'Pelatihan A' and"):
        collect([listing, video])


def test_a_killed_analysis_reports_the_kill_not_a_library_log_line(tmp_path):
    """A SIGKILLed analysis showed MediaPipe's last log line as its failure reason."""
    from engagement.app.batch import failure_reason, run_analysis

    log = "W0000 00:00:1796667666.053040   21277 inference_feedback_manager.cc:121] Feedback manager requires"
    code = f"import os, signal, sys\nsys.stderr.write({log!r} + '\\n')\nsys.stderr.flush()\nos.kill(os.getpid(), signal.SIGKILL)\n"
    rc, detail, _, _ = run_analysis([sys.executable, "-c", code], {})
    assert rc == -9 and "killed by SIGKILL" in detail and "Feedback" not in detail
    # A crash with a traceback: its own last line, not the library's noise after it.
    assert failure_reason(1, "Traceback ...\nRuntimeError: boom\nI0000 00:00:1.0 gl_context.cc:1] GL version") == (
        "RuntimeError: boom")
    assert failure_reason(2, f"{log}\nerror: a.mp4 is truncated\n") == "a.mp4 is truncated"
    assert failure_reason(3, log) == "exit code 3"


@pytest.mark.parametrize("lang, note", [("en", "  note: "), ("id", "  catatan: ")])
def test_a_successful_analysis_keeps_its_notes(monkeypatch, lang, note):
    """A file cut short that still analysed says so in its summary: the batch's detail keeps it."""
    from engagement.app.batch import success_detail

    monkeypatch.setenv("ENGAGEMENT_LANG", lang)
    out = f"Session 'x', run 3: complete\n12 seconds\n{note}x.mpg ends inside a transport-stream packet\n"
    assert success_detail(out).endswith("x.mpg ends inside a transport-stream packet")
    assert success_detail(out).startswith("Session 'x', run 3: complete; ")
