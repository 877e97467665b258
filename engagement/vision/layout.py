"""The meeting layout of a recording, found from its frames: one person, or a gallery of tiles.

A meeting app draws its gallery as tiles on a plain background (Zoom, Meet: a near-black or dark
grey canvas), with a gap of that background between tiles, letterbox bars of it around feeds of
another aspect, and a last row that is not full (centred by Zoom). So the layout is read from
where the background is, on a frame subsampled to about 640 px wide (a stride, not an average,
so a gap of a few pixels stays pure background):

1. the background colour is the commonest colour of the frame's outer border;
2. rows of the frame that are (almost) all background split it into horizontal bands;
3. in each band, columns that are all background split it into tiles.

A camera-off tile (a name on a plain tile) is a tile like any other: it is where a participant
is, without video. The result is accepted as a gallery only when it looks like one (2-49 tiles,
at most 7 per row and 7 rows, tiles of similar size, none tiny). Failing that, one large tile
beside a strip of small tiles of one size (cut again inside each piece, so a strip stacked
beside the large tile is found too) is a `filmstrip`: speaker view or a shared screen, whose
participants are the strip's tiles. Anything else is `single`, the whole frame, which is what a
recording of one person's camera gives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from engagement.core.errors import ConfigError

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels

# Working width of the subsampled frame: 4-8 px gaps of a 1080p recording stay >= 1 px.
WORK_WIDTH = 640
# A pixel is background when every channel is within this of the background colour (0-255):
# an mp4v key frame rings up to 6-10 levels into a 6 px gap beside a bright tile (6 lost the gaps
# of a generated 3x3 key frame, 10 kept them). A camera-off tile as dark as the canvas is then
# still found by its name label, which is lighter.
BACKGROUND_TOLERANCE = 10
# Breaks of up to this many subsampled pixels along a gap line are filled (compression ringing).
CLOSE_PX = 7
# A row or column is a gap when at least this share of its pixels is background (compression
# noise at tile edges).
GAP_SHARE = 0.97
# Tiles smaller than this share of the frame's width or height are noise (a name label, a logo).
MIN_TILE_SHARE = 0.05
# Tiles of one gallery are drawn the same size; letterboxing makes their content differ: a
# narrow feed (5:4, 1:1) is pillarboxed to 0.6-0.7 of a 16:9 tile's width at full height. A
# candidate whose tiles differ by more than these factors is not a gallery.
MAX_HEIGHT_RATIO = 1.8
MAX_WIDTH_RATIO = 2.5
MAX_GRID = 7  # Zoom shows at most 7x7 = 49 tiles
# Speaker view and a shared screen: the large tile is at least this many times a strip tile's area.
LARGE_TILE_FACTOR = 4.0


@dataclass(frozen=True)
class MeetingLayout:
    """What the frame shows: `single` (one camera, the whole frame) or `grid` (tiles)."""

    kind: str  # "single" | "grid" | "filmstrip" (a large tile beside a strip of small ones)
    size: tuple[int, int]  # frame width, height
    tiles: tuple[Rect, ...] = ()  # grid: occupied tiles in reading order
    cols: int = 1
    rows: int = 1
    fixed: bool = False  # given by the user (`grid:COLSxROWS`): every cell, occupied or not
    stage: Rect | None = None  # filmstrip: the large tile (the speaker or the shared screen)

    @property
    def is_grid(self) -> bool:
        """Analysed tile by tile (a gallery, or the strip beside a speaker or a shared screen)."""
        return self.kind in ("grid", "filmstrip")

    def describe(self) -> str:
        """`single`, e.g. `grid 3x3, 8 tiles` or `large tile + filmstrip, 5 tiles`: what the
        summary prints and the run records."""
        if self.kind == "filmstrip":
            return f"large tile + filmstrip, {len(self.tiles)} tiles"
        if not self.is_grid:
            return "single"
        return f"grid {self.cols}x{self.rows}, {len(self.tiles)} tiles"

    def same_as(self, other: "MeetingLayout | None", tolerance: float = 0.25) -> bool:
        """The same tiles in the same places: as many, each centre within `tolerance` of a tile's
        size of the other's. Centres, not edges: a feed that turns into a camera-off card changes
        its letterbox bars, not its tile."""
        if other is None or self.kind != other.kind or len(self.tiles) != len(other.tiles):
            return False
        for a, b in zip(self.tiles, other.tiles):
            w, h = max(1, a[2] - a[0]), max(1, a[3] - a[1])
            if abs((a[0] + a[2] - b[0] - b[2]) / 2) > tolerance * w or abs((a[1] + a[3] - b[1] - b[3]) / 2) > tolerance * h:
                return False
        return True


def single(size: tuple[int, int]) -> MeetingLayout:
    return MeetingLayout("single", size)


def fixed_grid(cols: int, rows: int, size: tuple[int, int]) -> MeetingLayout:
    """The user's grid: equal cells over the whole frame (what `live --grid` cuts)."""
    w, h = size
    tiles = tuple(
        (c * w // cols, r * h // rows, (c + 1) * w // cols, (r + 1) * h // rows)
        for r in range(rows)
        for c in range(cols)
    )
    return MeetingLayout("grid", size, tiles, cols, rows, fixed=True)


@dataclass(frozen=True)
class LayoutSpec:
    """`--layout`: auto (found from the frames), single, or grid:COLSxROWS (the user's grid)."""

    mode: str = "auto"  # auto | single | grid
    grid: tuple[int, int] | None = None

    def __str__(self) -> str:
        return f"grid:{self.grid[0]}x{self.grid[1]}" if self.grid else self.mode


def parse_layout(text: str) -> LayoutSpec:
    value = str(text).strip().lower()
    if value in ("auto", "single"):
        return LayoutSpec(value)
    if value.startswith("grid:"):
        try:
            cols, rows = (int(v) for v in value[5:].split("x"))
        except ValueError:
            cols = rows = 0
        if 1 <= cols <= 10 and 1 <= rows <= 10:
            return LayoutSpec("grid", (cols, rows))
    raise ConfigError(f"--layout must be auto, single or grid:COLSxROWS (e.g. grid:3x3), got {text!r}")


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, end) of each run of True in a 1-D bool array."""
    padded = np.concatenate(([False], flags, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def background_mask(small: np.ndarray) -> np.ndarray:
    """True where a pixel has the colour of the frame's border (the meeting app's canvas)."""
    border = np.concatenate([small[0], small[-1], small[:, 0], small[:, -1]]).astype(np.int16)
    # The commonest border colour, quantised to 8 levels so compression noise votes together.
    keys = (border // 8) @ np.array([1024, 32, 1], np.int16).astype(np.int32)
    common = np.bincount(keys).argmax()
    colour = np.median(border[keys == common], axis=0)
    diff = np.abs(small.astype(np.int16) - colour.astype(np.int16))
    return np.all(diff <= BACKGROUND_TOLERANCE, axis=2)


def _closed(bg: np.ndarray, kernel: tuple[int, int]) -> np.ndarray:
    """The mask with short breaks along one direction filled: compression rings a few pixels
    into a gap next to a bright tile edge, and a gap line must still read as one."""
    return cv2.morphologyEx(bg.astype(np.uint8), cv2.MORPH_CLOSE, np.ones(kernel, np.uint8)).astype(bool)


def _tiles_in(bg: np.ndarray) -> list[list[tuple[int, int, int, int]]]:
    """Content rectangles per horizontal band, in subsampled pixels."""
    bands = _runs(_closed(bg, (1, CLOSE_PX)).mean(axis=1) < GAP_SHARE)
    vertical = _closed(bg, (CLOSE_PX, 1))
    out = []
    for y0, y1 in bands:
        columns = _runs(vertical[y0:y1].mean(axis=0) < GAP_SHARE)
        out.append([(x0, y0, x1, y1) for x0, x1 in columns])
    return out


def opening_layout(images: list[np.ndarray]) -> MeetingLayout | None:
    """The layout most of a recording's opening frames show (None without frames)."""
    found = [detect_layout(image) for image in images]
    return max(found, key=lambda a: sum(a.same_as(b) for b in found)) if found else None


