"""Gallery view: a meeting grid of tiles, from a facilitator's screen or a recording.

The tiles are a user's grid (`live --grid`: `GalleryLayout`) or the tiles a detected layout
gives (`engagement.vision.layout`, through `engagement.vision.meeting`).

Why per-tile crops: MediaPipe's face landmarker finds faces with its short-range detector on a
128x128 rescale of the whole image, so in a 1280x720 grid a 60-90 px face shrinks to 6-9 px and is
missed. Running one landmarker per tile crop gives each face a detector input of its own tile
(a face fills 20-40 % of it), and in video mode the landmarker then tracks from the previous
frame's landmarks, so the detector only reruns when a tile loses its face. Measured against a
full-frame landmarker in `benchmarks/live_gallery.py --compare` (and, with mediapipe 0.10.21,
against the full-range detector); the figures are in docs/live.md.

Track ids are tile-anchored: an id belongs to a participant's *video tile* (their feed), not to a
screen position and not to a face embedding:
- a tile keeps its id while its feed continues, also through seconds without a face (camera
  off, looking away): the windows record those seconds as absent, never as a new person;
- when the meeting app moves or swaps tiles, the content that appears at the new position is
  matched to the content that left the old one (a tiny colour thumbnail of the whole tile,
  background included, which is far more distinctive between feeds than between frames of one
  feed), and the id moves with it. A tile whose content cuts without matching any other tile's
  previous content keeps its id (the same feed cut, e.g. a shared slide).
- consent follows the id: the gate is asked with the tile where the id was first seen (its home
  tile in the roster's layout), so after a swap nobody's data is stored under the other's
  pseudonym.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engagement.core.config import AnalysisOptions
from engagement.core.errors import ConfigError
from engagement.core.records import FaceObservation, Frame, RunningMode
from engagement.vision.landmarks import MODEL_NAME as LANDMARKER
from engagement.vision.landmarks import FaceLandmarker, LandmarkedFace, LandmarkerOptions, bundle_sha256, load_bundle
from engagement.vision.name_ids import NameIdentities, NameKey
from engagement.vision.quality import face_box
from engagement.vision.stage import VisionStage, expression_model_for, landmarker_options
from engagement.vision.tile_ids import TileIdTracker, signature_distance, tile_signature

__all__ = ["GalleryLayout", "GalleryVisionStage", "TileIdTracker", "compose_gallery", "parse_grid", "tile_signature"]

Rect = tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels

# A tile that has shown no face for EMPTY_AFTER_MS (camera off, nobody in the seat) is looked at
# once every EMPTY_RECHECK_MS, or at once when its picture changes by more than EMPTY_CHANGE
# (mean absolute thumbnail difference, 0-1: a camera turned on moves it by about 0.2, a still
# camera-off tile by under 0.004 frame to frame; tests/test_tile_schedule.py). The detector on an
# empty tile costs about as much as tracking a face, and in a class of 25 several tiles are
# empty. A face lost for a moment (a head turned far aside) is looked for in every frame, as before.
EMPTY_AFTER_MS = 2000.0
EMPTY_RECHECK_MS = 1000.0
EMPTY_CHANGE = 0.01

TILE_THREADS_VAR = "ENGAGEMENT_TILE_THREADS"


def tile_workers() -> int:
    """Threads that run the tiles' landmarkers: MediaPipe's calls release the GIL, so each core
    can analyse a tile at once (benchmarks/live_class.py). Two at most: past that the Python work
    between the calls, which holds the GIL, is what limits. $ENGAGEMENT_TILE_THREADS sets it
    (`batch` sets 1: each of its analyses has one core)."""
    wanted = os.environ.get(TILE_THREADS_VAR)
    if wanted:
        try:
            return max(1, int(wanted))
        except ValueError:
            raise ConfigError(f"{TILE_THREADS_VAR} must be a whole number, got {wanted!r}") from None
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(2, cores))


@dataclass(frozen=True)
class GalleryLayout:
    """A grid of `cols` x `rows` equal tiles over a `width` x `height` screen region."""

    cols: int
    rows: int
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (1 <= self.cols <= 10 and 1 <= self.rows <= 10):
            raise ConfigError(f"gallery grid must have 1-10 columns and rows, got {self.cols}x{self.rows}")
        if self.width < self.cols * 32 or self.height < self.rows * 32:
            raise ConfigError(f"a {self.cols}x{self.rows} grid needs at least 32x32 px per tile")

    @property
    def n_tiles(self) -> int:
        return self.cols * self.rows

    def tile_rect(self, index: int) -> Rect:
        """Pixel rectangle of tile `index` (row-major, 0-based)."""
        r, c = divmod(index, self.cols)
        return (
            c * self.width // self.cols,
            r * self.height // self.rows,
            (c + 1) * self.width // self.cols,
            (r + 1) * self.height // self.rows,
        )

    def tiles(self) -> list[Rect]:
        return [self.tile_rect(i) for i in range(self.n_tiles)]

    def tile_of(self, x: float, y: float) -> int | None:
        if not (0 <= x < self.width and 0 <= y < self.height):
            return None
        return int(y * self.rows // self.height) * self.cols + int(x * self.cols // self.width)


def parse_grid(text: str) -> tuple[int, int]:
    """`COLSxROWS`, e.g. `3x3` -> (3, 3)."""
    try:
        cols, rows = (int(v) for v in str(text).lower().replace(" ", "").split("x"))
    except ValueError:
        raise ConfigError(f"--grid must look like COLSxROWS, e.g. 3x3, got {text!r}") from None
    if not (1 <= cols <= 10 and 1 <= rows <= 10):
        raise ConfigError(f"--grid must have 1-10 columns and rows, got {text!r}")
    return cols, rows


def compose_gallery(
    tiles: Sequence[np.ndarray | None], layout: GalleryLayout, *, gap: int = 4, background: int = 32
) -> np.ndarray:
    """Draw images into a grid the way meeting apps do: letterboxed, with a gap between tiles.

    Used to build test and benchmark gallery videos from real clips; `None` is an empty tile.
    """
    canvas = np.full((layout.height, layout.width, 3), background, np.uint8)
    for index, image in enumerate(tiles[: layout.n_tiles]):
        if image is None:
            continue
        x0, y0, x1, y1 = layout.tile_rect(index)
        w, h = x1 - x0 - 2 * gap, y1 - y0 - 2 * gap
        scale = min(w / image.shape[1], h / image.shape[0])
        nw, nh = max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale))
        small = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        ox, oy = x0 + gap + (w - nw) // 2, y0 + gap + (h - nh) // 2
        canvas[oy : oy + nh, ox : ox + nw] = small
    return canvas


LandmarkerFactory = Callable[[LandmarkerOptions], FaceLandmarker]


def shipped_tile_models(options: AnalysisOptions, models_dir: Path | None = None) -> dict:
    """The shipped models for a per-tile stage, as its constructor takes them: the landmarker
    bundle is read and checked once and shared by every tile's landmarker."""
    bundle = load_bundle(models_dir)
    return {
        "expression_model": expression_model_for(options, models_dir),
        "landmarker_factory": lambda tile_options: FaceLandmarker(tile_options, bundle),
        "landmarker_sha256": bundle_sha256(models_dir),
    }


