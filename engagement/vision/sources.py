"""Frame sources: a video file, a webcam or a screen region. Each yields `Frame`s with strictly increasing times.

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
import time
from collections.abc import Iterator
from pathlib import Path

# FFmpeg's own chatter ("moov atom not found", ...) would bury our one-line errors.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")

import cv2  # noqa: E402
import mss  # noqa: E402
import numpy as np  # noqa: E402

cv2.setLogLevel(2)  # errors only: OpenCV warnings would bury our one-line messages

from engagement.errors import SourceError  # noqa: E402
from engagement.records import Frame  # noqa: E402

# A container may declare a few frames more than it decodes (edit lists, B-frame tails: 3 of 98
# in one real clip); more than this share missing means the file was cut short.
TRUNCATION_TOLERANCE = 0.05

# Largest frame analysed: 8K UHD. One BGR frame of this size is already 100 MB; a 16000x16000
# frame would be 768 MB before any copy, and no face analysis needs more than a 4K screen gives.
MAX_FRAME_PIXELS = 7680 * 4320

# Still images under a video's name: FFmpeg would decode them as a one-frame "video".
_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"),
)


def still_image_kind(head: bytes) -> str | None:
    """The image format a file's first bytes announce, or None (not a known still image)."""
    for magic, kind in _IMAGE_SIGNATURES:
        if head.startswith(magic):
            # "BM" is short: also check the size field of a real bitmap header (bytes 2-5).
            return kind if kind != "BMP" or len(head) >= 14 else None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WebP"
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif"):
        return "HEIF/AVIF"
    return None


def name_digest(path: Path) -> str:
    """A short, stable stand-in for a file name (recordings are often named after a person)."""
    return hashlib.sha256(Path(path).name.encode("utf-8")).hexdigest()[:10]


def recorded_name(path: Path, *, keep: bool) -> str:
    """What a run records as its source: the file name only when the user opted in (`keep`),
    otherwise a short hash of it plus the extension, e.g. `file-3f2a9c1b7e.mp4`."""
    path = Path(path)
    return path.name if keep else f"file-{name_digest(path)}{path.suffix.lower()}"


def mpeg_cut_warning(path: Path) -> str | None:
    """Whether an MPEG program or transport stream ends inside a packet: the file was cut short.

    Such containers declare no length (FFmpeg estimates one from the file size, so it always
    agrees with what decodes), but their packets carry lengths: a program stream's last packet
    claims bytes the file no longer holds, a transport stream stops between its fixed 188-byte
    packets. Not detectable: a cut exactly at a packet boundary.
    """
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(4)
        if head[:1] == b"\x47" and size >= 376:
            fh.seek(188)
            if fh.read(1) == b"\x47" and size % 188:
                return f"{path.name} ends inside a transport-stream packet: it was probably cut short; its end is missing"
            return None
        if head != b"\x00\x00\x01\xba":
            return None
        start = max(0, size - (1 << 20))
        fh.seek(start)
        tail = fh.read()
    if _ps_ends_inside_a_packet(tail):
        return f"{path.name} ends inside an MPEG packet: it was probably cut short; its end is missing"
    return None


def _ps_ends_inside_a_packet(data: bytes) -> bool:
    """Whether the packets of an MPEG program stream (its last 1 MiB) run past the data's end."""
    at = 0
    while (at := data.find(b"\x00\x00\x01", at)) >= 0:
        # Follow packet lengths from this candidate; a false start code soon lands off a packet.
        end, packets = at, 0
        while end < len(data):
            length = _ps_packet_length(data[end : end + 14])
            if not length:
                break
            end, packets = end + length, packets + 1
        if packets >= 3 and end >= len(data):
            return end > len(data)
        at += 1
    return False


def _ps_packet_length(head: bytes) -> int | None:
    """Length of the MPEG-PS packet that starts with `head` (its first 14 bytes; fewer at the end
    of the data, where a header cut short counts as one byte too long); None: not a packet."""
    cut = len(head) + 1
    if not head.startswith(b"\x00\x00\x01"):
        return cut if b"\x00\x00\x01".startswith(head) else None
    if len(head) < 4:
        return cut
    code = head[3]
    if code == 0xB9:  # program end code
        return 4
    if code == 0xBA:  # pack header: MPEG-2 (14 bytes + stuffing) or MPEG-1 (12 bytes)
        if len(head) < 5:
            return cut
        if head[4] >> 6 != 1:
            return 12
        return 14 + (head[13] & 7) if len(head) == 14 else cut
    if code >= 0xBB:  # system header, PES packets: 6 bytes + their stated length
        return 6 + int.from_bytes(head[4:6], "big") if len(head) >= 6 else cut
    return None


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

    def redact(self, text: str) -> str:
        """A message about this file as it may be stored (with the recorded name)."""
        return text.replace(self.path.name, self.name)

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

    def check_complete(self) -> None:
        """Raise if the file decoded fewer frames than its container declares (cut short)."""
        if self.declared_frames and self.frames_read < self.declared_frames * (1 - TRUNCATION_TOLERANCE) - 2:
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


