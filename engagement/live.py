"""Live sessions: the real-time loop policy around the ordinary AnalysisPipeline.

Live is the same pipeline as `analyze` (vision -> consent gate -> windows -> temporal -> store)
with `flush_every_s=1`, fed by a `LiveSource`. What live adds lives here:

- Never fall behind: a capture thread keeps only the newest frame; the analysis takes the newest
  one when it is ready, so a frame is at most one analysis step old. Frames it never took are
  counted as dropped. A rate controller also spaces analyses so the loop uses at most
  `cpu_share` of a core (capture, database writes and the dashboard need the rest) and at most
  `max_fps`: the per-face rate adapts to how many faces there are (every face of an analysed
  frame is measured, so the per-face rate is the analysed frame rate), and is reported.
- Resilience: a camera that disconnects, a screen grab that fails, a run of garbage frames:
  the status line says so, the capture thread retries with backoff and resumes; seconds without
  frames are simply missing. A locked database: the second's rows stay buffered and the next
  second retries, so a lock loses no second (SQLite WAL + one transaction per second).
- Ctrl-C or SIGTERM: the first stops capture, the pipeline flushes the open second and ends the
  run `complete`; a second one interrupts at once. A run that does not end `complete` (a second
  Ctrl-C, a crash, SIGKILL: reaped by the next command) keeps no rows, as in `analyze`: nothing
  half-finished is left to pass for a result.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from engagement.config import AnalysisOptions
from engagement.errors import SourceError, StoreError
from engagement.interrupts import Terminated
from engagement.records import Frame, RunSummary
from engagement.vision.sources import MAX_FRAME_PIXELS

BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 5.0)


@dataclass(frozen=True)
class LiveLoopOptions:
    max_fps: float = 15.0  # analyses per second at most (per face: every face of a frame is measured)
    cpu_share: float = 0.85  # analysis may use this share of a core; the rest is for capture + writes
    status: bool = True  # the one-line status on stderr
    backoff_s: tuple[float, ...] = BACKOFF_S  # waits between reconnect attempts
    give_up_after_s: float | None = None  # None: keep retrying until Ctrl-C
    max_garbage: int = 10  # this many bad frames in a row count as a disconnect
    measure_latency: bool = False  # poll the store like a dashboard would (benchmarks, tests)


# -- grabbers: open / read / close, one image at a time ---------------------------------------------


class CameraGrabber:
    """A local camera (OpenCV). `read` blocks at the camera's own rate."""

    kind = "webcam"
    finite = False

    def __init__(self, index: int = 0, width: int = 640, height: int = 480):
        self.index, self.size = index, (width, height)
        self._cap: cv2.VideoCapture | None = None

    @property
    def name(self) -> str:
        return f"webcam:{self.index}"

    def open(self) -> None:
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {self.index} cannot be opened (not connected, or in use by another program)")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        self._cap = cap

    def read(self) -> np.ndarray | None:
        ok, image = self._cap.read() if self._cap is not None else (False, None)
        if not ok:
            raise SourceError(f"camera {self.index} stopped delivering frames (disconnected?)")
        return image

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class VideoReplayGrabber:
    """A video file played at its own frame rate, as if it were a camera (`live VIDEO`)."""

    kind = "replay"
    finite = True  # None from read() means the file ended, not a failure

    def __init__(self, path: str | Path, *, keep_name: bool = False):
        from engagement.vision.sources import VideoFileSource

        self._source = VideoFileSource(path, keep_name=keep_name)  # validates the file up front
        self.fps = self._source.fps or 25.0
        self._cap: cv2.VideoCapture | None = None
        self._next = 0.0

    @property
    def name(self) -> str:
        return self._source.name

    def open(self) -> None:
        if self._cap is None:  # a replay that ended is not reopened
            self._cap = self._source._open()
            self._next = time.monotonic()

    def read(self) -> np.ndarray | None:
        wait = self._next - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._next += 1.0 / self.fps
        ok, image = self._cap.read() if self._cap is not None else (False, None)
        return image if ok else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()