class GalleryVisionStage(VisionStage):
    """VisionStage for a meeting grid: one landmarker per tile crop, tile-anchored ids.

    `measure` is inherited unchanged, so gallery faces give the same numbers as any other face.
    The tiles are a `GalleryLayout`'s equal cells (`live --grid`) or any rectangles a detected
    layout gives (`set_tiles`, engagement/vision/meeting.py): one per-tile path for both.
    """

    _home_rects: dict[int, Rect] | None = None  # track id -> the tile rectangle it was first seen in

    def __init__(
        self,
        options: AnalysisOptions,
        layout: GalleryLayout | None,
        *,
        expression_model=None,
        landmarker_factory: LandmarkerFactory = FaceLandmarker.from_options,
        faces_per_tile: int = 1,
        running_mode: RunningMode = RunningMode.LIVE,
        landmarker_sha256: str | None = None,
        workers: int | None = None,
    ):
        self.layout = layout
        self._rects: list[Rect] = layout.tiles() if layout is not None else []
        self._occupied = False  # whether every tile is a participant (a detected layout's tiles)
        self._tile_options = landmarker_options(options, faces_per_tile, running_mode)
        # One landmarker per tile: each keeps its own tracking state and its own VIDEO-mode clock,
        # so a tile's face is re-detected only when that tile loses it. Created lazily, on a
        # tile's first use.
        self._factory = landmarker_factory
        self._landmarkers: list[FaceLandmarker | None] = [None] * len(self._rects)
        # Each tile's landmarker is called once per frame and the frame waits for all of them, so
        # every landmarker still sees its frames in time order, whichever thread runs it.
        workers = tile_workers() if workers is None else workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="tile") if workers > 1 else None
        # tile -> (first look that found it empty, last look, its thumbnail then)
        self._empty: dict[int, tuple[float, float, np.ndarray]] = {}
        super().__init__(
            options,
            landmarker=None,  # type: ignore[arg-type]
            expression_model=expression_model,
            landmarker_sha256=landmarker_sha256,
        )
        self.tile_ids = TileIdTracker(len(self._rects))
        self._tile_of_track: dict[int, int] = {}
        self._home_rects = {}
        self._faceless: list[tuple[int, tuple[float, float, float, float]]] = []
        self.names: NameIdentities | None = None  # identity from name labels: read_names

    @classmethod
    def for_layout(
        cls, options: AnalysisOptions, layout: GalleryLayout, models_dir=None, *, running_mode=RunningMode.LIVE
    ) -> "GalleryVisionStage":
        return cls(options, layout, running_mode=running_mode, **shipped_tile_models(options, models_dir))

    def model_versions(self) -> dict[str, dict[str, str]]:
        models = super().model_versions()
        models[LANDMARKER]["version"] += "-per-tile"
        return models

    def _landmarker(self, index: int) -> FaceLandmarker:
        lm = self._landmarkers[index]
        if lm is None:
            lm = self._landmarkers[index] = self._factory(self._tile_options)
        return lm

    def set_tiles(self, rects: Sequence[Rect], frame: Frame, *, occupied: bool) -> None:
        """Cut the frame into new tiles (a re-detected layout); ids follow their feeds into them."""
        self._close_landmarkers()
        self._empty = {}
        old_rects, self._rects = self._rects, list(rects)
        self._landmarkers = [None] * len(self._rects)
        self._occupied = occupied
        old_centres = [((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in old_rects]
        reach = min((x1 - x0) / 2 for x0, _, x1, _ in self._rects) if self._rects else 0.0
        self.tile_ids.relayout(
            [tile_signature(frame.image[y0:y1, x0:x1]) for x0, y0, x1, y1 in self._rects],
            [((x0 + x1) / 2, (y0 + y1) / 2) for x0, y0, x1, y1 in self._rects],
            old_centres,
            reach,
        )

    def observe(self, frame: Frame) -> list[FaceObservation]:
        self._advance_clock(frame)
        width, height = frame.size
        if self.layout is not None and (width, height) != (self.layout.width, self.layout.height):
            # The captured region changed size (window resized, camera renegotiated): same grid
            # over the new size; tiles keep their indices, so ids stay with them.
            self.layout = GalleryLayout(self.layout.cols, self.layout.rows, width, height)
            self._rects = self.layout.tiles()
            self._empty = {}
        return self._observe_tiles(frame)

    def _observe_tiles(self, frame: Frame) -> list[FaceObservation]:
        width, height = frame.size
        signatures = [tile_signature(frame.image[y0:y1, x0:x1]) for x0, y0, x1, y1 in self._rects]
        looked = [i for i, sig in enumerate(signatures) if self._look_at(i, sig, frame.t_ms)]
        if self._pool is not None:
            results = list(self._pool.map(lambda i: self._tile_face(i, frame), looked))
        else:
            results = [self._tile_face(i, frame) for i in looked]
        found: list[LandmarkedFace | None] = [None] * len(self._rects)
        for index, face in zip(looked, results):
            found[index] = face
            if face is None:
                since = self._empty.get(index, (frame.t_ms,))[0]
                self._empty[index] = (since, frame.t_ms, signatures[index])
            else:
                self._empty.pop(index, None)
        self.tile_ids.update(signatures, [f is not None for f in found], [self._occupied] * len(found))
        # Name labels (engagement/vision/name_ids.py): a tile showing a known name takes its id.
        skip = self.names.decide(self.tile_ids, frame.image, self._rects, signatures, frame.t_ms) if self.names else ()
        out = []
        self._faceless = []
        for index, (track_id, face) in enumerate(zip(self.tile_ids.ids(), found)):
            if track_id is None or index in skip:
                continue
            self._tile_of_track[track_id] = index
            self._home_rects.setdefault(track_id, self._rects[index])  # type: ignore[union-attr]
            if face is None:
                self._faceless.append((track_id, self._home_box(track_id)))
                continue
            box = face_box(face.landmarks, width, height)
            out.append(FaceObservation(track_id, box, face.landmarks, face.blendshapes, face.transform))
        return out

    def _look_at(self, index: int, signature: np.ndarray, t_ms: float) -> bool:
        """Whether tile `index` goes through its landmarker this frame: always while it shows a
        face or lost it only lately; a long-empty one when its picture changed or
        EMPTY_RECHECK_MS passed."""
        empty = self._empty.get(index)
        if empty is None:
            return True
        since_ms, looked_ms, looked_signature = empty
        return (
            looked_ms - since_ms < EMPTY_AFTER_MS
            or t_ms - looked_ms >= EMPTY_RECHECK_MS
            or signature_distance(signature, looked_signature) > EMPTY_CHANGE
        )

    def _tile_face(self, index: int, frame: Frame) -> LandmarkedFace | None:
        """The tile's participant in frame coordinates, or None. Runs on the tile threads."""
        x0, y0, x1, y1 = self._rects[index]
        faces = self._landmarker(index).detect_faces(frame.image[y0:y1, x0:x1], frame.t_ms)
        if not faces:
            return None
        # The biggest face is the tile's participant; anyone behind them is not tracked.
        face = max(faces, key=lambda f: float(np.ptp(f.landmarks[:, 0])))
        lm = face.landmarks.copy()
        lm[:, 0] += x0
        lm[:, 1] += y0
        return LandmarkedFace(lm, face.blendshapes, face.transform)

    def read_names(self, name_key: NameKey, reader=None) -> None:
        """Decide tiles' identities from their name labels from now on (`name_key`: the label's
        text -> its keyed pseudonym; see engagement/vision/name_ids.py)."""
        self.names = NameIdentities(name_key, reader)

    def name_key(self, track_id: int) -> str | None:
        return self.names.key(track_id) if self.names else None

    def shared_name_frames(self) -> int:
        return self.names.shared_name_frames if self.names else 0

    def faceless_tracks(self) -> list[tuple[int, tuple[float, float, float, float]]]:
        """(track id, consent box) of the tiles that hold a participant but showed no face in the
        last frame (camera off, looking away, out of the picture): they are there, absent."""
        return list(self._faceless)

    def _home_box(self, track_id: int) -> tuple[float, float, float, float]:
        x0, y0, x1, y1 = (self._home_rects or {})[track_id]
        return (float(x0), float(y0), float(x1 - 1), float(y1 - 1))

    def tile_of(self, track_id: int) -> int | None:
        """The tile the track was last seen in (0-based, row-major)."""
        return self._tile_of_track.get(track_id)

    def consent_box(self, face: FaceObservation) -> tuple[float, float, float, float]:
        # Consent follows the id, not the screen position: ask with the track's home tile so a
        # reordered grid never ties a face to the roster entry of whoever sat there before.
        if face.track_id in (self._home_rects or {}):
            return self._home_box(face.track_id)
        home = self.tile_ids.home.get(face.track_id)
        if home is None or self.layout is None:
            return face.bbox
        x0, y0, x1, y1 = self.layout.tile_rect(home)
        return (float(x0), float(y0), float(x1 - 1), float(y1 - 1))

    def _close_landmarkers(self) -> None:
        for lm in self._landmarkers:
            if lm is not None:
                lm.close()
        self._landmarkers = [None] * len(self._landmarkers)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._close_landmarkers()
