"""Live loop: real clips fed through fake grabbers (no camera or display on CI), the real
pipeline and a real SQLite store. Faults: a source that stops mid-stream and comes back, garbage
frames, a database locked for longer than its busy timeout, a crash, Ctrl-C."""

from __future__ import annotations

import io
import os
import signal
import sqlite3
import threading
import time
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from sqlalchemy import select

from engagement.app.live.capture import LiveCapture, LiveLoopOptions, valid_image
from engagement.app.live.rate import RateController
from engagement.app.live.session import run_live
from engagement.app.live.status import StatusLine
from engagement.core import schema
from engagement.core.errors import SourceError
from engagement.core.records import RunningMode
from engagement.core.repositories import runs as run_rows
from engagement.core.store import Store
from engagement.vision.screen import ScreenSource, parse_screen_region
from engagement.vision.sources import FramesSource, Source
from privacy.audit import AuditLog, resolve_actor
from conftest import require_shared

QUIET = LiveLoopOptions(status=False, backoff_s=(0.1, 0.2))


@pytest.fixture(scope="module")
def face_frames() -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(require_shared("videos/pyfeat/single_face.mp4")))
    frames = []
    while len(frames) < 24:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


@pytest.fixture
def store(tmp_path):
    from privacy.consent import attest

    s = Store.open(f"sqlite:///{tmp_path / 'live.db'}")
    attest(s, "class", facilitator="t", notice_version="v1", language="en", evidence="test", actor="test")
    yield s
    s.close()


class ScriptedGrabber:
    """Plays a script at `fps`: an image, "fail" (read raises: unplugged), "garbage" (a bad
    array), or "end". While failing, `open()` also fails, like an unplugged camera."""

    running_mode = RunningMode.LIVE
    finite = True
    name = "fake:0"

    def __init__(self, script, fps: float = 20.0):
        self.script, self.fps = list(script), fps
        self.i = 0
        self.opens = 0

    def _current(self):
        return self.script[self.i] if self.i < len(self.script) else "end"

    def open(self) -> None:
        self.opens += 1
        if isinstance(self._current(), str) and self._current() == "fail":
            self.i += 1
            raise SourceError("fake camera 0 is not connected")

    def read(self):
        time.sleep(1.0 / self.fps)
        item = self._current()
        self.i += 1
        if isinstance(item, str):
            if item == "fail":
                raise SourceError("fake camera 0 stopped delivering frames (disconnected?)")
            if item == "garbage":
                return np.zeros((7, 5), np.float64)
            return None
        return item

    def close(self) -> None:
        return None


def stored_seconds(store: Store, run_id: int) -> list[int]:
    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(
            select(schema.class_timeline.c.second).where(schema.class_timeline.c.run_id == run_id).order_by(schema.class_timeline.c.second)
        )]


def face_seconds(store: Store, run_id: int) -> set[int]:
    """The seconds of the run in which a face was analysed."""
    w = schema.window_features
    with store.engine.connect() as conn:
        return {r[0] for r in conn.execute(select(w.c.second).where(w.c.run_id == run_id, w.c.n_face > 0))}


def run_status(store: Store, run_id: int) -> tuple[str, str, int]:
    with store.engine.connect() as conn:
        row = conn.execute(select(schema.runs.c.status, schema.runs.c.mode, schema.runs.c.seconds).where(schema.runs.c.id == run_id)).one()
    return row.status, row.mode, row.seconds


@pytest.mark.slow
def test_live_stores_each_second_as_it_ends_and_keeps_up(store, face_frames):
    """30 fps capture, analysis capped at 8 fps: frames are dropped, every second is stored."""
    source = LiveCapture(FramesSource(face_frames, 30.0, 3.5), LiveLoopOptions(status=False, max_fps=8.0, measure_latency=True))
    result = run_live(store, source, "class", options=LiveLoopOptions(status=False, measure_latency=True))
    status, mode, seconds = run_status(store, result.summary.run_id)
    assert (status, mode) == ("complete", "live")
    assert stored_seconds(store, result.summary.run_id) == list(range(seconds))
    assert seconds >= 3
    assert result.summary.tracks == 1
    assert result.dropped > 0 and result.captured > result.summary.frames_analysed
    # How fast and how soon (the per-face rate, capture -> visible in the store) depend on the
    # machine: `python -m benchmarks.live_timing` measures them against a floor of the same run.
    assert result.latencies_s and result.effective_fps > 0


