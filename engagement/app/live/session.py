"""Live sessions: the real-time loop policy around the ordinary AnalysisPipeline.

Live is the same pipeline as `analyze` (vision -> consent gate -> windows -> temporal -> store)
fed by a `LiveCapture`, whose running mode (LIVE) makes the pipeline store every second as it
ends and keep a second buffered when the database is busy. What live adds:

- Never fall behind: capture in a thread, the analysis takes the newest frame
  (`engagement.app.live.capture`), spaced to a share of a core (`engagement.app.live.rate`).
- A status line on a terminal (`engagement.app.live.status`).
- Resilience: a camera or screen that fails is retried with backoff, seconds without frames are
  simply missing. A locked database: the second's rows stay buffered and the next second
  retries, so a lock loses no second (SQLite WAL + one transaction per second, and a short busy
  timeout so that the loop never sits in SQLite's wait while frames go unanalysed).
- Ctrl-C or SIGTERM: the first stops capture, the pipeline flushes the open second and ends the
  run `complete`; a second one interrupts at once. A run that does not end `complete` (a second
  Ctrl-C, a crash, SIGKILL: reaped by the next command) keeps no rows, as in `analyze`: nothing
  half-finished is left to pass for a result.
"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from engagement.app.live.capture import LiveCapture, LiveLoopOptions
from engagement.app.live.latency import StorePoller
from engagement.app.live.status import StatusLine
from engagement.app.pipeline import AnalysisPipeline, ConsentOptions, meeting_vision
from engagement.core.config import AnalysisOptions
from engagement.core.errors import StoreError
from engagement.core.i18n import cli_lang, translate
from engagement.core.interrupts import Terminated, signal_handlers
from engagement.core.records import RunningMode, RunSummary
from engagement.vision.gallery import GalleryLayout, GalleryVisionStage
from engagement.vision.layout import LayoutSpec
from engagement.vision.meeting import per_tile_options
from engagement.vision.screen import ScreenSource, parse_screen_region
from engagement.vision.sources import VideoReplaySource, WebcamSource, webcam_index

# A live loop must not sit in SQLite's busy wait (5 s for `analyze`) while frames go unanalysed:
# it waits this long, keeps the second buffered and retries with the next one.
LIVE_BUSY_TIMEOUT_MS = 250


def open_live_source(spec: str, options: LiveLoopOptions = LiveLoopOptions(), *, screen_fps: float = 10.0,
                     screen_grab=None, keep_name: bool = False) -> LiveCapture:
    """`webcam[:N]`, `screen[:X,Y,W,H]` or a video file path (replayed at its own rate; `keep_name`:
    record its file name, not a hash of it)."""
    text = str(spec)
    index = webcam_index(text)
    if index is not None:
        return LiveCapture(WebcamSource(index), options)
    if text == "screen" or text.startswith("screen:"):
        screen = ScreenSource(parse_screen_region(text), fps=screen_fps, grab=screen_grab)
        # No display, or a region off the screen, is bad input: refuse it now, before the run
        # starts, rather than retrying it forever. This also resolves a bare `screen` to the
        # first monitor's region, which the gallery layout needs.
        screen.open()
        screen.close()
        return LiveCapture(screen, options)
    return LiveCapture(VideoReplaySource(text, keep_name=keep_name), options)


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
    analysis_s: float = 0.0  # wall time spent analysing and storing the analysed frames


def run_live(
    store,
    source: LiveCapture,
    session: str,
    *,
    layout: GalleryLayout | LayoutSpec | None = None,
    analysis: AnalysisOptions | None = None,
    options: LiveLoopOptions = LiveLoopOptions(),
    profile: str = "id-pdp",
    consent: ConsentOptions | None = None,
    cohort: str | None = None,
    models_dir: Path | None = None,
    on_second: Callable[[int], None] | None = None,
    stream=None,
) -> LiveResult:
    """Run a live session until the source ends or Ctrl-C; per-second rows land as they are made."""
    analysis = analysis or AnalysisOptions(expression=False)
    if layout is not None:
        analysis = per_tile_options(analysis)  # a gallery: the expression CNN at the gallery's rate
    status = StatusLine(source, stream)
    trouble = _StoreTrouble(status, options.status)
    vision_factory = _vision_for(layout)
    pipeline = AnalysisPipeline(
        store, analysis, profile=profile, consent=consent or ConsentOptions(), models_dir=models_dir,
        vision_factory=vision_factory, on_store_error=trouble,
    )
    hook = _second_hook(status, trouble, options.status, on_second)
    if options.measure_latency and not source.options.measure_latency:
        source.options = replace(source.options, measure_latency=True)  # record capture times
    poller = StorePoller(store, session) if options.measure_latency else None
    started = time.monotonic()
    try:
        with stop_signals(source), store.busy_timeout(LIVE_BUSY_TIMEOUT_MS):
            if poller:
                poller.start()
            summary = pipeline.run(source, session, cohort=cohort, hook=hook)
    finally:
        status.close()
        if poller:
            poller.stop()
    # The per-face rate over the time capture ran (model loading before the first frame excluded).
    wall = time.monotonic() - (source.started_at or started)
    summary.notes.extend(f"source: {p}" for p in source.problems)
    return LiveResult(
        summary=summary,
        effective_fps=source.effective_fps(wall),
        captured=source.captured,
        dropped=source.dropped,
        rejected=source.rejected,
        reconnects=source.reconnects,
        store_retries=trouble.retries,
        problems=list(source.problems),
        latencies_s=poller.latencies(source.started_at, source.frame_times_ms) if poller else [],
        analysis_s=source.busy_s,
    )


def _vision_for(layout: GalleryLayout | LayoutSpec | None):
    """The pipeline's vision factory: the user's grid, a layout found from the frames as `analyze`
    finds it (`--layout`), or None for one camera."""
    if isinstance(layout, LayoutSpec):
        return meeting_vision(layout)
    if layout is None:
        return None

    def factory(opts: AnalysisOptions, mdir: Path | None, running_mode: RunningMode):
        return GalleryVisionStage.for_layout(opts, layout, mdir, running_mode=running_mode)

    return factory


class _StoreTrouble:
    """The pipeline's `on_store_error`: counts the store errors a live run rode out (a locked
    database keeps the second buffered) and shows the latest on the status line."""

    def __init__(self, status: StatusLine, show: bool):
        self.status, self.show = status, show
        self.retries, self.last = 0, 0.0

    def __call__(self, exc: StoreError) -> None:
        self.retries += 1
        self.last = time.monotonic()
        self.status.store_note = translate("cli.live.store_busy", cli_lang(), error=exc)
        if self.show:
            self.status.note(self.status.text(0))


def _second_hook(status: StatusLine, trouble: _StoreTrouble, show: bool,
                 on_second: Callable[[int], None] | None) -> Callable:
    """The pipeline's progress hook: clears a store note once flushes go through again, calls
    `on_second` once per new second, updates the status line."""
    last_second = [-1]

    def hook(progress) -> None:
        if status.store_note and time.monotonic() - trouble.last > 2.0:
            status.store_note = ""  # a flush went through since: the buffered seconds made it
        second = int(progress.t_ms // 1000)
        if second != last_second[0]:
            last_second[0] = second
            if on_second:
                on_second(second)
        if show:
            status(progress)

    return hook


def stop_signals(capture: LiveCapture):
    """First Ctrl-C or SIGTERM: stop capture, flush, finish (a service manager stopping a live
    session keeps the session). The second: interrupt now (the run keeps no rows)."""
    presses = [0]

    def handler(signum, frame) -> None:
        presses[0] += 1
        what = "Ctrl-C" if signum == signal.SIGINT else "SIGTERM"
        if presses[0] == 1:
            sys.stderr.write("\n" + translate("cli.live.stopping", cli_lang(), signal=what) + "\n")
            capture.stop()
        elif signum == signal.SIGTERM:
            raise Terminated
        else:
            raise KeyboardInterrupt

    return signal_handlers({signal.SIGINT: handler, signal.SIGTERM: handler})
