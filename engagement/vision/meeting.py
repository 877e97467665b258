"""A meeting recording as it is: the layout found from the frames, one per-tile path for it.

`MeetingVisionStage` watches the layout (`engagement.vision.layout`) and analyses each frame the
way the current layout asks: `single` exactly as `VisionStage` does (one full-frame landmarker,
boxes tracked from frame to frame), `grid` and `filmstrip` (speaker view, a shared screen: the
strip's tiles) as `GalleryVisionStage` does (one landmarker per tile, VIDEO mode, one clock per
tile, tile-anchored ids). When the layout changes mid-recording, the
tiles are re-cut and each feed keeps its id (`TileIdTracker.relayout`); every tile of a detected
gallery is a participant from the start, so a camera-off tile is that participant, absent.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from engagement.core.config import AnalysisOptions
from engagement.core.errors import SourceError
from engagement.core.records import FaceObservation, Frame, RunningMode
from engagement.vision.gallery import GalleryVisionStage, LandmarkerFactory, shipped_tile_models
from engagement.vision.landmarks import FaceLandmarker
from engagement.vision.layout import LayoutSpec, LayoutWatcher, MeetingLayout, fixed_grid, opening_layout, single
from engagement.vision.sources import VideoFileSource
from engagement.vision.stage import VisionStage, landmarker_options
from engagement.vision.tile_ids import tile_signature


# Frames per second analysed in a gallery recording unless --sample-fps says otherwise: every
# tile costs one landmarker pass per analysed frame. A 5x5 1920x1080 recording at 25 fps ran at
# 1.17x real time at 3 fps on the 2 cores here while they were lightly shared, 0.79-0.94x under
# other engineers' load (5 fps: 0.68x; 2 fps: 0.87x, and 81 % of seconds kept their attention
# state against 88 % at 3 fps). Figures and how: docs/live.md, benchmarks/gallery_recording.py.
GALLERY_SAMPLE_FPS = 3.0
# Tiles lower than this (pixels) are too small to tell a camera that is off from a face the
# landmarker misses: the 5x5 at 1280x720 tested here (144 px tiles) finds >= 95 % of its faces;
# smaller tiles were not measured, so below 100 px a tile without a face is `unknown`.
MEASURABLE_TILE_PX = 100


# The expression CNN's rate per face in a gallery (a single camera: AnalysisOptions'
# expression_hz, 5). In a class of 25 the CNN on every analysed frame cost a tenth of each frame.
# Against the CNN on every frame (24-30 fps), the per-second expression means of the shared clips
# moved by 0.016-0.028 on average at 2 per second, the top class of 0 and 2 of 20 seconds
# changing; at 1 per second 0.033-0.049, 2 and 4 of 20 (benchmarks/expression_rate.py --hz N).
GALLERY_EXPRESSION_HZ = 2.0


def per_tile_options(options: AnalysisOptions) -> AnalysisOptions:
    """A gallery's options: the expression CNN at the gallery's rate per face."""
    hz = options.expression_hz
    return replace(options, expression_hz=GALLERY_EXPRESSION_HZ if hz is None else min(hz, GALLERY_EXPRESSION_HZ))


def options_for(options: AnalysisOptions, opening: MeetingLayout | None) -> AnalysisOptions:
    """The options a recording is analysed with (and its run records): a gallery at the
    gallery's rates, frames unless a rate was given."""
    if opening is None or not opening.is_grid:
        return options
    if options.sample_fps is None:
        options = replace(options, sample_fps=GALLERY_SAMPLE_FPS)
    return per_tile_options(options)


def recording_layout(path: Path, spec: LayoutSpec = LayoutSpec()) -> MeetingLayout | None:
    """The layout a video file opens with (None: unreadable, the run will say why)."""
    try:
        return layout_at_start(VideoFileSource(path).opening_images(), spec)
    except SourceError:
        return None


def layout_at_start(images: list[np.ndarray], spec: LayoutSpec) -> MeetingLayout | None:
    """The layout a recording opens with, read from its opening frames (most of them agree), or
    the one `--layout` gives; None without frames."""
    if not images:
        return None
    size = (images[0].shape[1], images[0].shape[0])
    if spec.mode == "single":
        return single(size)
    return fixed_grid(*spec.grid, size) if spec.grid else opening_layout(images)


