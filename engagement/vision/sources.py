"""Frame sources: a video file, a webcam, a screen region, or a replay. Each yields `Frame`s with strictly increasing times.

Every source implements `Source`: `analyze` and `live` read the same interface, and the source's
`running_mode` (not its type or name) says how a run treats it: VIDEO_FILE decodes as fast as the
machine allows and is complete only at the file's end; LIVE frames arrive in real time.

Frames are streamed one at a time (never a whole video in memory), and a source checks what it
can up front so that bad input fails before anything is written: a missing file, a file that is
not a video, a still image under a video's name, frames larger than 8K, a video with no frames.
A truncated video is only noticed at its end (the container promised more frames than could be
decoded); `VideoFileSource.check_complete()` says so. An MPEG stream (.mpg, .ts) promises no
length; one that ends inside a packet is reported in `warnings`.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

# FFmpeg's own chatter ("moov atom not found", ...) would bury our one-line errors.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

cv2.setLogLevel(2)  # errors only: OpenCV warnings would bury our one-line messages

from engagement.core.errors import SourceError  # noqa: E402
from engagement.core.records import Frame, RunningMode  # noqa: E402
from engagement.vision.realtime import MAX_FRAME_PIXELS, FrameSampler, Pacer, RealTimeSource  # noqa: E402
from engagement.vision.video_checks import mpeg_cut_warning, still_image_kind  # noqa: E402

# A container may declare a few frames more than it decodes (edit lists, B-frame tails: 3 of 98
# in one real clip); more than this share missing means the file was cut short.
TRUNCATION_TOLERANCE = 0.05


def name_digest(path: Path) -> str:
    """A short, stable stand-in for a file name (recordings are often named after a person)."""
    return hashlib.sha256(Path(path).name.encode("utf-8")).hexdigest()[:10]


def recorded_name(path: Path, *, keep: bool) -> str:
    """What a run records as its source: the file name only when the user opted in (`keep`),
    otherwise a short hash of it plus the extension, e.g. `file-3f2a9c1b7e.mp4`."""
    path = Path(path)
    return path.name if keep else f"file-{name_digest(path)}{path.suffix.lower()}"


@runtime_checkable
class Source(Protocol):
    """What `analyze` and `live` read from any source of frames.

    `frames()` yields frames with strictly increasing `t_ms`. `open`/`read`/`close` give one image
    at a time (a capture thread's view); `read` returns None only when a `finite` source ended,
    and raises `SourceError` when a device fails. Unknown numbers are 0.
    """

    running_mode: RunningMode
    finite: bool  # it ends by itself (a file, a replay); a camera or a screen never does
    fps: float  # its own frame rate, 0 when unknown
    duration_s: float  # 0 when unknown (live)
    frames_read: int
    warnings: list[str]  # problems noticed that did not stop the run, for its summary

    @property
    def name(self) -> str: ...  # what a run records as its source: never a directory path

    @property
    def frame_size(self) -> tuple[int, int] | None: ...  # (width, height) when known before the first frame

    def frames(self) -> Iterator[Frame]: ...

    def open(self) -> None: ...

    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...

    def check_complete(self) -> None: ...  # raises SourceError when a file turned out cut short

    def redact(self, text: str) -> str: ...  # a message about the source as it may be stored


class VideoFileSource:
    """Decode a video file frame by frame, as fast as the machine allows."""

    running_mode = RunningMode.VIDEO_FILE
    finite = True

    def __init__(self, path: str | Path, sample_fps: float | None = None, *, keep_name: bool = False):
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise SourceError(f"no such file: {self.path}")
        if not self.path.is_file():
            raise SourceError(f"not a file: {self.path}")
        if self.path.stat().st_size == 0:
            raise SourceError(f"{self.path.name} is empty (0 bytes)")
        try:
            with open(self.path, "rb") as fh:
                image = still_image_kind(fh.read(16))
        except OSError as exc:
            raise SourceError(f"cannot read {self.path.name}: {exc.strerror}") from None
        if image:
            raise SourceError(f"{self.path.name} is a still image ({image}), not a video")
        self.sample_fps = sample_fps
        self.keep_name = keep_name
        cap = self._open()
        # Refuse an oversized frame before decoding one: decoding alone would allocate it.
        self._check_size(self.width, self.height)
        ok, _ = cap.read()
        cap.release()
        if not ok:
            raise SourceError(f"{self.path.name} contains no decodable frames (empty or truncated video)")
        self.warnings = [w for w in [mpeg_cut_warning(self.path)] if w]
        self.frames_read = 0
        self.frames_yielded = 0
        self._cap: cv2.VideoCapture | None = None

    def _check_size(self, width: int, height: int) -> None:
        if width * height > MAX_FRAME_PIXELS:
            raise SourceError(
                f"{self.path.name} has {width}x{height} frames, more than the {MAX_FRAME_PIXELS // 10**6} "
                "megapixels (8K) analysed here; scale it down first, e.g. "
                "ffmpeg -i INPUT -vf scale=1920:-2 OUTPUT.mp4"
            )

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
        # Never a directory path; the file name itself only when the user opted in.
        return recorded_name(self.path, keep=self.keep_name)

    @property
    def frame_size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.width and self.height else None

    def redact(self, text: str) -> str:
        """A message about this file as it may be stored (with the recorded name)."""
        return text.replace(self.path.name, self.name)

    @property
    def duration_s(self) -> float:
        return self.declared_frames / self.fps if self.fps and self.declared_frames else 0.0

    def open(self) -> None:
        if self._cap is None:  # a file that was read to its end is not started again
            self._cap = self._open()

    def read(self) -> np.ndarray | None:
        """The next frame, every frame (no sampling); None at the end of the file."""
        ok, image = self._cap.read() if self._cap is not None else (False, None)
        return image if ok else None

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()

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
                if image.shape[0] * image.shape[1] > MAX_FRAME_PIXELS:  # the size changed mid-stream
                    self._check_size(image.shape[1], image.shape[0])
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

    def opening_images(self, seconds: float = 2.0, count: int = 8) -> list[np.ndarray]:
        """`count` frames evenly spread over the file's first `seconds`, read apart from the run
        (to read its layout beforehand)."""
        cap = self._open()
        every = max(1, round((self.fps or 25.0) * seconds / count))
        images: list[np.ndarray] = []
        try:
            for index in range(every * count):
                if not cap.grab():  # decoded, but converted to an image only when kept
                    break
                if index % every == 0:
                    ok, image = cap.retrieve()
                    if ok and image is not None:
                        images.append(image)
        finally:
            cap.release()
        return images

    def check_complete(self) -> None:
        """Raise if the file decoded fewer frames than its container declares (cut short)."""
        if self.declared_frames and self.frames_read < self.declared_frames * (1 - TRUNCATION_TOLERANCE) - 2:
            raise SourceError(
                f"{self.path.name} is truncated: decoded {self.frames_read} of {self.declared_frames} frames"
            )


class VideoReplaySource(RealTimeSource):
    """A video file played at its own frame rate, as if it were a camera (`live VIDEO`)."""

    finite = True

    def __init__(self, path: str | Path, *, keep_name: bool = False):
        super().__init__()
        self.file = VideoFileSource(path, keep_name=keep_name)  # validates the file up front
        self.name, self.frame_size = self.file.name, self.file.frame_size
        self.fps = self.file.fps or 25.0
        self._pacer = Pacer(self.fps, catch_up=True)

    def redact(self, text: str) -> str:
        return self.file.redact(text)

    def open(self) -> None:
        self.file.open()

    def read(self) -> np.ndarray | None:
        self._pacer.wait()
        return self.file.read()

    def close(self) -> None:
        self.file.close()


class FramesSource(RealTimeSource):
    """Pre-decoded frames played in a loop at `fps` for `duration_s` (tests and benchmarks)."""

    finite = True
    name = "frames"

    def __init__(self, frames: Sequence[np.ndarray], fps: float, duration_s: float):
        super().__init__()
        self.images, self.fps, self.duration_s = frames, fps, duration_s
        self.frame_size = (frames[0].shape[1], frames[0].shape[0]) if len(frames) else None
        self._pacer = Pacer(fps, catch_up=True)
        self._i = 0

    def open(self) -> None:
        return None

    def read(self) -> np.ndarray | None:
        if self._i >= self.duration_s * self.fps:
            return None
        self._pacer.wait()
        image = self.images[self._i % len(self.images)]
        self._i += 1
        return image

    def close(self) -> None:
        return None


class WebcamSource(RealTimeSource):
    """A local camera by index (OpenCV). `read` blocks at the camera's own rate."""

    def __init__(self, index: int = 0, sample_fps: float | None = None, width: int = 640, height: int = 480):
        super().__init__()
        self.index = index
        self.sample_fps = sample_fps
        self.size = (width, height)  # asked for; the camera may deliver another
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
        if not ok or image is None:
            raise SourceError(f"camera {self.index} stopped delivering frames (disconnected?)")
        return image

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def webcam_index(spec: str) -> int | None:
    """The camera index of a `webcam` / `webcam:N` spec; None: the spec names no camera."""
    text = str(spec)
    if text != "webcam" and not text.startswith("webcam:"):
        return None
    _, _, num = text.partition(":")
    try:
        return int(num) if num else 0
    except ValueError:
        raise SourceError(f"webcam index must be a number, got {num!r}") from None


def open_source(spec: str | Path, sample_fps: float | None = None, *, keep_name: bool = False) -> Source:
    """A source from a CLI spec: `webcam`, `webcam:N`, or a video file path (`keep_name`: record
    the file's name, see `recorded_name`)."""
    index = webcam_index(str(spec))
    if index is not None:
        return WebcamSource(index, sample_fps)
    return VideoFileSource(spec, sample_fps, keep_name=keep_name)