@pytest.mark.slow
def test_source_stops_mid_stream_reports_and_resumes(store, face_frames):
    script = face_frames[:20] + ["fail"] * 4 + face_frames[:20]
    source = LiveCapture(ScriptedGrabber(script), QUIET)
    seen_status: list[str] = []
    result = run_live(store, source, "class", options=QUIET, on_second=lambda s: seen_status.append(source.status))
    assert result.reconnects == 1
    assert any("not connected" in p or "stopped delivering" in p for p in result.problems)
    assert any("source:" in n and "retrying" in n for n in result.summary.notes)
    status, _, seconds = run_status(store, result.summary.run_id)
    assert status == "complete"
    # Frames before and after the outage were analysed and stored; the outage is just missing.
    # (How many frames depends on the machine: a live loop drops what it cannot keep up with.)
    assert face_seconds(store, result.summary.run_id) >= {0, seconds - 1}
    assert stored_seconds(store, result.summary.run_id)[-1] == seconds - 1


@pytest.mark.slow
def test_garbage_frames_are_rejected_and_counted(store, face_frames):
    blank = np.zeros_like(face_frames[0])
    wrong_size = cv2.resize(face_frames[0], (320, 180))
    script = face_frames[:10] + ["garbage", blank, wrong_size, "garbage"] + face_frames[10:20]
    source = LiveCapture(ScriptedGrabber(script), QUIET)
    result = run_live(store, source, "class", options=QUIET)
    assert result.rejected == 4
    assert any("garbage frame" in p for p in result.problems)
    assert result.summary.frames_analysed <= 20
    assert run_status(store, result.summary.run_id)[0] == "complete"


def test_too_much_garbage_counts_as_disconnect():
    grabber = ScriptedGrabber(["garbage"] * 6, fps=200)
    source = LiveCapture(grabber, LiveLoopOptions(status=False, max_garbage=3, backoff_s=(0.01,)))
    assert list(source.frames()) == []
    assert source.rejected == 6
    assert grabber.opens >= 2  # reopened after 3 bad frames in a row


@pytest.mark.slow
def test_locked_database_delays_but_loses_nothing(store, face_frames, tmp_path):
    """A writer holds the database lock for longer than the busy timeout (5 s)."""
    held = threading.Event()

    def lock_for(seconds: float) -> None:
        conn = sqlite3.connect(str(tmp_path / "live.db"), timeout=10)
        conn.execute("BEGIN IMMEDIATE")
        held.set()
        time.sleep(seconds)
        conn.rollback()
        conn.close()

    started = []

    def on_second(second: int) -> None:
        if second == 1 and not started:
            started.append(threading.Thread(target=lock_for, args=(6.5,), daemon=True))
            started[0].start()
            held.wait(5)

    source = LiveCapture(FramesSource(face_frames, 10.0, 10.0), QUIET)
    result = run_live(store, source, "class", options=QUIET, on_second=on_second)
    started[0].join()
    assert result.store_retries >= 1
    status, _, seconds = run_status(store, result.summary.run_id)
    assert status == "complete"
    assert seconds >= 9
    assert stored_seconds(store, result.summary.run_id) == list(range(seconds))  # no second lost


@pytest.mark.slow
def test_crash_keeps_no_rows_and_is_audited(store, face_frames):
    """A live run that fails is like a failed analysis: marked, emptied, audited."""
    def boom(second: int) -> None:
        if second == 3:
            raise RuntimeError("simulated crash")

    source = LiveCapture(FramesSource(face_frames, 10.0, 6.0), QUIET)
    with pytest.raises(RuntimeError) as raised:
        run_live(store, source, "class", options=QUIET, on_second=boom)
    with store.engine.connect() as conn:
        run = conn.execute(select(schema.runs).order_by(schema.runs.c.id.desc())).first()
    assert run.status == "failed" and "simulated crash" in run.error
    assert stored_seconds(store, run.id) == []  # seconds 0-1 had been committed; they are gone
    assert f"run {run.id} was marked failed and its rows removed" in raised.value.__notes__
    (entry,) = AuditLog(store).entries(action="analysis_run")
    assert entry.details["status"] == "failed" and entry.details["error"] == "RuntimeError"
    assert entry.actor == resolve_actor()