def open_source(spec: str | Path, sample_fps: float | None = None, *, keep_name: bool = False):
    """A source from a CLI spec: `webcam`, `webcam:N`, or a video file path (`keep_name`: record
    the file's name, see `recorded_name`)."""
    text = str(spec)
    if text == "webcam" or text.startswith("webcam:"):
        _, _, num = text.partition(":")
        try:
            index = int(num) if num else 0
        except ValueError:
            raise SourceError(f"webcam index must be a number, got {num!r}") from None
        return WebcamSource(index, sample_fps)
    return VideoFileSource(text, sample_fps, keep_name=keep_name)


# -- screen capture (gallery view) -----------------------------------------------------------------


def parse_screen_region(text: str) -> tuple[int, int, int, int] | None:
    """`screen` -> None (the whole first monitor, known once the display is open);
    `screen:X,Y,W,H` -> region."""
    _, _, rest = str(text).partition(":")
    if not rest:
        return None
    try:
        x, y, w, h = (int(v) for v in rest.split(","))
    except ValueError:
        raise SourceError(f"screen region must be X,Y,W,H in pixels, e.g. screen:0,0,1280,720; got {rest!r}") from None
    if w < 64 or h < 64 or x < 0 or y < 0:
        raise SourceError(f"screen region {rest!r} must start at x,y >= 0 and be at least 64x64 px")
    if w * h > MAX_FRAME_PIXELS:
        raise SourceError(f"screen region {rest!r} is larger than the 8K ({MAX_FRAME_PIXELS // 10**6} megapixels) analysed here")
    return x, y, w, h


class ScreenSource:
    """A screen region (a meeting app's gallery view), grabbed with `mss` at most `fps` times a second.

    `region` None means the whole first monitor. A custom grabber (`grab(region) -> BGR or BGRA
    image`, a fake in tests) needs a region. Used directly (`frames()`, raises on failure) or as
    the grabber of a live source (`open`/`read`/`close`), which reconnects when a grab fails:
    `close` drops the display connection, so the next `open` connects afresh (an X server or
    remote desktop that restarted serves again).
    """

    kind = "screen"
    finite = False

    def __init__(self, region: tuple[int, int, int, int] | None = None, fps: float = 10.0, grab=None):
        if region is None and grab is not None:
            raise ValueError("a custom screen grabber needs a region")
        self.region = region
        self.fps = fps
        self._grab = grab
        self._screen: mss.MSS | None = None  # our own display connection, None with a custom grabber
        self._next = 0.0
        self.frames_read = 0
        self.frames_yielded = 0
        self.declared_frames = 0

    @property
    def name(self) -> str:
        return "screen" if self.region is None else "screen:" + ",".join(str(v) for v in self.region)

    def open(self) -> None:
        """Connect to the display and check that the region lies on it (SourceError otherwise)."""
        if self._grab is not None and self._screen is None:
            return  # a custom grabber
        self.close()
        try:
            screen = mss.MSS()
        except mss.ScreenShotError as exc:
            raise SourceError(
                f"screen capture needs a display and none could be opened ({exc}); "
                "run on the facilitator's desktop session"
            ) from None
        try:
            monitors = screen.monitors  # [0]: all monitors together, then each one
            left, top, width, height = (monitors[0][k] for k in ("left", "top", "width", "height"))
            if self.region is None:
                first = monitors[1] if len(monitors) > 1 else monitors[0]
                self.region = (first["left"], first["top"], first["width"], first["height"])
            x, y, w, h = self.region
            if x < left or y < top or x + w > left + width or y + h > top + height:
                raise SourceError(
                    f"{self.name} does not fit on the screen ({width}x{height} at {left},{top}); "
                    "choose a region inside it"
                )
            if w * h > MAX_FRAME_PIXELS:
                raise SourceError(f"{self.name} is larger than the 8K analysed here; choose a region of the screen")
        except BaseException:
            screen.close()
            raise
        self._screen = screen
        self._grab = self._grab_screen

    def _grab_screen(self, region: tuple[int, int, int, int]):
        x, y, w, h = region
        return np.asarray(self._screen.grab({"left": x, "top": y, "width": w, "height": h}))  # BGRA

    def read(self):
        """One grab as BGR, paced to `fps`; raises SourceError when the grab fails."""
        wait = self._next - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._next = max(self._next + 1.0 / self.fps, time.monotonic())
        try:
            image = self._grab(self.region)  # type: ignore[misc]
        except SourceError:
            raise
        except Exception as exc:  # noqa: BLE001 - any backend failure is one clear message
            raise SourceError(f"screen capture failed: {type(exc).__name__}: {exc}") from None
        if image is not None and getattr(image, "ndim", 0) == 3 and image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        return image

    def close(self) -> None:
        if self._screen is not None:
            screen, self._screen, self._grab = self._screen, None, None
            screen.close()

    def frames(self) -> Iterator[Frame]:
        self.open()
        start = time.monotonic()
        last_ms = -1.0
        try:
            while True:
                image = self.read()
                if image is None:
                    raise SourceError(f"{self.name} returned no image")
                self.frames_read += 1
                t_ms = max((time.monotonic() - start) * 1000.0, last_ms + 0.001)
                last_ms = t_ms
                self.frames_yielded += 1
                yield Frame(t_ms=t_ms, index=self.frames_read - 1, image=image)
        finally:
            self.close()

    def check_complete(self) -> None:
        return None
