"""Attention signals on inputs whose answer is known (feature tests).

The synthetic participant (tests/synthetic_face.py) is a 3D head with a known head pose, eye
rotation and eye openness, projected through the camera model and fed through the real vision
stage (geometry, quality, attention) and the real window aggregator, so each test checks the
chain a recording goes through, minus MediaPipe. Real-clip checks at the end use MediaPipe on
the shared clips.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import cv2
import numpy as np
import pytest
from clips import read_frames
from conftest import require_shared
from synthetic_face import Pose, ScriptedLandmarker, textured_image

from engagement.core.config import AnalysisOptions
from engagement.core.errors import ConfigError
from engagement.core.records import FEATURE_NAMES, Frame, FrameFeatures, WindowFeatures
from engagement.temporal.run_config import run_settings_hash
from engagement.temporal.windows import WindowAggregator, attention_summary
from engagement.vision.attention import AttentionOptions, AttentionTracker, FaceSignals
from engagement.vision.stage import VisionStage

FPS = 15
GAZE = FEATURE_NAMES.index("gaze_yaw"), FEATURE_NAMES.index("gaze_pitch")


def jitter(n: int, pose: Pose, deg: float = 1.0) -> Pose:
    """The pose with a little deterministic head movement, as a seated person has."""
    rng = np.random.default_rng(n)
    dy, dp = rng.normal(0, deg, 2)
    return Pose(
        head_yaw=pose.head_yaw + dy,
        head_pitch=pose.head_pitch + dp,
        eye_yaw=pose.eye_yaw,
        eye_pitch=pose.eye_pitch,
        ear=pose.ear,
        distance_mm=pose.distance_mm,
        offset_mm=pose.offset_mm,
        camera=pose.camera,
    )


def run(
    script: Callable[[float], list[Pose]],
    seconds: float,
    *,
    image: Callable[[float], np.ndarray] | np.ndarray | None = None,
    options: AttentionOptions | None = None,
    fps: float = FPS,
) -> tuple[dict[int, list[WindowFeatures]], VisionStage]:
    """Windows per track of a synthetic session; `script(t_s)` gives the faces at time t_s."""
    n = int(seconds * fps)
    times = [i * 1000.0 / fps for i in range(n)]
    landmarker = ScriptedLandmarker(lambda i: [jitter(i, p) for p in script(times[i] / 1000.0)])
    analysis = AnalysisOptions(expression=False, attention=options or AttentionOptions())
    stage = VisionStage(analysis, landmarker)
    aggregator = WindowAggregator(1000)
    windows: list[WindowFeatures] = []
    still = textured_image()
    for i, t in enumerate(times):
        img = image(t / 1000.0) if callable(image) else (still if image is None else image)
        frame = Frame(t, i, img)
        windows += aggregator.add(t, stage.measure(frame, stage.observe(frame)))
    windows += aggregator.flush()
    tracks: dict[int, list[WindowFeatures]] = {}
    for w in windows:
        tracks.setdefault(w.track_id, []).append(w)
    return tracks, stage


def states(windows: list[WindowFeatures], first: int, last: int) -> list[str]:
    return [w.attention for w in windows if first <= w.second <= last]


# A webcam below the screen (a laptop on the desk, the meeting on a monitor above it): reading the
# screen, the participant has the head tipped up and the eyes raised (gaze pitch -20 deg; chin
# down is positive).
AT_SCREEN = Pose(head_pitch=-12.0, eye_pitch=-8.0)


def test_screen_above_the_camera_reads_on_screen():
    tracks, stage = run(lambda t: [AT_SCREEN], 40)
    (windows,) = tracks.values()
    warm = 5  # 3 s warm-up, then whole seconds
    assert states(windows, warm, 39) == ["on_screen"] * 35
    assert all(w.on_screen_ratio == 1.0 and w.eyes_closed_ratio == 0.0 for w in windows[warm:])
    # The camera axis is not the screen: the same gaze judged against it would be outside the cone.
    pitch = np.mean([w.mean[GAZE[1]] for w in windows[warm:]])
    assert abs(pitch) > AttentionOptions().half_height
    (tracker,) = stage._attention.values()
    assert math.degrees(tracker.direction[1]) == pytest.approx(-20.0, abs=1.5)


def test_warm_up_seconds_are_unknown_not_judged():
    tracks, _ = run(lambda t: [AT_SCREEN], 6)
    (windows,) = tracks.values()
    assert states(windows, 0, 1) == ["unknown", "unknown"]
    assert windows[0].on_screen_ratio is None and windows[0].eyes_closed_ratio is None
    assert windows[-1].attention == "on_screen"


@pytest.mark.parametrize("fps,first_judged", [(15.0, 3), (5.0, 3), (3.0, 3), (2.0, 3), (1.0, 5)])
def test_warm_up_lasts_three_seconds_down_to_two_frames_a_second(fps, first_judged):
    # A class of 25 on two cores gets 3-5 frames a second per face: the warm-up must not take
    # five times longer there. Below 2 frames a second it waits for MIN_WARMUP_SAMPLES frames.
    tracks, _ = run(lambda t: [AT_SCREEN], 12, fps=fps)
    (windows,) = tracks.values()
    judged = [w.second for w in windows if w.attention != "unknown"]
    assert judged[0] == first_judged
    assert states(windows, first_judged, 11) == ["on_screen"] * (12 - first_judged)


def test_steady_40_degree_head_turn_reads_looking_away_for_the_whole_minute():
    turned = Pose(head_yaw=40.0, head_pitch=AT_SCREEN.head_pitch, eye_pitch=AT_SCREEN.eye_pitch)
    tracks, stage = run(lambda t: [turned if 60 <= t < 120 else AT_SCREEN], 150)
    (windows,) = tracks.values()
    assert states(windows, 5, 59) == ["on_screen"] * 55
    assert states(windows, 60, 119) == ["looking_away"] * 60
    assert all(w.on_screen_ratio == 0.0 for w in windows[60:120])
    assert states(windows, 120, 149) == ["on_screen"] * 30
    (tracker,) = stage._attention.values()
    assert tracker.moves == 0  # turning the head is not moving the camera


def test_eyes_only_aversion_reads_looking_away():
    # Head still, eyes turned 25 deg to the side: the eye-in-head part of the gaze must carry it.
    aside = Pose(head_pitch=AT_SCREEN.head_pitch, eye_pitch=AT_SCREEN.eye_pitch, eye_yaw=25.0)
    tracks, _ = run(lambda t: [aside if 20 <= t < 30 else AT_SCREEN], 40)
    (windows,) = tracks.values()
    assert states(windows, 20, 29) == ["looking_away"] * 10
    assert states(windows, 30, 39) == ["on_screen"] * 10


def test_eyes_closed_two_seconds_reads_eyes_closed_but_a_blink_does_not():
    def script(t):
        # 2 s closures starting on, just before and just after a second boundary; a 0.2 s blink.
        closed = 10.0 <= t < 12.0 or 14.7 <= t < 16.7 or 24.3 <= t < 26.3 or 20.0 <= t < 20.2
        return [Pose(head_pitch=-12.0, eye_pitch=-8.0, ear=0.05 if closed else 0.30)]

    tracks, _ = run(script, 30)
    (windows,) = tracks.values()
    by_second = {w.second: w for w in windows}
    closed = {s: w.eyes_closed_ratio for s, w in by_second.items() if w.attention == "eyes_closed"}
    # A confirmed closure counts from its first frame, which waited 0.4 s as a possible blink,
    # when that frame lies in the window still open (10, 24); a second already emitted keeps its
    # verdict (14: 0.3 s closed reads on_screen).
    assert closed == pytest.approx({10: 1.0, 11: 1.0, 15: 1.0, 16: 0.7, 24: 0.7, 25: 1.0}, abs=0.07)
    assert by_second[14].attention == "on_screen" and by_second[14].eyes_closed_ratio == 0.0
    assert by_second[12].attention == "on_screen" and by_second[26].attention == "on_screen"
    assert by_second[20].attention == "on_screen" and by_second[20].eyes_closed_ratio == 0.0


def test_leaving_reads_absent_and_coming_back_returns_to_on_screen():
    # Away for 2.5 s: the track keeps its id and its learned screen direction.
    tracks, _ = run(lambda t: [] if 20.0 <= t < 22.5 else [AT_SCREEN], 35)
    (windows,) = tracks.values()
    assert states(windows, 20, 21) == ["absent", "absent"]
    assert all(w.on_screen_ratio is None and w.eyes_closed_ratio is None for w in windows[20:22])
    assert states(windows, 23, 34) == ["on_screen"] * 12


def test_coming_back_after_a_long_absence_is_a_new_track_that_learns_again():
    tracks, _ = run(lambda t: [] if 20.0 <= t < 30.0 else [AT_SCREEN], 45)
    first, second = tracks.values()
    assert states(first, 20, 44) == ["absent"] * 25  # the old track: absent to the end, never low
    assert second[0].second == 30
    assert states(second, 30, 31) == ["unknown", "unknown"]
    assert states(second, 34, 44) == ["on_screen"] * 11


@pytest.mark.parametrize(
    "case",
    ["tiny", "blurred", "dark"],
)
def test_unmeasurable_face_reads_unknown_not_away_or_absent(case):
    far = Pose(head_pitch=-12.0, eye_pitch=-8.0, distance_mm=6000.0)  # inter-ocular distance ~7 px
    flat = np.full((480, 640, 3), 128, np.uint8)  # no texture at all: as blurred as it gets
    dark = textured_image(level=12.0, contrast=4.0)

    def script(t):
        return [far if case == "tiny" and t >= 20 else AT_SCREEN]

    sharp = textured_image()

    def image(t):
        if t >= 20 and case != "tiny":
            return flat if case == "blurred" else dark
        return sharp

    tracks, _ = run(script, 30, image=image)
    (windows,) = tracks.values()
    assert states(windows, 5, 19) == ["on_screen"] * 15
    assert states(windows, 20, 29) == ["unknown"] * 10
    assert all(w.on_screen_ratio is None and w.eyes_closed_ratio is None for w in windows[20:])
    assert all(w.present for w in windows[20:])


def test_camera_moved_screen_direction_is_learned_again():
    # At 60 s the participant tilts the laptop lid: within a second the camera turns 15 deg; the
    # person keeps reading the screen, which the camera now sees 15 deg further off its axis.
    def script(t):
        tilt = 15.0 * min(1.0, max(0.0, t - 60.0))
        return [Pose(head_pitch=-12.0, eye_pitch=-8.0, camera=(0.0, tilt))]

    tracks, stage = run(script, 90)
    (windows,) = tracks.values()
    (tracker,) = stage._attention.values()
    assert tracker.moves == 1
    assert states(windows, 67, 89) == ["on_screen"] * 23
    # Without the move detection the same input reads looking away for good.
    still = AttentionOptions(move_deg=180.0, move_scale=100.0)
    tracks, _ = run(script, 90, options=still)
    (windows,) = tracks.values()
    assert states(windows, 67, 89) == ["looking_away"] * 23


def test_two_participants_learn_their_own_screen_direction():
    # One with the camera above the screen, one with it to the right of the screen.
    a = Pose(head_pitch=-12.0, eye_pitch=-8.0, offset_mm=(-250.0, 0.0))
    b = Pose(head_yaw=-20.0, offset_mm=(250.0, 0.0))
    tracks, _ = run(lambda t: [a, b], 20)
    assert len(tracks) == 2
    for windows in tracks.values():
        assert states(windows, 5, 19) == ["on_screen"] * 15


# -- unit level ---------------------------------------------------------------------------------


def signals(yaw=0.0, pitch=0.0, ear=0.3, size=60.0, sharp=300.0, bright=120.0):
    return FaceSignals(yaw, pitch, ear, size, sharp, bright, (0.0, 0.0, 690.0))


def test_cone_half_angles_follow_screen_size_and_distance():
    o = AttentionOptions(margin_deg=0.0)
    assert math.degrees(o.half_width) == pytest.approx(15.8, abs=0.1)  # 34 cm at 60 cm
    assert math.degrees(o.half_height) == pytest.approx(9.0, abs=0.1)  # 19 cm at 60 cm
    wide = AttentionOptions(margin_deg=0.0, screen_width_cm=60.0, viewing_distance_cm=70.0)  # a 27" monitor
    assert math.degrees(wide.half_width) == pytest.approx(23.2, abs=0.1)


@pytest.mark.parametrize(
    "bad",
    [
        {"screen_width_cm": 0},
        {"viewing_distance_cm": -60},
        {"closed_fraction": 1.2},
        {"warmup_s": -1},
        {"history_s": 2, "warmup_s": 3},
        {"margin_deg": float("nan")},
        {"sample_ms": "fast"},
    ],
)
def test_bad_attention_options_are_one_clear_error(bad):
    with pytest.raises(ConfigError, match="attention option|closed_fraction|warm-up"):
        AttentionOptions(**bad)


def test_attention_options_are_part_of_the_run_configuration():
    a = AnalysisOptions(attention=AttentionOptions(screen_width_cm=60.0))
    assert a.to_dict()["attention"]["screen_width_cm"] == 60.0
    assert run_settings_hash(a) != run_settings_hash(AnalysisOptions())


def test_tracker_refuses_time_going_backwards():
    tracker = AttentionTracker()
    tracker.update(100.0, signals())
    with pytest.raises(ValueError):
        tracker.update(50.0, signals())


def test_eyes_never_seen_open_are_not_judged():
    # Eyes closed from the start: there is no open-eye level to compare with, so nothing is judged
    # (rather than learning the closed eye as "open" and the closed gaze as the screen).
    tracker = AttentionTracker()
    verdicts = [tracker.update(t * 66.7, signals(ear=0.05)) for t in range(150)]
    assert set(verdicts) == {"unknown"}
    # Then the eyes open: learned from the open frames only.
    verdicts = [tracker.update(10000 + t * 66.7, signals(ear=0.3, pitch=0.3)) for t in range(150)]
    assert verdicts[-1] == "on_screen"
    assert tracker.direction[1] == pytest.approx(0.3)


def test_closure_whose_frames_are_now_and_then_too_soft_still_reads_eyes_closed():
    # Closing the eyes lowers a face's sharpness (the open eyes are its sharpest detail), so on a
    # soft webcam image some closed frames fall under `min_sharpness`. Such a frame must not
    # restart the closure: before, every other soft frame kept the 2 s closure a "blink" and
    # each closed frame repeated the verdict from before it (on_screen).
    tracker = AttentionTracker()
    dt = 1000.0 / 24
    for i in range(240):  # 10 s open, looking at the screen: learned
        tracker.update(i * dt, signals())
    closure = [
        tracker.update((240 + i) * dt, signals(ear=0.03, sharp=300.0 if i % 2 else 20.0)) for i in range(48)
    ]
    judged = [v for v in closure if v != "unknown"]
    assert "on_screen" not in closure[12:]  # from 0.5 s on, no closed frame reads on screen
    assert judged.count("eyes_closed") >= 0.7 * len(judged)
    # A frame without readable eyes (face too small) leaves the closure running, unjudged.
    assert tracker.update(288 * dt, signals(ear=0.03, size=5.0)) == "unknown"
    assert tracker.update(289 * dt, signals(ear=0.03)) == "eyes_closed"
    # Seen open again: the closure is over, and a blink afterwards keeps the gaze verdict.
    assert tracker.update(290 * dt, signals()) == "on_screen"
    assert [tracker.update((291 + i) * dt, signals(ear=0.03)) for i in range(5)] == ["on_screen"] * 5


@pytest.mark.parametrize("fps", [2.0, 1.0])
def test_closure_sampled_sparsely_still_reads_eyes_closed(fps):
    # `--sample-fps 2` or 1: closed frames 500 or 1000 ms apart are one closure, not a run of blinks.
    tracker = AttentionTracker()
    dt = 1000.0 / fps
    for i in range(int(30 * fps)):  # the warm-up needs 15 samples
        tracker.update(i * dt, signals())
    start = int(30 * fps)
    closure = [tracker.update((start + i) * dt, signals(ear=0.03)) for i in range(int(3 * fps))]
    assert closure[0] == "on_screen" and set(closure[1:]) == {"eyes_closed"}


def test_tracker_memory_is_bounded():
    o = AttentionOptions(history_s=10.0, warmup_s=1.0)
    tracker = AttentionTracker(o)
    for i in range(3000):
        tracker.update(i * 33.3, signals(yaw=0.01 * (i % 7)))
    assert len(tracker.samples) <= 10.0 * 1000 / o.sample_ms + 1
    assert tracker._buffer.shape[0] <= 2 * (10.0 * 1000 / o.sample_ms + 1)


def test_window_summary_counts_judged_frames_only():
    out = attention_summary(Counter({"on_screen": 6, "looking_away": 2, "eyes_closed": 2, "unknown": 5}))
    assert out == {"on_screen_ratio": 0.6, "eyes_closed_ratio": 0.2, "attention": "on_screen"}
    assert attention_summary(Counter({"unknown": 4})) == {
        "on_screen_ratio": None,
        "eyes_closed_ratio": None,
        "attention": "unknown",
    }
    # Ties go to the earlier state: on_screen before looking_away.
    assert attention_summary(Counter({"on_screen": 3, "looking_away": 3}))["attention"] == "on_screen"
    # Judged frames decide once they are at least half the face frames, whatever the plurality.
    half = attention_summary(Counter({"unknown": 4, "on_screen": 2, "looking_away": 2}))
    assert half == {"on_screen_ratio": 0.5, "eyes_closed_ratio": 0.0, "attention": "on_screen"}
    mostly_unknown = attention_summary(Counter({"unknown": 5, "on_screen": 4}))
    assert mostly_unknown == {"on_screen_ratio": None, "eyes_closed_ratio": None, "attention": "unknown"}


def test_frames_without_a_verdict_count_as_unknown():
    agg = WindowAggregator(1000)
    values = (0.1,) * len(FEATURE_NAMES)
    for i in range(10):
        agg.add(i * 100.0, [FrameFeatures(i * 100.0, 1, values, False)])
    (w,) = agg.flush()
    assert w.attention == "unknown" and w.on_screen_ratio is None


def test_window_records_validate_attention():
    empty = (None,) * len(FEATURE_NAMES)
    assert WindowFeatures(1, 0, 10, 0, 0, empty, empty).attention == "absent"
    with pytest.raises(ValueError):
        WindowFeatures(1, 0, 10, 0, 0, empty, empty, attention="on_screen")
    with pytest.raises(ValueError):
        WindowFeatures(1, 0, 10, 10, 0, (0.0,) * len(FEATURE_NAMES), (0.0,) * len(FEATURE_NAMES), attention="bored")
    with pytest.raises(ValueError):
        WindowFeatures(1, 0, 10, 10, 0, (0.0,) * len(FEATURE_NAMES), (0.0,) * len(FEATURE_NAMES), on_screen_ratio=1.5)
    with pytest.raises(ValueError):
        FrameFeatures(0.0, 1, (0.0,) * len(FEATURE_NAMES), False, attention="absent")  # frames have a face
    with pytest.raises(ValueError):  # a closure's start belongs to a closed frame, before it
        FrameFeatures(0.0, 1, (0.0,) * len(FEATURE_NAMES), False, attention="on_screen", closed_since_ms=0.0)
    with pytest.raises(ValueError):
        FrameFeatures(0.0, 1, (0.0,) * len(FEATURE_NAMES), False, attention="eyes_closed", closed_since_ms=10.0)


# -- real clips (MediaPipe) ---------------------------------------------------------------------


def real_windows(frames: list[np.ndarray], fps: float) -> list[WindowFeatures]:
    stage = VisionStage.from_options(AnalysisOptions(expression=False))
    agg = WindowAggregator(1000)
    out: list[WindowFeatures] = []
    try:
        for i, img in enumerate(frames):
            frame = Frame(i * 1000.0 / fps, i, img)
            out += agg.add(frame.t_ms, stage.measure(frame, stage.observe(frame)))
    finally:
        stage.close()
    return out + agg.flush()


def test_real_clip_face_leaving_reads_absent():
    frames, fps = read_frames(require_shared("videos/pyfeat/face_noface.mov"))
    windows = real_windows(frames, fps)
    track = [w for w in windows if w.track_id == 1]
    assert track[0].attention != "absent"
    # The clip cuts to a cartoon card: every second after the cut is absent, none is scored low.
    tail = [w.attention for w in track if w.n_face == 0]
    assert tail and set(tail) == {"absent"}
    assert track[-1].attention == "absent"


@pytest.mark.parametrize("degrade", ["tiny", "blurred"])
def test_real_clip_tiny_or_blurred_face_reads_unknown(degrade):
    frames, fps = read_frames(require_shared("videos/liveportrait/d9.mp4"), limit=240)
    if degrade == "tiny":  # inter-ocular distance ~116 px -> ~12 px; MediaPipe still finds it
        frames = [cv2.resize(f, None, fx=0.1, fy=0.1, interpolation=cv2.INTER_AREA) for f in frames]
    else:
        frames = [cv2.GaussianBlur(f, (0, 0), 8) for f in frames]
    windows = real_windows(frames, fps)
    assert windows and all(w.present for w in windows)
    assert {w.attention for w in windows} == {"unknown"}


def test_real_clip_eyes_closed_and_eyes_only_aversion():
    # WolfgangLanger_Pexels.mp4 (24 fps): labelled by eye, frame by frame. She closes her eyes at
    # the end (from 18.5 s), and turns only her eyes to the side at 9.3-10.2 s and 15.0-16.3 s
    # with the head nearly frontal; at 13.0-14.0 s she looks back towards the camera.
    frames, fps = read_frames(require_shared("videos/pyfeat/WolfgangLanger_Pexels.mp4"))
    by_second = {w.second: w for w in real_windows(frames, fps)}
    assert by_second[19].attention == "eyes_closed"
    # Closed from frame 440 (18.35 s): 0.65 of second 18, counted from the closure's first frame
    # once it outlasted a blink (before, only from 18.73 s on: 0.29, and the second read on_screen).
    assert by_second[18].attention == "eyes_closed"
    assert by_second[9].attention == "looking_away" and by_second[15].attention == "looking_away"
    assert by_second[13].attention == "on_screen"


def closure_clip(blur_sigma: float) -> tuple[list[np.ndarray], float, tuple[float, float]]:
    """WolfgangLanger's open-eyed middle (6-17.7 s: four blinks, labelled by eye at frames
    153-154, 248, 288 and 386-387) followed by her real closure (frames 440-471, labelled by eye)
    played forward and back, 2.7 s of closed eyes, then 2 s of open eyes; blurred like a soft
    webcam image. Returns the frames, the rate and the closure's start and end in seconds."""
    frames, fps = read_frames(require_shared("videos/pyfeat/WolfgangLanger_Pexels.mp4"))
    closed = frames[440:472]
    clip = frames[140:425] + closed + closed[::-1] + frames[300:348]
    clip = [cv2.GaussianBlur(f, (0, 0), blur_sigma) for f in clip] if blur_sigma else clip
    return clip, fps, (285 / fps, (285 + 2 * len(closed)) / fps)


@pytest.mark.slow
@pytest.mark.parametrize("blur_sigma", [0.0, 3.6])
def test_real_closure_reads_eyes_closed_and_real_blinks_do_not(blur_sigma):
    # At blur sigma 3.6 the open face's sharpness is 48-66 and the closed one's 40-46, beside the
    # 40 limit: some closed frames are too soft for the gaze. Before the fix the fully closed
    # second read looking_away with eyes_closed_ratio 0.23 (the stored on_screen of the issue).
    frames, fps, (start, end) = closure_clip(blur_sigma)
    by_second = {w.second: w for w in real_windows(frames, fps)}
    closed = range(math.ceil(start), math.floor(end) + 1)  # seconds at least half closed: 12-14
    assert [by_second[s].attention for s in closed] == ["eyes_closed"] * len(closed)
    assert by_second[13].eyes_closed_ratio == 1.0
    # The blinks before it, and the open eyes after it, never count.
    others = [w for s, w in by_second.items() if s not in closed and s != int(start)]
    assert all(not w.eyes_closed_ratio for w in others)