@pytest.mark.slow
def test_ctrl_c_flushes_and_completes(store, face_frames):
    sigterm_before = signal.getsignal(signal.SIGTERM)
    source = LiveCapture(FramesSource(face_frames, 10.0, 30.0), QUIET)
    timer = threading.Timer(2.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        result = run_live(store, source, "class", options=QUIET)
    finally:
        timer.cancel()
    status, _, seconds = run_status(store, result.summary.run_id)
    assert status == "complete"
    assert 1 <= seconds < 30  # stopped by the signal, long before the source's end (timing: benchmarks.live_timing)
    assert stored_seconds(store, result.summary.run_id) == list(range(seconds))  # the open second too
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    assert signal.getsignal(signal.SIGTERM) is sigterm_before


def test_screen_source_with_fake_grabber():
    calls = []

    def grab(region):
        calls.append(region)
        if len(calls) == 3:
            raise OSError("display went away")
        return np.full((region[3], region[2], 4), 100, np.uint8)  # BGRA like mss

    screen = ScreenSource(parse_screen_region("screen:10,20,320,240"), fps=100, grab=grab)
    assert screen.name == "screen:10,20,320,240"
    frames = screen.frames()
    first = next(frames)
    assert first.image.shape == (240, 320, 3)
    next(frames)
    with pytest.raises(SourceError, match="screen capture failed: OSError"):
        next(frames)
    with pytest.raises(SourceError):
        parse_screen_region("screen:0,0,10")


def test_live_screen_capture_recovers_after_failures():
    state = {"n": 0}
    image = np.random.default_rng(1).integers(0, 255, (120, 160, 3), dtype=np.uint8)

    def grab(region):
        state["n"] += 1
        if 3 <= state["n"] <= 5:
            raise OSError("grab failed")
        return image

    source = LiveCapture(ScreenSource((0, 0, 160, 120), fps=50, grab=grab), LiveLoopOptions(status=False, backoff_s=(0.02,)))
    got = []
    for frame in source.frames():
        got.append(frame.t_ms)
        if state["n"] >= 9:
            source.stop()
    assert source.reconnects == 1
    assert any("screen capture failed" in p for p in source.problems)
    assert got == sorted(got) and len(got) >= 3


def test_rate_controller_and_validation():
    rate = RateController(max_fps=15, cpu_share=0.5)
    assert rate.period_s == pytest.approx(1 / 15)
    for _ in range(20):
        rate.observe(0.2)  # a slow step (many faces): the loop spaces steps to keep a core half free
    assert rate.period_s == pytest.approx(0.4, rel=0.05)
    ok = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    assert valid_image(ok, None) is None
    assert "size changed" in valid_image(ok, (32, 32))
    assert "blank" in valid_image(np.zeros((64, 64, 3), np.uint8), None)
    assert "not an image" in valid_image(None, None)
    huge = np.broadcast_to(ok[:1, :1], (16000, 16000, 3))  # a view: no 768 MB allocated
    assert "too large (16000x16000" in valid_image(huge, None)


def test_status_line_text(face_frames):
    source = LiveCapture(FramesSource(face_frames, 10.0, 1.0), QUIET)
    line = StatusLine(source).text(faces=3)
    assert "faces 3" in line and "dropped 0" in line and "fps (per face)" in line


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_status_line_is_drawn_on_a_terminal_only(face_frames):
    capture = LiveCapture(FramesSource(face_frames, 10.0, 1.0), QUIET)
    assert isinstance(capture, Source) and capture.running_mode is RunningMode.LIVE
    piped, tty = io.StringIO(), Terminal()
    for stream in (piped, tty):
        line = StatusLine(capture, stream)
        line(SimpleNamespace(faces=2))
        line.close()
    assert piped.getvalue() == ""  # a log or a pipe gets no line a second
    assert "faces 2" in tty.getvalue() and "starting" in tty.getvalue()


@pytest.mark.slow
def test_live_command_replays_a_video(store, capsys):
    from engagement.cli.live import live

    db = store.url
    code = live(
        source=str(require_shared("videos/pyfeat/single_face.mp4")), session="class", db=db, no_status=True,
        profile="eu-ai-act",  # attention only: no expression model needed
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "complete" in out and "per face" in out and "tracks: 1" in out
    source = run_rows.latest_run(store, "class")["source"]  # a hash of the file name, not the name
    assert source.startswith("file-") and source.endswith(".mp4") and "single_face" not in source
    with pytest.raises(SourceError, match="webcam index"):
        live(source="webcam:x", session="s", db=db)