class FramesGrabber:
    """Pre-decoded frames played in a loop at `fps` for `duration_s` (tests and benchmarks)."""

    kind = "replay"
    finite = True

    def __init__(self, frames: Sequence[np.ndarray], fps: float, duration_s: float):
        self.frames, self.fps, self.duration_s = frames, fps, duration_s
        self._i = 0
        self._start = 0.0

    name = "frames"

    def open(self) -> None:
        if not self._start:
            self._start = time.monotonic()

    def read(self) -> np.ndarray | None:
        due = self._start + self._i / self.fps
        if due - self._start >= self.duration_s:
            return None
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        image = self.frames[self._i % len(self.frames)]
        self._i += 1
        return image

    def close(self) -> None:
        return None


def valid_image(image: object, size: tuple[int, int] | None) -> str | None:
    """Why an image is garbage (wrong type, shape, size, a blank frame), or None when it is fine."""
    if not isinstance(image, np.ndarray):
        return f"not an image ({type(image).__name__})"
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        return f"not a BGR image (dtype {image.dtype}, shape {image.shape})"
    if image.shape[0] < 32 or image.shape[1] < 32:
        return f"image too small ({image.shape[1]}x{image.shape[0]})"
    if image.shape[0] * image.shape[1] > MAX_FRAME_PIXELS:
        return f"image too large ({image.shape[1]}x{image.shape[0]}, more than 8K)"
    if size is not None and (image.shape[1], image.shape[0]) != size:
        return f"size changed from {size[0]}x{size[1]} to {image.shape[1]}x{image.shape[0]}"
    if int(image[::16, ::16].max()) == int(image[::16, ::16].min()):
        return "blank frame"
    return None


# -- the live source ----------------------------------------------------------------------------


class RateController:
    """Spacing of analyses: at most max_fps, and at most cpu_share of a core (EMA of step cost)."""

    def __init__(self, max_fps: float, cpu_share: float):
        self.min_period = 1.0 / max_fps if max_fps > 0 else 0.0
        self.cpu_share = min(1.0, max(0.05, cpu_share))
        self.cost_s = 0.0

    def observe(self, step_s: float) -> None:
        self.cost_s = step_s if not self.cost_s else 0.8 * self.cost_s + 0.2 * step_s

    @property
    def period_s(self) -> float:
        # A step that costs c leaves a core's (1 - share) free if the next starts c/share later.
        return max(self.min_period, self.cost_s / self.cpu_share)


