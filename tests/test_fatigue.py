"""Fatigue signals on inputs whose answer is known (feature tests): yawns from synthetic mouth and
eye signal sequences, closures and PERCLOS through the real vision stage and window aggregator
(the synthetic face of tests/synthetic_face.py), smiles per profile, and real-clip checks on the
shared clips (MediaPipe)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from clips import read_frames
from conftest import require_shared
from synthetic_face import Pose
from test_attention import closure_clip, real_windows, run

from engagement.core.config import AnalysisOptions
from engagement.core.records import BLENDSHAPE_NAMES, EXPRESSION_LABELS, FEATURE_NAMES, WindowFeatures
from engagement.temporal.fatigue import FatigueHistory, SecondCounts, smile
from engagement.temporal.windows import summarise
from engagement.vision.fatigue import YawnDetector
from privacy.profiles import get_profile

FPS = 30


def yawn_verdicts(mouth, jaw, smile_score, eyes, seconds: float = 6.0) -> list[bool]:
    """The detector's verdict per frame for signals given as functions of time (s)."""
    detector = YawnDetector()
    times = np.arange(int(seconds * FPS)) / FPS
    return [detector.update(t * 1000.0, mouth(t), jaw(t), smile_score(t), eyes(t)) for t in times]


def yawn_shape(t: float) -> float:
    """Wide open from 1 s to 5 s (a 4 s yawn), closed around it."""
    return 1.0 if 1.0 <= t < 5.0 else 0.0


def test_a_yawn_raises_yawn_from_one_and_a_half_seconds_in():
    verdicts = yawn_verdicts(
        mouth=lambda t: 0.05 + 0.8 * yawn_shape(t),
        jaw=lambda t: 0.05 + 0.7 * yawn_shape(t),
        smile_score=lambda t: 0.05,
        eyes=lambda t: 1.0 - 0.5 * yawn_shape(t),  # eyes squeezed to half their open level
    )
    yawning = [i / FPS for i, v in enumerate(verdicts) if v]
    assert yawning and yawning[0] == pytest.approx(2.5, abs=1.5 / FPS)
    assert yawning[-1] == pytest.approx(5.0 - 1.0 / FPS, abs=1.5 / FPS)


@pytest.mark.parametrize("hz", [3.0, 5.0])
def test_talking_with_a_quickly_moving_jaw_is_not_a_yawn(hz):
    # Syllables open the mouth as wide as a yawn, 3-5 times a second, with the eyes narrowed.
    wave = lambda t: 0.5 - 0.5 * math.cos(2 * math.pi * hz * t)  # noqa: E731
    verdicts = yawn_verdicts(
        mouth=lambda t: 0.05 + 0.9 * wave(t), jaw=lambda t: 0.8 * wave(t), smile_score=lambda t: 0.0,
        eyes=lambda t: 0.6, seconds=10.0,
    )  # fmt: skip
    assert not any(verdicts)


def test_a_laugh_or_a_wide_mouth_with_open_eyes_is_not_a_yawn():
    wide = dict(mouth=lambda t: 0.05 + 0.8 * yawn_shape(t), jaw=lambda t: 0.7 * yawn_shape(t))
    laugh = yawn_verdicts(**wide, smile_score=lambda t: 0.8 * yawn_shape(t), eyes=lambda t: 0.6)
    assert not any(laugh)
    surprise = yawn_verdicts(**wide, smile_score=lambda t: 0.0, eyes=lambda t: 1.1)
    assert not any(surprise)


def closure_windows(closed_s: tuple[float, float], seconds: float = 40.0, fps: float = 15.0) -> dict[int, WindowFeatures]:
    """Windows of a synthetic participant looking at the screen, eyes closed in `closed_s`."""

    def script(t: float) -> list[Pose]:
        closed = closed_s[0] <= t < closed_s[1]
        return [Pose(head_pitch=-12.0, eye_pitch=-8.0, ear=0.05 if closed else 0.30)]

    tracks, _ = run(script, seconds, fps=fps)
    (windows,) = tracks.values()
    return {w.second: w for w in windows}


def test_a_two_second_closure_is_one_long_closure():
    by_second = closure_windows((30.0, 32.0))
    assert sum(w.long_closures for w in by_second.values()) == 1
    assert by_second[32].long_closures == 1  # counted when the eyes open again
    # Two seconds shut in the last minute of readable eyes (warm-up included): PERCLOS 2/39.
    assert by_second[39].perclos == pytest.approx(2.0 / 39.0, abs=0.01)
    assert by_second[29].perclos == 0.0


def test_a_blink_is_not_a_long_closure_but_counts_in_the_blink_rate():
    by_second = closure_windows((30.0, 30.2))
    assert sum(w.long_closures for w in by_second.values()) == 0
    assert by_second[31].blink_rate == pytest.approx(60.0 / 31.0, rel=0.05)  # one blink in 31 s of face
    assert by_second[31].blink_ms == pytest.approx(200.0, abs=1000.0 / 15)
    assert by_second[29].blink_rate == 0.0 and by_second[29].blink_ms is None


def test_blinks_are_not_counted_at_a_gallery_frame_rate():
    # At 3 frames a second most blinks fall between frames: a blink rate would read low, so it
    # is missing there, while PERCLOS (a share of frames) is still given.
    by_second = closure_windows((30.0, 30.2), fps=3.0)
    assert all(w.blink_rate is None and w.blink_ms is None for w in by_second.values())
    assert by_second[39].perclos is not None
    assert closure_windows((30.0, 30.2), fps=8.0)[39].blink_rate is not None


