"""Frame sources: a video file or a webcam. Each yields `Frame`s with strictly increasing times.

Frames are streamed one at a time (never a whole video in memory), and a source checks what it
can up front so that bad input fails before anything is written: a missing file, a file that is
not a video, a video with no frames. A truncated video is only noticed at its end (the container
promised more frames than could be decoded); `VideoFileSource.check_complete()` says so.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from pathlib import Path

# FFmpeg's own chatter ("moov atom not found", ...) would bury our one-line errors.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import cv2  # noqa: E402

cv2.setLogLevel(2)  # errors only: OpenCV warnings would bury our one-line messages

from engagement.errors import SourceError  # noqa: E402
from engagement.records import Frame  # noqa: E402

# A container may declare a few frames more than it decodes (edit lists, B-frame tails); more
# than this share missing means the file was cut short.
TRUNCATION_TOLERANCE = 0.03


class FrameSampler:
    """Keeps frames at most `fps` per second, by timestamp (works for variable frame rates)."""

    def __init__(self, fps: float | None):
        self.period_ms = 1000.0 / fps if fps else 0.0
        self.next_ms = -math.inf

    def keep(self, t_ms: float) -> bool:
        if not self.period_ms:
            return True
        if t_ms + 1e-6 < self.next_ms:
            return False
        if self.next_ms == -math.inf:
            self.next_ms = t_ms + self.period_ms
        else:
            # Step along the ideal grid, not from t_ms, so frame jitter never drifts the rate
            # down; after a gap, restart the grid instead of bursting to catch up.
            self.next_ms = max(self.next_ms + self.period_ms, t_ms + self.period_ms / 2)
        return True


class VideoFileSource:
    """Decode a video file frame by frame."""

    kind = "file"

    def __init__(self, path: str | Path, sample_fps: float | None = None):
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise SourceError(f"no such file: {self.path}")
        if not self.path.is_file():
            raise SourceError(f"not a file: {self.path}")
        if self.path.stat().st_size == 0:
            raise SourceError(f"{self.path.name} is empty (0 bytes)")
        self.sample_fps = sample_fps
        cap = self._open()
        ok, _ = cap.read()
        cap.release()
        if not ok:
            raise SourceError(f"{self.path.name} contains no decodable frames (empty or truncated video)")
        self.frames_read = 0
        self.frames_yielded = 0

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(str(self.path), cv2.CAP_FFMPEG)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"{self.path.name} is not a readable video (not a video file, an unsupported codec, or cut short)"
            )
        self.fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        if not math.isfinite(self.fps) or self.fps <= 0 or self.fps > 1000:
            self.fps = 0.0
        count = cap.get(cv2.CAP_PROP_FRAME_COUNT)
        self.declared_frames = int(count) if math.isfinite(count) and count > 0 else 0
        self.width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        return cap

    @property
    def name(self) -> str:
        # Only the file name is recorded: a directory path can carry a person's name.
        return self.path.name

    @property
    def duration_s(self) -> float:
        return self.declared_frames / self.fps if self.fps and self.declared_frames else 0.0

    def frames(self) -> Iterator[Frame]:
        cap = self._open()
        sampler = FrameSampler(self.sample_fps)
        last_ms = -math.inf
        index = -1
        try:
            while True:
                if not cap.grab():
                    break
                index += 1
                self.frames_read += 1
                t_ms = self._timestamp(cap, index, last_ms)
                if not sampler.keep(t_ms):
                    continue
                ok, image = cap.retrieve()
                if not ok or image is None:
                    break
                last_ms = t_ms
                self.frames_yielded += 1
                yield Frame(t_ms=t_ms, index=index, image=image)
        finally:
            cap.release()

    def _timestamp(self, cap: cv2.VideoCapture, index: int, last_ms: float) -> float:
        # Prefer the container's presentation time (right for variable frame rates); fall back
        # to index / fps where it is missing or does not increase.
        pos = cap.get(cv2.CAP_PROP_POS_MSEC)
        if math.isfinite(pos) and pos >= 0 and pos > last_ms:
            return float(pos)
        if self.fps:
            guess = index * 1000.0 / self.fps
            if guess > last_ms:
                return guess
        return last_ms + 1.0 if math.isfinite(last_ms) else 0.0

    def check_complete(self) -> None:
        """Raise if the file decoded fewer frames than its container declares (cut short)."""
        if self.declared_frames and self.frames_read < self.declared_frames * (1 - TRUNCATION_TOLERANCE) - 1:
            raise SourceError(
                f"{self.path.name} is truncated: decoded {self.frames_read} of {self.declared_frames} frames"
            )


class WebcamSource:
    """A local camera by index. Times are wall-clock ms since the source started."""

    kind = "webcam"

    def __init__(self, index: int = 0, sample_fps: float | None = None, width: int = 640, height: int = 480):
        self.index = index
        self.sample_fps = sample_fps
        self.size = (width, height)
        self.frames_read = 0
        self.frames_yielded = 0
        self.declared_frames = 0

    @property
    def name(self) -> str:
        return f"webcam:{self.index}"

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self.index)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"camera {self.index} cannot be opened (not connected, or in use by another program)")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        return cap

    def frames(self) -> Iterator[Frame]:
        cap = self._open()
        sampler = FrameSampler(self.sample_fps)
        start = time.monotonic()
        last_ms = -1.0
        try:
            while True:
                ok, image = cap.read()
                if not ok or image is None:
                    raise SourceError(f"camera {self.index} stopped delivering frames (disconnected?)")
                self.frames_read += 1
                t_ms = max((time.monotonic() - start) * 1000.0, last_ms + 0.001)
                if not sampler.keep(t_ms):
                    continue
                last_ms = t_ms
                self.frames_yielded += 1
                yield Frame(t_ms=t_ms, index=self.frames_read - 1, image=image)
        finally:
            cap.release()

    def check_complete(self) -> None:
        return None


def open_source(spec: str | Path, sample_fps: float | None = None):
    """A source from a CLI spec: `webcam`, `webcam:N`, or a video file path."""
    text = str(spec)
    if text == "webcam" or text.startswith("webcam:"):
        _, _, num = text.partition(":")
        try:
            index = int(num) if num else 0
        except ValueError:
            raise SourceError(f"webcam index must be a number, got {num!r}") from None
        return WebcamSource(index, sample_fps)
    return VideoFileSource(text, sample_fps)
