"""Track ids and per-second windows on constructed inputs."""

import math

import numpy as np
import pytest

from engagement.core.records import BLENDSHAPE_NAMES, FEATURE_NAMES, FrameFeatures
from engagement.temporal.windows import WindowAggregator, pooled
from engagement.vision.tracking import FaceTracker


def test_ids_stay_with_moving_faces_and_survive_short_loss():
    tracker = FaceTracker(lost_ms=3000)
    a, b = (100, 100, 200, 220), (400, 100, 500, 220)
    assert tracker.update([a, b], 0) == [1, 2]
    assert tracker.update([(410, 105, 510, 225), (105, 100, 205, 220)], 40) == [2, 1]
    assert tracker.update([], 1000) == []  # both lost for a while
    assert tracker.update([(110, 100, 210, 220)], 2500) == [1]  # back within 3 s: same id
    assert tracker.update([(400, 100, 500, 220)], 7000) == [3]  # gone longer: a new id


def frame_features(track_id, t_ms, value=0.1, blink=False):
    return FrameFeatures(t_ms=t_ms, track_id=track_id, values=(value,) * len(FEATURE_NAMES), blink=blink)


def test_windows_mark_absence_as_missing_not_zero():
    agg = WindowAggregator(1000)
    out = []
    for i in range(30):  # 10 fps for 3 s; the face is there only in the first second
        t = i * 100.0
        feats = [frame_features(1, t, value=0.2 + 0.01 * i, blink=(i == 3))] if t < 1000 else []
        out += agg.add(t, feats)
    out += agg.flush()
    assert [w.second for w in out] == [0, 1, 2]
    first, second, third = out
    assert first.n_face == 10 and first.present_ratio == 1.0 and first.blinks == 1
    assert first.mean[0] == pytest.approx(np.mean([0.2 + 0.01 * i for i in range(10)]))
    assert second.n_face == 0 and second.n_frames == 10 and not second.present
    assert all(m is None for m in second.mean) and all(s is None for s in second.std)
    assert third.to_dict()["head_yaw_mean"] is None


def test_windows_refuse_time_going_backwards():
    agg = WindowAggregator(1000)
    agg.add(2500.0, [])
    with pytest.raises(ValueError):
        agg.add(1200.0, [])


def test_windows_ignore_non_finite_values():
    agg = WindowAggregator(1000)
    vals = [0.1] * len(FEATURE_NAMES)
    vals[0] = math.nan
    agg.add(0.0, [FrameFeatures(0.0, 1, tuple(vals), False), frame_features(1, 500.0, 0.3)])
    (w,) = agg.flush()
    assert w.mean[0] == pytest.approx(0.3) and w.n_face == 2


def test_pooled_statistics_match_direct_computation():
    rng = np.random.default_rng(1)
    groups = [rng.normal(size=n) for n in (5, 12, 7)]
    mean, std = pooled([g.mean() for g in groups], [g.std() for g in groups], [len(g) for g in groups])
    allv = np.concatenate(groups)
    assert mean == pytest.approx(allv.mean()) and std == pytest.approx(allv.std())


def test_blendshapes_are_averaged_per_second_and_withheld_ones_stay_none():
    n = len(BLENDSHAPE_NAMES)
    agg = WindowAggregator(1000)
    values = (0.0,) * len(FEATURE_NAMES)
    for t, score in ((0.0, 0.2), (500.0, 0.4)):
        scores = (score,) * (n - 1) + (None,)  # the last one withheld by the profile
        assert agg.add(t, [FrameFeatures(t, 1, values, False, blendshapes=scores)]) == []
    agg.add(800.0, [FrameFeatures(800.0, 1, values, False)])  # a frame without blendshapes
    (window,) = agg.add(1000.0, [])
    assert window.blendshapes[:-1] == pytest.approx((0.3,) * (n - 1))
    assert window.blendshapes[-1] is None
    row = window.to_dict()
    assert row[f"bs_{BLENDSHAPE_NAMES[0]}"] == pytest.approx(0.3) and row[f"bs_{BLENDSHAPE_NAMES[-1]}"] is None
    with pytest.raises(ValueError, match="blendshape"):
        FrameFeatures(0.0, 1, values, False, blendshapes=(0.1,))