def detect_layout(image: np.ndarray) -> MeetingLayout:
    """The layout one frame shows (`single` unless it is clearly a gallery)."""
    height, width = image.shape[:2]
    stride = max(1, round(width / WORK_WIDTH))
    small = image[::stride, ::stride]
    sh, sw = small.shape[:2]
    bands = [
        [t for t in band if t[2] - t[0] >= MIN_TILE_SHARE * sw and t[3] - t[1] >= MIN_TILE_SHARE * sh]
        for band in _tiles_in(background_mask(small))
    ]
    bands = [band for band in bands if band]
    tiles = [t for band in bands for t in band]
    if not (2 <= len(tiles) <= MAX_GRID * MAX_GRID and len(bands) <= MAX_GRID):
        return single((width, height))
    if max(len(band) for band in bands) > MAX_GRID:
        return single((width, height))
    if not _same_size(tiles):
        return _filmstrip(small, stride, (width, height)) or single((width, height))
    return MeetingLayout("grid", (width, height), _cells(tiles, stride, (width, height)),
                         max(len(b) for b in bands), len(bands))  # fmt: skip


def _same_size(tiles: list[Rect]) -> bool:
    widths = [t[2] - t[0] for t in tiles]
    heights = [t[3] - t[1] for t in tiles]
    return max(widths) <= MAX_WIDTH_RATIO * min(widths) and max(heights) <= MAX_HEIGHT_RATIO * min(heights)


def _cells(tiles: list[Rect], stride: int, size: tuple[int, int]) -> tuple[Rect, ...]:
    """Every tile of a gallery is one size; what differs is the feed's letterbox inside it, which
    is centred. So each tile is the largest content size around its own centre: the whole tile,
    bars included, whatever feed (or camera-off card) it shows now, as a swap needs."""
    width, height = size
    half_w = max(t[2] - t[0] for t in tiles) * stride / 2
    half_h = max(t[3] - t[1] for t in tiles) * stride / 2
    return tuple(
        (
            max(0, int((x0 + x1) * stride / 2 - half_w)),
            max(0, int((y0 + y1) * stride / 2 - half_h)),
            min(width, int((x0 + x1) * stride / 2 + half_w)),
            min(height, int((y0 + y1) * stride / 2 + half_h)),
        )
        for x0, y0, x1, y1 in tiles
    )