class LiveSource:
    """Capture in a thread, newest frame wins; the pipeline pulls frames through `frames()`.

    Exposes what the pipeline reads from any source (kind, name, frames_read, duration_s,
    check_complete) plus live counters: captured, analysed, dropped, rejected, reconnects, status.
    """

    duration_s = 0.0  # unknown: live

    def __init__(self, grabber, options: LiveLoopOptions = LiveLoopOptions()):
        self.grabber = grabber
        self.options = options
        self.kind = grabber.kind  # never "file": the pipeline records the run as live
        self.captured = 0
        self.analysed = 0
        self.rejected = 0
        self.reconnects = 0
        self.status = "starting"
        self.problems: list[str] = []  # every distinct outage, for the run's closing summary
        self.rate = RateController(options.max_fps, options.cpu_share)
        self.frame_times_ms: list[float] = []  # analysed capture times, only when measuring latency
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._cond = threading.Condition()
        self._latest: tuple[int, float, np.ndarray] | None = None
        self._thread: threading.Thread | None = None
        self.started_at = 0.0  # monotonic time of t_ms == 0
        self.error: BaseException | None = None

    @property
    def name(self) -> str:
        return self.grabber.name

    @property
    def frames_read(self) -> int:
        return self.captured

    @property
    def dropped(self) -> int:
        """Captured frames the analysis never took (it always takes the newest)."""
        return max(0, self.captured - self.analysed)

    def effective_fps(self, wall_s: float) -> float:
        return self.analysed / wall_s if wall_s > 0 else 0.0

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def check_complete(self) -> None:
        return None

    def _set_status(self, text: str, problem: bool = False) -> None:
        self.status = text
        if problem and (not self.problems or self.problems[-1] != text):
            self.problems.append(text)

    # capture thread -------------------------------------------------------------------------

    def _capture(self) -> None:
        size: tuple[int, int] | None = None
        opened = False
        failures = 0
        garbage = 0
        outage_since: float | None = None
        last_ms = -1.0
        while not self._stop.is_set():
            if not opened:
                try:
                    self.grabber.open()
                    opened = True
                except Exception as exc:  # noqa: BLE001 - any open failure is retried
                    if self._retry_wait(exc, failures, outage_since):
                        return
                    outage_since = outage_since or time.monotonic()
                    failures += 1
                    continue
            try:
                image = self.grabber.read()
            except Exception as exc:  # noqa: BLE001 - a read failure is a disconnect
                self._close_quietly()
                opened = False
                outage_since = outage_since or time.monotonic()
                if self._retry_wait(exc, failures, outage_since):
                    return
                failures += 1
                continue
            if image is None and getattr(self.grabber, "finite", False):
                break  # a replayed file ended
            why = valid_image(image, size)
            if why is not None and why.startswith("size changed") and garbage >= self.options.max_garbage // 2:
                size, why = None, None  # a lasting new size is the new normal (window resized)
            if why is not None:
                self.rejected += 1
                garbage += 1
                self._set_status(f"{self.name}: garbage frame ({why})", problem=garbage == 1)
                if garbage >= self.options.max_garbage:
                    self._close_quietly()
                    opened = False
                    outage_since = outage_since or time.monotonic()
                    garbage = 0
                    if self._retry_wait(SourceError(f"{self.options.max_garbage} bad frames in a row"), failures, outage_since):
                        return
                    failures += 1
                continue
            garbage = 0
            if outage_since is not None or failures:
                # Frames flow again: only now is the outage over (an open that succeeds
                # and then fails to read is still the same outage).
                self.reconnects += 1
                self._set_status(f"{self.name} reconnected")
                outage_since, failures = None, 0
            elif self.status != "capturing" and not self.status.endswith("reconnected"):
                self._set_status("capturing")
            size = (image.shape[1], image.shape[0])
            t_ms = max((time.monotonic() - self.started_at) * 1000.0, last_ms + 0.001)
            last_ms = t_ms
            with self._cond:
                self.captured += 1
                self._latest = (self.captured, t_ms, image)
                self._cond.notify_all()
        self._close_quietly()

    def _retry_wait(self, exc: BaseException, failures: int, outage_since: float | None) -> bool:
        """Report the outage and wait before the next attempt; True when it is time to give up."""
        backoff = self.options.backoff_s[min(failures, len(self.options.backoff_s) - 1)]
        message = str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
        limit = self.options.give_up_after_s
        if limit is not None and outage_since is not None and time.monotonic() - outage_since >= limit:
            self._set_status(f"{self.name}: gave up after {limit:g} s: {message}", problem=True)
            self.error = exc
            return True
        self._set_status(f"{self.name}: {message}; retrying in {backoff:g} s", problem=failures == 0)
        self._stop.wait(backoff)
        return self._stop.is_set()

    def _close_quietly(self) -> None:
        try:
            self.grabber.close()
        except Exception:  # noqa: BLE001 - closing a broken device must not mask the outage
            pass

    def _run_capture(self) -> None:
        try:
            self._capture()
        except BaseException as exc:  # noqa: BLE001 - reported to the consumer, never lost
            self.error = exc
        finally:
            self._ended.set()
            with self._cond:
                self._cond.notify_all()

    # consumer -------------------------------------------------------------------------------

    def frames(self) -> Iterator[Frame]:
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run_capture, name="live-capture", daemon=True)
        self._thread.start()
        taken = 0
        next_due = 0.0
        try:
            while True:
                wait = next_due - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
                with self._cond:
                    while not self._stop.is_set() and (self._latest is None or self._latest[0] == taken):
                        if self._ended.is_set():
                            break
                        self._cond.wait(0.25)
                    if self._stop.is_set() or self._latest is None or self._latest[0] == taken:
                        break  # stopped, or the capture ended with nothing new
                    taken, t_ms, image = self._latest
                self.analysed += 1
                if self.options.measure_latency:
                    self.frame_times_ms.append(t_ms)
                step = time.monotonic()
                yield Frame(t_ms=t_ms, index=taken - 1, image=image)
                # The consumer (vision + consent + windows + store) ran between yield and here.
                now = time.monotonic()
                self.rate.observe(now - step)
                next_due = step + self.rate.period_s
        finally:
            self.stop()
            if self._thread is not None:
                self._thread.join(timeout=10)
        if self.error is not None and not isinstance(self.error, SourceError):
            raise self.error
        if self.error is not None and self.analysed == 0:
            raise self.error


