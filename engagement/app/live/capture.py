"""Live capture: one thread reads a `Source`, the analysis always takes the newest frame.

So the analysis is never more than one step behind the camera: frames it never took are counted
as dropped. The thread also rides out trouble: a device that disconnects or fails to open, a
screen grab that fails, a run of garbage frames are reported in `status` (and, once each, in
`problems`), retried with backoff, and capture resumes; the seconds without frames are simply
missing. `LiveCapture` is itself a `Source` (running mode LIVE), so the ordinary pipeline reads it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from engagement.app.live.rate import RateController
from engagement.core.errors import SourceError
from engagement.core.records import Frame, RunningMode
from engagement.vision.realtime import MAX_FRAME_PIXELS, WallClock
from engagement.vision.sources import Source

BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 5.0)


@dataclass(frozen=True)
class LiveLoopOptions:
    max_fps: float = 15.0  # analyses per second at most (per face: every face of a frame is measured)
    cpu_share: float = 0.85  # analysis may use this share of a core; the rest is for capture + writes
    status: bool = True  # the status line on stderr (shown only on a terminal)
    backoff_s: tuple[float, ...] = BACKOFF_S  # waits between reconnect attempts
    give_up_after_s: float | None = None  # None: keep retrying until Ctrl-C
    max_garbage: int = 10  # this many bad frames in a row count as a disconnect
    measure_latency: bool = False  # poll the store like a dashboard would (benchmarks, tests)


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


class LiveCapture:
    """Capture `source` in a thread, newest frame wins; the pipeline pulls frames through `frames()`.

    Besides the `Source` interface: live counters (captured, analysed, dropped, rejected,
    reconnects), `status`, the distinct `problems`, and `stop()` (what Ctrl-C calls).
    """

    running_mode = RunningMode.LIVE
    finite = True  # `read` returns None once capture stopped or the source ended
    duration_s = 0.0  # unknown: live

    def __init__(self, source: Source, options: LiveLoopOptions = LiveLoopOptions()):
        self.source = source
        self.options = options
        self.fps = source.fps
        self.captured = 0
        self.analysed = 0
        self.busy_s = 0.0  # wall time the consumer spent on the frames it took
        self.rejected = 0
        self.reconnects = 0
        self.status = "starting"
        self.problems: list[str] = []  # every distinct outage, for the run's closing summary
        self.warnings: list[str] = []
        self.rate = RateController(options.max_fps, options.cpu_share)
        self.frame_times_ms: list[float] = []  # analysed capture times, only when measuring latency
        self.clock = WallClock()
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._cond = threading.Condition()
        self._latest: tuple[int, float, np.ndarray] | None = None
        self._taken = 0
        self._thread: threading.Thread | None = None

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def frame_size(self) -> tuple[int, int] | None:
        return self.source.frame_size

    @property
    def started_at(self) -> float:
        """Monotonic time of t_ms == 0 (0 before capture started)."""
        return self.clock.started_at

    @property
    def frames_read(self) -> int:
        return self.captured

    @property
    def dropped(self) -> int:
        """Captured frames the analysis never took (it always takes the newest)."""
        return max(0, self.captured - self.analysed)

    def effective_fps(self, wall_s: float) -> float:
        return self.analysed / wall_s if wall_s > 0 else 0.0

    def redact(self, text: str) -> str:
        return self.source.redact(text)

    def check_complete(self) -> None:
        return None

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def _set_status(self, text: str, problem: bool = False) -> None:
        self.status = text
        if problem and (not self.problems or self.problems[-1] != text):
            self.problems.append(text)

    # the capture thread --------------------------------------------------------------------------

    def _capture(self) -> None:
        size: tuple[int, int] | None = None
        opened = False
        failures = 0
        garbage = 0
        outage_since: float | None = None
        while not self._stop.is_set():
            if not opened:
                try:
                    self.source.open()
                    opened = True
                except Exception as exc:  # noqa: BLE001 - any open failure is retried
                    if self._retry_wait(exc, failures, outage_since):
                        return
                    outage_since = outage_since or time.monotonic()
                    failures += 1
                    continue
            try:
                image = self.source.read()
            except Exception as exc:  # noqa: BLE001 - a read failure is a disconnect
                self._close_quietly()
                opened = False
                outage_since = outage_since or time.monotonic()
                if self._retry_wait(exc, failures, outage_since):
                    return
                failures += 1
                continue
            if image is None and self.source.finite:
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
            self._publish(image)
        self._close_quietly()

    def _publish(self, image) -> None:
        """Make `image` the newest frame, stamped now, and wake the reader."""
        t_ms = self.clock.now_ms()
        with self._cond:
            self.captured += 1
            self._latest = (self.captured, t_ms, image)
            self._cond.notify_all()

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
            self.source.close()
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

    # the consumer's side -----------------------------------------------------------------------

    def open(self) -> None:
        """Start capturing (once); t_ms counts from here."""
        if self._thread is None:
            self.clock.start()
            self._thread = threading.Thread(target=self._run_capture, name="live-capture", daemon=True)
            self._thread.start()

    def _take(self) -> tuple[int, float, np.ndarray] | None:
        """The newest frame not yet taken, waiting for one; None once stopped or ended."""
        with self._cond:
            while not self._stop.is_set() and (self._latest is None or self._latest[0] == self._taken):
                if self._ended.is_set():
                    break
                self._cond.wait(0.25)
            if self._stop.is_set() or self._latest is None or self._latest[0] == self._taken:
                return None
            self._taken = self._latest[0]
            return self._latest

    def read(self) -> np.ndarray | None:
        taken = self._take()
        return None if taken is None else taken[2]

    def close(self) -> None:
        self.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def frames(self) -> Iterator[Frame]:
        self.open()
        next_due = 0.0
        try:
            while True:
                wait = next_due - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
                taken = self._take()
                if taken is None:
                    break  # stopped, or the capture ended with nothing new
                index, t_ms, image = taken
                self.analysed += 1
                if self.options.measure_latency:
                    self.frame_times_ms.append(t_ms)
                step = time.monotonic()
                yield Frame(t_ms=t_ms, index=index - 1, image=image)
                # The consumer (vision + consent + windows + store) ran between yield and here.
                took = time.monotonic() - step
                self.busy_s += took
                self.rate.observe(took)
                next_due = step + self.rate.period_s
        finally:
            self.close()
        if self.error is not None and not isinstance(self.error, SourceError):
            raise self.error
        if self.error is not None and self.analysed == 0:
            raise self.error