def _pieces(rows_bg: np.ndarray, cols_bg: np.ndarray, rect: Rect, depth: int = 0) -> list[Rect]:
    """Content rectangles by recursive cuts along background rows, then columns, then rows
    again (a filmstrip stacked beside a large tile is one column until cut again)."""
    x0, y0, x1, y1 = rect
    out = []
    for r0, r1 in _runs(rows_bg[y0:y1, x0:x1].mean(axis=1) < GAP_SHARE):
        for c0, c1 in _runs(cols_bg[y0 + r0 : y0 + r1, x0:x1].mean(axis=0) < GAP_SHARE):
            piece = (x0 + c0, y0 + r0, x0 + c1, y0 + r1)
            out.extend(_pieces(rows_bg, cols_bg, piece, depth + 1) if piece != rect and depth < 3 else [piece])
    return out


def _in_line(tiles: list[Rect]) -> bool:
    """All in one row or one column (centres within half a tile): what a filmstrip is."""
    xs = [(t[0] + t[2]) / 2 for t in tiles]
    ys = [(t[1] + t[3]) / 2 for t in tiles]
    w = min(t[2] - t[0] for t in tiles)
    h = min(t[3] - t[1] for t in tiles)
    return max(ys) - min(ys) <= h / 2 or max(xs) - min(xs) <= w / 2


def _filmstrip(small: np.ndarray, stride: int, size: tuple[int, int]) -> MeetingLayout | None:
    """Speaker view or a shared screen: one large tile (the speaker, the screen) beside a strip
    of two or more small tiles of one size in a row or a column (the participants). The participants are the strip's tiles: the
    large tile repeats whoever speaks, or shows no one."""
    sh, sw = small.shape[:2]
    bg = background_mask(small)
    pieces = [
        p for p in _pieces(_closed(bg, (1, CLOSE_PX)), _closed(bg, (CLOSE_PX, 1)), (0, 0, sw, sh))
        if p[2] - p[0] >= MIN_TILE_SHARE * sw and p[3] - p[1] >= MIN_TILE_SHARE * sh
    ]  # fmt: skip
    if len(pieces) < 2:
        return None
    area = [(p[2] - p[0]) * (p[3] - p[1]) for p in pieces]
    large = max(range(len(pieces)), key=area.__getitem__)
    strip = [p for i, p in enumerate(pieces) if i != large]
    if len(strip) < 2 or not _same_size(strip) or not _in_line(strip):
        return None
    if area[large] < LARGE_TILE_FACTOR * max(a for i, a in enumerate(area) if i != large):
        return None
    x0, y0, x1, y1 = pieces[large]
    return MeetingLayout("filmstrip", size, _cells(strip, stride, size), len(strip), 1,
                         stage=(x0 * stride, y0 * stride, x1 * stride, y1 * stride))  # fmt: skip


@dataclass
class LayoutWatcher:
    """Re-reads the layout every `every_ms` of media time; a new layout is taken only when two
    checks in a row agree (a transition frame, a participant's video cutting to a plain frame
    for a moment, must not re-cut the tiles). `changes` lists (t_ms, layout) as taken."""

    every_ms: float = 1000.0
    confirm: int = 2
    # A layout that differs is checked again this soon, so a real change costs about a second
    # of wrongly cut tiles, not `confirm` whole periods.
    recheck_ms: float = 200.0
    changes: list[tuple[float, MeetingLayout]] = field(default_factory=list)
    _next_ms: float = 0.0
    _candidate: MeetingLayout | None = None
    _seen: int = 0

    @property
    def current(self) -> MeetingLayout | None:
        return self.changes[-1][1] if self.changes else None

    @property
    def pending(self) -> bool:
        """A different layout was seen and awaits confirmation: the tiles may be cut wrongly now."""
        return self._candidate is not None

    def update(self, t_ms: float, image: np.ndarray, *, force: bool = False) -> MeetingLayout | None:
        """A new layout to switch to at this frame, or None (keep the current one; before the
        first is confirmed, a fifth of a second in, there is none). `force`: check now (many
        tiles cut at once: the app may have re-cut the grid)."""
        if t_ms < self._next_ms and not force:
            return None
        self._next_ms = t_ms + self.every_ms
        found = detect_layout(image)
        if found.same_as(self.current):
            self._candidate, self._seen = None, 0
            return None
        # The first layout is confirmed like any change: a recording's first frame is often its
        # worst (an encoder's first key frame rings most, a meeting app fades in).
        if found.same_as(self._candidate):
            self._seen += 1
        else:
            self._candidate, self._seen = found, 1
        if self._seen < self.confirm:
            self._next_ms = t_ms + self.recheck_ms
            return None
        self._candidate, self._seen = None, 0
        self.changes.append((t_ms, found))
        return found