class SimulatedSource:
    """Pre-decoded frames with synthetic timestamps, as fast as the analysis goes (benchmarks).

    Honest only for what does not depend on wall-clock pacing (memory, throughput); latency is
    measured on a paced `LiveSource` instead.
    """

    kind = "simulated"
    duration_s = 0.0

    def __init__(self, frames: Sequence[np.ndarray], fps: float, duration_s: float):
        self._frames, self.fps, self.total = frames, fps, int(duration_s * fps)
        self.captured = self.analysed = self.rejected = self.reconnects = 0
        self.status = "simulated"
        self.problems: list[str] = []
        self.frame_times_ms: list[float] = []
        self.dropped = 0

    name = "simulated"

    @property
    def frames_read(self) -> int:
        return self.captured

    def effective_fps(self, wall_s: float) -> float:
        return self.analysed / wall_s if wall_s > 0 else 0.0

    def stop(self) -> None:
        self.total = min(self.total, self.captured)

    def frames(self) -> Iterator[Frame]:
        while self.captured < self.total:
            i = self.captured
            self.captured += 1
            self.analysed += 1
            yield Frame(t_ms=i * 1000.0 / self.fps, index=i, image=self._frames[i % len(self._frames)])

    def check_complete(self) -> None:
        return None


def ReplaySource(frames: Sequence[np.ndarray], fps: float, *, realtime: bool, duration_s: float,
                 options: LiveLoopOptions = LiveLoopOptions()):  # noqa: N802 - a factory that reads like a class
    """Pre-decoded frames as a live source: paced at `fps` (realtime) or simulated."""
    if realtime:
        return LiveSource(FramesGrabber(frames, fps, duration_s), options)
    return SimulatedSource(frames, fps, duration_s)


def open_live_source(spec: str, options: LiveLoopOptions = LiveLoopOptions(), *, screen_fps: float = 10.0,
                     screen_grab=None, keep_name: bool = False) -> LiveSource:
    """`webcam[:N]`, `screen[:X,Y,W,H]` or a video file path (replayed at its own rate; `keep_name`:
    record its file name, not a hash of it)."""
    from engagement.vision.sources import ScreenSource, parse_screen_region

    text = str(spec)
    if text == "webcam" or text.startswith("webcam:"):
        _, _, num = text.partition(":")
        try:
            index = int(num) if num else 0
        except ValueError:
            raise SourceError(f"webcam index must be a number, got {num!r}") from None
        return LiveSource(CameraGrabber(index), options)
    if text == "screen" or text.startswith("screen:"):
        screen = ScreenSource(parse_screen_region(text), fps=screen_fps, grab=screen_grab)
        # No display, or a region off the screen, is bad input: refuse it now, before the run
        # starts, rather than retrying it forever. This also resolves a bare `screen` to the
        # first monitor's region, which the gallery layout needs.
        screen.open()
        screen.close()
        return LiveSource(screen, options)
    return LiveSource(VideoReplayGrabber(text, keep_name=keep_name), options)


