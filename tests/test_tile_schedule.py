"""How a gallery's tiles are scheduled: on two threads with the same results as one, and an
empty tile (camera off) looked at about once a second instead of in every frame, without losing
the moment its camera comes back on (engagement/vision/gallery.py)."""

from __future__ import annotations

import numpy as np
import pytest

from engagement.core.config import AnalysisOptions
from engagement.core.records import RunningMode
from engagement.vision.gallery import EMPTY_AFTER_MS, EMPTY_CHANGE, EMPTY_RECHECK_MS, shipped_tile_models
from engagement.vision.layout import LayoutSpec
from engagement.vision.meeting import MeetingVisionStage, layout_at_start
from engagement.vision.sources import VideoFileSource
from engagement.vision.tile_ids import signature_distance, tile_signature
from meetings import write_meeting

FPS = 10
SECONDS = 8
OFF_PARTICIPANT = 4  # the middle tile of the 3x3
CAMERA_ON_AT_S = 5  # its camera is off for seconds 0-4, on from 5


def script(second: int) -> list[tuple[int, bool]]:
    return [(p, p != OFF_PARTICIPANT or second >= CAMERA_ON_AT_S) for p in range(9)]


class CountingLandmarker:
    """A shipped landmarker that notes the time of every frame it is given."""

    def __init__(self, inner):
        self.inner, self.times = inner, []

    def detect_faces(self, image, t_ms=None):
        self.times.append(t_ms)
        return self.inner.detect_faces(image, t_ms)

    def close(self):
        self.inner.close()


@pytest.fixture(scope="module")
def meeting(tmp_path_factory):
    path = tmp_path_factory.mktemp("schedule") / "class.mp4"
    write_meeting(path, script, 9, SECONDS, size=(1280, 720), fps=FPS)
    frames = list(VideoFileSource(path).frames())
    return frames, layout_at_start([f.image for f in frames[:5]], LayoutSpec())


def run(frames, opening, workers: int):
    """Per frame: {track id: landmarks}; and per tile, the times its landmarker was called."""
    options = AnalysisOptions(expression=False)
    models = shipped_tile_models(options)
    shipped = models["landmarker_factory"]
    models["landmarker_factory"] = lambda tile_options: CountingLandmarker(shipped(tile_options))
    stage = MeetingVisionStage(options, LayoutSpec(), running_mode=RunningMode.VIDEO_FILE, workers=workers, **models)
    stage.start_with(opening)
    seen = []
    try:
        for frame in frames:
            seen.append({face.track_id: face.landmarks for face in stage.observe(frame)})
        calls = [lm.times if lm is not None else [] for lm in stage._landmarkers]
        tile_of = {track_id: stage.tile_of(track_id) for track_id in stage.tile_ids.home}
    finally:
        stage.close()
    return seen, calls, tile_of


@pytest.mark.slow
def test_two_threads_give_what_one_gives(meeting):
    frames, opening = meeting
    one, _, _ = run(frames, opening, workers=1)
    two, _, _ = run(frames, opening, workers=2)
    assert [sorted(f) for f in one] == [sorted(f) for f in two]
    for a, b in zip(one, two):
        for track_id in a:
            np.testing.assert_array_equal(a[track_id], b[track_id])


@pytest.mark.slow
def test_camera_off_tile_is_looked_at_once_a_second_and_found_when_it_comes_on(meeting):
    frames, opening = meeting
    seen, calls, tile_of = run(frames, opening, workers=2)
    off_tile = opening.tiles[OFF_PARTICIPANT]
    off_track = next(t for t, tile in tile_of.items() if tile == OFF_PARTICIPANT)

    # While the camera is off, after the first EMPTY_AFTER_MS, about one look a second.
    off_calls = [t for t in calls[OFF_PARTICIPANT] if EMPTY_AFTER_MS + 100 <= t < CAMERA_ON_AT_S * 1000]
    off_span_s = (CAMERA_ON_AT_S * 1000 - EMPTY_AFTER_MS - 100) / 1000
    assert 1 <= len(off_calls) <= off_span_s * 1000 / EMPTY_RECHECK_MS + 1, off_calls
    # Tiles with a face are looked at in every frame.
    assert all(len(c) == len(frames) for i, c in enumerate(calls) if i != OFF_PARTICIPANT)

    # The camera comes on: its tile is looked at in that very frame and the face is found there,
    # under the id the tile had while its camera was off.
    first_on = next(i for i, f in enumerate(frames) if f.t_ms >= CAMERA_ON_AT_S * 1000)
    assert frames[first_on].t_ms in calls[OFF_PARTICIPANT]
    assert off_track in seen[first_on]
    assert all(off_track not in s for s in seen[:first_on])

    # What the thresholds rest on: a still camera-off tile barely changes, a camera coming on does.
    x0, y0, x1, y1 = off_tile
    sigs = [tile_signature(f.image[y0:y1, x0:x1]) for f in frames[: first_on + 1]]
    still = max(signature_distance(a, b) for a, b in zip(sigs[:-2], sigs[1:-1]))
    turned_on = signature_distance(sigs[-2], sigs[-1])
    print(f"camera-off tile frame to frame: <= {still:.4f}; camera turned on: {turned_on:.4f}")
    assert still < EMPTY_CHANGE / 2 < 2 * EMPTY_CHANGE < turned_on


def test_a_gallery_runs_the_expression_cnn_at_its_own_rate_and_records_it():
    from engagement.vision.layout import fixed_grid, single
    from engagement.vision.meeting import GALLERY_EXPRESSION_HZ, GALLERY_SAMPLE_FPS, options_for

    gallery = options_for(AnalysisOptions(), fixed_grid(5, 5, (1920, 1080)))
    assert (gallery.sample_fps, gallery.expression_hz) == (GALLERY_SAMPLE_FPS, GALLERY_EXPRESSION_HZ)
    assert options_for(AnalysisOptions(sample_fps=5.0), fixed_grid(5, 5, (1920, 1080))).sample_fps == 5.0
    # One camera keeps the single-face rates; the run's record (options.to_dict) says which ran.
    assert options_for(AnalysisOptions(), single((1280, 720))) == AnalysisOptions()
    assert gallery.to_dict()["expression_hz"] == GALLERY_EXPRESSION_HZ


def test_tile_threads_follow_the_environment(monkeypatch):
    from engagement.app.batch import task_env
    from engagement.core.errors import ConfigError
    from engagement.vision.gallery import TILE_THREADS_VAR, tile_workers

    monkeypatch.delenv(TILE_THREADS_VAR, raising=False)
    assert 1 <= tile_workers() <= 2
    assert task_env()[TILE_THREADS_VAR] == "1"  # a batch analysis has one core of its own
    monkeypatch.setenv(TILE_THREADS_VAR, "1")
    assert tile_workers() == 1
    monkeypatch.setenv(TILE_THREADS_VAR, "two")
    with pytest.raises(ConfigError, match=TILE_THREADS_VAR):
        tile_workers()
