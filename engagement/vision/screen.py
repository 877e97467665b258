"""Screen capture (a meeting app's gallery view): a region of the display, grabbed with `mss`."""

from __future__ import annotations

import cv2
import mss
import numpy as np

from engagement.core.errors import SourceError
from engagement.vision.realtime import MAX_FRAME_PIXELS, Pacer, RealTimeSource


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


class ScreenSource(RealTimeSource):
    """A screen region (a meeting app's gallery view), grabbed with `mss` at most `fps` times a second.

    `region` None means the whole first monitor. A custom grabber (`grab(region) -> BGR or BGRA
    image`, a fake in tests) needs a region. Used directly (`frames()`, raises on failure) or by
    a live capture (`open`/`read`/`close`), which reconnects when a grab fails: `close` drops the
    display connection, so the next `open` connects afresh (an X server or remote desktop that
    restarted serves again).
    """

    def __init__(self, region: tuple[int, int, int, int] | None = None, fps: float = 10.0, grab=None):
        if region is None and grab is not None:
            raise ValueError("a custom screen grabber needs a region")
        super().__init__()
        self.region = region
        self.fps = fps
        self._grab = grab
        self._screen: mss.MSS | None = None  # our own display connection, None with a custom grabber
        self._pacer = Pacer(fps, catch_up=False)

    @property
    def name(self) -> str:
        return "screen" if self.region is None else "screen:" + ",".join(str(v) for v in self.region)

    @property
    def frame_size(self) -> tuple[int, int] | None:
        return None if self.region is None else (self.region[2], self.region[3])

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
        self._pacer.wait()
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