# -- the loop -----------------------------------------------------------------------------------


@dataclass
class LiveResult:
    summary: RunSummary
    effective_fps: float  # analysed frames per second = per-face sampling rate
    captured: int
    dropped: int
    rejected: int
    reconnects: int
    store_retries: int
    problems: list[str] = field(default_factory=list)
    latencies_s: list[float] = field(default_factory=list)  # capture -> visible in the store, per analysed frame


class StatusLine:
    """`live 00:01:23  faces 9  analysed 9.8 fps (per face)  captured 30.0 fps  dropped 1203  capturing`."""

    def __init__(self, source, stream=None, every_s: float = 1.0):
        self.source, self.stream, self.every_s = source, stream or sys.stderr, every_s
        self.start = time.monotonic()
        self.last = 0.0
        self.store_note = ""
        self._prev = (self.start, 0, 0)

    def __call__(self, progress) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s:
            return
        self.last = now
        self.stream.write("\r" + self.text(progress.faces, now) + "   ")
        self.stream.flush()

    def text(self, faces: int, now: float | None = None) -> str:
        now = now or time.monotonic()
        t0, cap0, ana0 = self._prev
        dt = max(1e-6, now - t0)
        cap_fps = (self.source.captured - cap0) / dt
        ana_fps = (self.source.analysed - ana0) / dt
        self._prev = (now, self.source.captured, self.source.analysed)
        elapsed = int(now - self.start)
        clock = f"{elapsed // 3600:02d}:{elapsed % 3600 // 60:02d}:{elapsed % 60:02d}"
        note = self.store_note or self.source.status
        return (
            f"live {clock}  faces {faces}  analysed {ana_fps:4.1f} fps (per face)  "
            f"captured {cap_fps:4.1f} fps  dropped {self.source.dropped}  {note}"
        )