def test_a_closure_longer_than_three_seconds_is_eyes_closed_not_a_long_closure():
    by_second = closure_windows((30.0, 35.0))
    assert sum(w.long_closures for w in by_second.values()) == 0
    assert by_second[32].attention == "eyes_closed"


def test_fatigue_figures_wait_for_fifteen_seconds_of_readable_eyes():
    history = FatigueHistory()
    figures = [history.add(SecondCounts(read=30, shut=3, present=True)) for _ in range(15)]
    assert all(f["perclos"] is None for f in figures[:14])
    assert figures[14]["perclos"] == pytest.approx(0.1)
    # The minute rolls on: a minute of open eyes brings PERCLOS back to zero.
    figures = [history.add(SecondCounts(read=30, shut=0, present=True)) for _ in range(60)]
    assert figures[-1]["perclos"] == 0.0


def window_with(happy: float | None, mouth_smile: float | None) -> WindowFeatures:
    """One second of a face with the CNN's Happy and the smile blendshapes as given (None: not
    measured, as the profile decides)."""
    expression = None if happy is None else tuple(happy if n == "happy" else 0.0 for n in EXPRESSION_LABELS)
    scores = tuple(mouth_smile if n.startswith("mouthSmile") else 0.1 for n in BLENDSHAPE_NAMES)
    values = [(0.0,) * len(FEATURE_NAMES)] * 30
    return summarise(0, 5, 30, values, 0, [expression] * 30 if expression else [], blendshapes=[scores] * 30)


def test_smile_needs_happy_and_the_smile_blendshapes_together():
    assert window_with(0.9, 0.8).smile == 1
    assert window_with(0.9, 0.1).smile == 0 and window_with(0.1, 0.8).smile == 0
    assert smile(None, None) is None


def test_smile_never_appears_under_eu_ai_act():
    """Under eu-ai-act the expression stage is off and the mouth blendshapes are withheld
    (vision/stage.py), so no second can carry a smile, whatever the face does."""
    options = get_profile("eu-ai-act").analysis_options(AnalysisOptions(expression=True))
    assert options.expression is False
    from engagement.vision.stage import _KEPT_BLENDSHAPES

    kept = _KEPT_BLENDSHAPES[options.expression]
    withheld = tuple(None if not keep else 0.9 for keep in kept)
    values = [(0.0,) * len(FEATURE_NAMES)] * 30
    window = summarise(0, 5, 30, values, 0, [], blendshapes=[withheld] * 30)
    assert window.smile is None and window.to_dict()["smile"] is None


@pytest.mark.slow
def test_real_talking_clips_give_no_yawns():
    """GRID: five speakers saying a sentence each (jawOpen up to 0.5, lip ratio up to 0.52). Each
    3 s clip is played forward, back and forward again four times (24 s), so the speaker's open-eye
    level is learned and a yawn could be confirmed: the test checks the detector, not the warm-up."""
    clips = sorted(require_shared("videos/grid").glob("*.mpg"))
    assert clips
    for clip in clips:
        frames, fps = read_frames(clip)
        windows = real_windows((frames + frames[::-1]) * 4, fps)
        judged = [w for w in windows if w.attention not in ("unknown", "absent")]
        assert len(judged) >= 10, clip.name  # eyes read against the speaker's open level
        assert all(w.yawn in (0, None) for w in windows), clip.name


@pytest.mark.slow
def test_real_closure_is_a_long_closure_and_real_blinks_are_not():
    """WolfgangLanger: four blinks labelled by eye, then her 2.7 s closure (tests/test_attention.py)."""
    frames, fps, (start, end) = closure_clip(0.0)
    windows = real_windows(frames, fps)
    ended = [w.second for w in windows if w.long_closures]
    assert ended == [math.floor(end)]
    assert all(not w.yawn for w in windows)
    # PERCLOS at the clip's end against the labels: the closure (64 frames) and the three blinks
    # labelled after the 70-frame warm-up (4 frames), over the 327 frames read: 0.208 (measured
    # 0.205 when written).
    assert windows[-1].perclos == pytest.approx((64 + 4) / 327, abs=0.02)


# WolfgangLanger_Pexels.mp4, labelled by eye at each second's middle frame: crying or sobbing with
# a hand over the mouth in seconds 0-9, smiling or laughing in 10 and 12-19 (11: mouth open,
# talking, left out).
SMILING = set(range(12, 20)) | {10}
NOT_SMILING = set(range(0, 10))


@pytest.mark.slow
def test_real_smiles_read_as_smiles_under_id_pdp():
    from engagement.core.records import Frame
    from engagement.temporal.windows import WindowAggregator
    from engagement.vision.stage import VisionStage

    frames, fps = read_frames(require_shared("videos/pyfeat/WolfgangLanger_Pexels.mp4"))
    options = get_profile("id-pdp").analysis_options(AnalysisOptions(expression=True))
    stage, agg, windows = VisionStage.from_options(options), WindowAggregator(1000), []
    try:
        for i, img in enumerate(frames):
            frame = Frame(i * 1000.0 / fps, i, img)
            windows += agg.add(frame.t_ms, stage.measure(frame, stage.observe(frame)))
    finally:
        stage.close()
    smiles = {w.second: w.smile for w in windows + agg.flush()}
    hits = sum(smiles[s] == 1 for s in SMILING)
    false = sum(smiles[s] == 1 for s in NOT_SMILING)
    print(f"smile recall {hits}/{len(SMILING)}, false smiles {false}/{len(NOT_SMILING)}")
    assert false == 0 and hits >= 0.75 * len(SMILING)