class MeetingVisionStage(GalleryVisionStage):
    """Vision for any recording of a meeting, by `--layout`: auto (found and re-found from the
    frames), single (the whole frame, as `VisionStage`), grid:COLSxROWS (the user's grid)."""

    def __init__(
        self,
        options: AnalysisOptions,
        spec: LayoutSpec = LayoutSpec(),
        *,
        expression_model=None,
        landmarker_factory: LandmarkerFactory = FaceLandmarker.from_options,
        running_mode: RunningMode = RunningMode.VIDEO_FILE,
        landmarker_sha256: str | None = None,
        workers: int | None = None,
    ):
        super().__init__(
            options, None, expression_model=expression_model, landmarker_factory=landmarker_factory,
            running_mode=running_mode, landmarker_sha256=landmarker_sha256, workers=workers,
        )  # fmt: skip
        self.spec = spec
        # The single-camera path is today's: one landmarker on the whole frame, up to max_faces.
        self._full_options = landmarker_options(options, options.max_faces, running_mode)
        self.watcher = LayoutWatcher()
        self.current: MeetingLayout | None = None
        self._opening: MeetingLayout | None = None

    def start_with(self, layout: MeetingLayout | None) -> "MeetingVisionStage":
        """Begin with `layout` (read beforehand from the opening frames): the first frames are
        then cut as the recording is, instead of waiting for the watcher to confirm one."""
        self._opening = layout
        return self

    @classmethod
    def for_spec(
        cls, options: AnalysisOptions, spec: LayoutSpec, models_dir: Path | None = None, *,
        running_mode: RunningMode = RunningMode.VIDEO_FILE,
    ) -> "MeetingVisionStage":  # fmt: skip
        return cls(options, spec, running_mode=running_mode, **shipped_tile_models(options, models_dir))

    def model_versions(self) -> dict[str, dict[str, str]]:
        # A single-camera recording keeps today's record; a gallery says its landmarkers ran per tile.
        if self.current is not None and self.current.is_grid:
            return super().model_versions()
        return VisionStage.model_versions(self)

    def observe(self, frame: Frame) -> list[FaceObservation]:
        found = self._layout_for(frame)
        if found is not None:
            self._switch(found, frame)
        if self.current is not None and self.current.is_grid:
            self._advance_clock(frame)
            if self.watcher.pending:
                # The app may have re-cut the grid: until the new layout is confirmed (a fifth of
                # a second) the old tiles would read wrong crops and pass ids between them.
                self._faceless = []
                return []
            return self._observe_tiles(frame)
        if self.current is None:
            # No layout read beforehand (a live source) and none confirmed yet (a fifth of a
            # second): a full-frame pass now would start tracks the tiles then split.
            self._advance_clock(frame)
            return []
        if self.landmarker is None:  # one camera: today's path
            self.landmarker = self._factory(self._full_options)
        return VisionStage.observe(self, frame)

    def _layout_for(self, frame: Frame) -> MeetingLayout | None:
        """A layout to switch to at this frame, or None to keep the current one."""
        if self.current is None and self._opening is not None and self._opening.size == frame.size:
            self.watcher.changes.append((frame.t_ms, self._opening))
            return self._opening
        if self.spec.mode == "auto":
            return self.watcher.update(frame.t_ms, frame.image, force=self._many_cuts(frame))
        if self.current is not None and self.current.size == frame.size:
            return None
        if self.spec.mode == "single":
            found = single(frame.size)
        else:
            found = fixed_grid(*self.spec.grid, frame.size)  # type: ignore[misc]
        self.watcher.changes.append((frame.t_ms, found))
        return found

    def _many_cuts(self, frame: Frame) -> bool:
        """Whether a third of the tiles (two at least) changed content at once: a re-cut grid
        does that, a camera turned off does not. Checked on thumbnails, before any landmarker."""
        if self.current is None or not self.current.is_grid:
            return False
        signatures = [tile_signature(frame.image[y0:y1, x0:x1]) for x0, y0, x1, y1 in self._rects]
        return self.tile_ids.cuts(signatures) >= max(2, len(self._rects) // 3)

    def _switch(self, layout: MeetingLayout, frame: Frame) -> None:
        self.current = layout
        if layout.is_grid:
            # Ids go on from where the full-frame tracker stopped: one id never names two people.
            self.tile_ids._next_id = max(self.tile_ids._next_id, self.tracker._next_id)
            self.set_tiles(layout.tiles, frame, occupied=not layout.fixed)
            return
        self._close_landmarkers()
        self._faceless = []
        self.tracker._next_id = max(self.tracker._next_id, self.tile_ids._next_id)

    def faceless_tracks(self) -> list[tuple[int, tuple[float, float, float, float]]]:
        if self.current is None or not self.current.is_grid:
            return []
        return super().faceless_tracks()

    def unmeasurable_tracks(self) -> set[int]:
        # A tile lower than this shows a face too small for the landmarker to find reliably, so
        # not finding one says nothing (a filmstrip beside a shared screen, a 7x7 at 720p).
        return {
            track_id for track_id, (x0, y0, x1, y1) in self.faceless_tracks() if y1 - y0 + 1 < MEASURABLE_TILE_PX
        }

    def layout_changes(self) -> list[tuple[float, str]]:
        return [(t_ms, layout.describe()) for t_ms, layout in self.watcher.changes]

    def close(self) -> None:
        super().close()
        if self.landmarker is not None:
            self.landmarker.close()
            self.landmarker = None  # type: ignore[assignment]