def run_live(
    store,
    source,
    session: str,
    *,
    layout=None,
    analysis: AnalysisOptions | None = None,
    options: LiveLoopOptions = LiveLoopOptions(),
    profile: str = "id-pdp",
    consent=None,
    cohort: str | None = None,
    models_dir: Path | None = None,
    on_second: Callable[[int], None] | None = None,
    stream=None,
) -> LiveResult:
    """Run a live session until the source ends or Ctrl-C; per-second rows land as they are made."""
    from engagement.pipeline import AnalysisPipeline, ConsentOptions

    analysis = analysis or AnalysisOptions(expression=False)
    status = StatusLine(source, stream)
    retries = [0]
    last_trouble = [0.0]

    def store_trouble(exc: StoreError) -> None:
        retries[0] += 1
        last_trouble[0] = time.monotonic()
        status.store_note = f"database busy, keeping the second in memory and retrying ({exc})"
        if options.status:
            (stream or sys.stderr).write("\r" + status.text(0) + "\n")

    vision_factory = None
    if layout is not None:
        from engagement.vision.gallery import GalleryVisionStage

        def vision_factory(opts: AnalysisOptions, mdir: Path | None):
            return GalleryVisionStage.for_layout(opts, layout, mdir)

    pipeline = AnalysisPipeline(
        store,
        analysis,
        profile=profile,
        consent=consent or ConsentOptions(),
        models_dir=models_dir,
        flush_every_s=1,
        vision_factory=vision_factory,
        on_store_error=store_trouble,
    )
    last_second = [-1]

    def hook(progress) -> None:
        if status.store_note and time.monotonic() - last_trouble[0] > 2.0:
            status.store_note = ""  # a flush went through since: the buffered seconds made it
        second = int(progress.t_ms // 1000)
        if second != last_second[0]:
            last_second[0] = second
            if on_second:
                on_second(second)
        if options.status:
            status(progress)

    if options.measure_latency and isinstance(source, LiveSource) and not source.options.measure_latency:
        source.options = replace(source.options, measure_latency=True)  # record capture times
    poller = _StorePoller(store, session) if options.measure_latency else None
    previous = _install_stop_signals(source)
    restore_timeout = _short_busy_timeout(store, LIVE_BUSY_TIMEOUT_MS)
    started = time.monotonic()
    try:
        if poller:
            poller.start()
        summary = pipeline.run(source, session, cohort=cohort, hook=hook)
    finally:
        restore_timeout()
        _restore_signals(previous)
        if poller:
            poller.stop()
    # The per-face rate over the time capture ran (model loading before the first frame excluded).
    wall = time.monotonic() - (getattr(source, "started_at", 0.0) or started)
    if options.status:
        (stream or sys.stderr).write("\n")
    summary.notes.extend(f"source: {p}" for p in getattr(source, "problems", []))
    latencies: list[float] = []
    if poller is not None:
        origin = getattr(source, "started_at", 0.0)
        for t_ms in source.frame_times_ms:
            seen = poller.seen.get(int(t_ms // 1000))
            if seen is not None:
                latencies.append(seen - (origin + t_ms / 1000.0))
    return LiveResult(
        summary=summary,
        effective_fps=source.effective_fps(wall),
        captured=source.captured,
        dropped=source.dropped,
        rejected=source.rejected,
        reconnects=source.reconnects,
        store_retries=retries[0],
        problems=list(getattr(source, "problems", [])),
        latencies_s=latencies,
    )


# A live loop must not sit in SQLite's busy wait (5 s for `analyze`) while frames go unanalysed:
# it waits this long, keeps the second buffered and retries with the next one.
LIVE_BUSY_TIMEOUT_MS = 250


def _short_busy_timeout(store, ms: int) -> Callable[[], None]:
    """Give the store's SQLite connections a short busy timeout for this run; returns the undo."""
    if store.engine.dialect.name != "sqlite":
        return lambda: None
    from sqlalchemy import event

    def pragma(dbapi_conn, _record) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={int(ms)}")
        cur.close()

    event.listen(store.engine, "connect", pragma)
    store.engine.dispose()  # pooled connections were opened with the long timeout

    def restore() -> None:
        event.remove(store.engine, "connect", pragma)
        store.engine.dispose()

    return restore


def _install_stop_signals(source) -> dict:
    """First Ctrl-C or SIGTERM: stop capture, flush, finish (a service manager stopping a live
    session keeps the session). The second: interrupt now (the run keeps no rows). Main thread
    only; returns the previous handlers, for `_restore_signals`."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    presses = [0]

    def handler(signum, frame) -> None:
        presses[0] += 1
        what = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        if presses[0] == 1:
            sys.stderr.write(f"\nstopping ({what}): finishing the current second (Ctrl-C again to interrupt)\n")
            source.stop()
        elif signum == signal.SIGTERM:
            raise Terminated
        else:
            raise KeyboardInterrupt

    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, signal.SIG_DFL if handler is None else handler)


class _StorePoller:
    """Reads the store like the dashboard does, noting when each second first becomes visible."""

    def __init__(self, store, session: str, every_s: float = 0.05):
        self.store, self.session, self.every_s = store, session, every_s
        self.seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-store-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        from sqlalchemy import func, select

        from engagement import schema

        runs, sessions, tl = schema.runs, schema.sessions, schema.class_timeline
        run_id = None
        last = -1
        while not self._stop.wait(self.every_s):
            try:
                with self.store.engine.connect() as conn:
                    if run_id is None:
                        run_id = conn.execute(
                            select(func.max(runs.c.id))
                            .select_from(runs.join(sessions, sessions.c.id == runs.c.session_id))
                            .where(
                                sessions.c.name == self.session, runs.c.status == "running"
                            )
                        ).scalar()
                        continue
                    top = conn.execute(select(func.max(tl.c.second)).where(tl.c.run_id == run_id)).scalar()
            except Exception:  # noqa: BLE001 - a busy read is retried on the next poll
                continue
            if top is not None and top > last:
                now = time.monotonic()
                for s in range(last + 1, top + 1):
                    self.seen[s] = now
                last = top


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else math.nan
