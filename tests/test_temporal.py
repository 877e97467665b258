"""Temporal stage: segment statistics, masks, state carry-over, k-suppression, drop alerts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engagement.records import EXPRESSION_LABELS, FEATURE_NAMES, WindowFeatures
from engagement.schema import alerts, class_timeline, engagement_estimates
from engagement.temporal.features import (
    INPUT_NAMES,
    MIN_PRESENT_S,
    N_ATTENTION,
    N_INPUTS,
    SEGMENT_S,
    engagewild_inputs,
    segment_inputs,
)
from engagement.temporal.model import TemporalModel
from engagement.temporal.records import Alert, ClassPoint, EngagementEstimate
from engagement.temporal.stage import TemporalStage
from engagement.temporal.timeline import DropRule, class_point, detect_drops

IDX = {n: i for i, n in enumerate(FEATURE_NAMES)}


def frames_to_window(track: int, second: int, frames: np.ndarray, n_frames: int | None = None,
                     expression=None) -> WindowFeatures:
    """A window from per-frame values (rows: frames, columns: FEATURE_NAMES)."""
    if len(frames) == 0:
        empty = (None,) * len(FEATURE_NAMES)
        return WindowFeatures(track, second, n_frames or 10, 0, 0, empty, empty, None)
    return WindowFeatures(track, second, n_frames or len(frames), len(frames), 0,
                          tuple(float(v) for v in frames.mean(0)), tuple(float(v) for v in frames.std(0)), expression)


def random_frames(rng, n: int, motion: float = 0.05) -> np.ndarray:
    f = np.zeros((n, len(FEATURE_NAMES)))
    for name in ("head_yaw", "head_pitch", "head_roll", "gaze_yaw", "gaze_pitch"):
        f[:, IDX[name]] = rng.normal(0.0, motion, n)
    f[:, IDX["head_tz"]] = rng.normal(600.0, 600.0 * motion * 0.2, n)
    for i in range(1, 6):
        f[:, IDX[f"lid_l{i}"]] = rng.normal(0.1, 0.01, n)
        f[:, IDX[f"lid_r{i}"]] = rng.normal(0.1, 0.01, n)
    f[:, IDX["eye_open_left"]] = f[:, IDX["eye_open_right"]] = 0.3
    return f


@pytest.fixture(scope="module")
def model() -> TemporalModel:
    return TemporalModel.load()


# --- segment statistics ------------------------------------------------------------------------

def test_segment_inputs_pool_exactly_from_per_second_stats():
    rng = np.random.default_rng(0)
    per_second = [random_frames(rng, n) for n in (30, 12, 25, 1)]
    windows = [frames_to_window(1, s, f) for s, f in enumerate(per_second)]
    x, mask = segment_inputs(windows, use_expression=False)
    allf = np.concatenate(per_second)
    expect = {
        "gaze_yaw_std": allf[:, IDX["gaze_yaw"]].std(),
        "gaze_pitch_std": allf[:, IDX["gaze_pitch"]].std(),
        "head_pitch_std": allf[:, IDX["head_pitch"]].std(),
        "head_yaw_std": allf[:, IDX["head_yaw"]].std(),
        "head_roll_std": allf[:, IDX["head_roll"]].std(),
        "head_dist_cv": allf[:, IDX["head_tz"]].std() / allf[:, IDX["head_tz"]].mean(),
        "eyelid_cv": np.mean([allf[:, IDX[n]].std() / allf[:, IDX[n]].mean()
                              for n in FEATURE_NAMES if n.startswith("lid_")]),
    }
    for name, value in expect.items():
        assert x[INPUT_NAMES.index(name)] == pytest.approx(value, rel=1e-5), name
    assert mask[:N_ATTENTION].all() and not mask[N_ATTENTION:].any()


def test_seconds_without_a_face_are_ignored_not_zero():
    rng = np.random.default_rng(1)
    f = random_frames(rng, 20)
    with_gaps = [frames_to_window(1, 0, f), frames_to_window(1, 1, np.empty((0, 0))), frames_to_window(1, 2, np.empty((0, 0)))]
    x1, m1 = segment_inputs(with_gaps, use_expression=False)
    x2, m2 = segment_inputs(with_gaps[:1], use_expression=False)
    np.testing.assert_allclose(x1, x2)
    np.testing.assert_array_equal(m1, m2)
    x, m = segment_inputs(with_gaps[1:], use_expression=False)
    assert not m.any() and not x.any()


def test_expression_channel_follows_the_profile():
    rng = np.random.default_rng(2)
    probs = tuple([1.0 / len(EXPRESSION_LABELS)] * len(EXPRESSION_LABELS))
    w = [frames_to_window(1, 0, random_frames(rng, 10), expression=probs)]
    _, m_on = segment_inputs(w, use_expression=True)
    _, m_off = segment_inputs(w, use_expression=False)
    assert m_on[N_ATTENTION:].all() and not m_off[N_ATTENTION:].any()


def test_engagewild_mapping_uses_the_documented_dims():
    arr = np.zeros((1, 2, 60), np.float32)
    arr[0, :, 14], arr[0, :, 58], arr[0, :, 16:26] = 0.1, 0.2, np.arange(10) / 100
    arr[0, 1, 46] = np.nan
    x, m = engagewild_inputs(arr)
    assert x[0, 0, INPUT_NAMES.index("gaze_yaw_std")] == pytest.approx(0.1)
    assert x[0, 0, INPUT_NAMES.index("head_yaw_std")] == pytest.approx(0.2)
    assert x[0, 0, INPUT_NAMES.index("eyelid_cv")] == pytest.approx(0.045)
    assert m[0, 1, INPUT_NAMES.index("head_dist_cv")] == 0 and m[0, 0, INPUT_NAMES.index("head_dist_cv")] == 1
    assert not m[..., N_ATTENTION:].any()


# --- the ONNX model: masks and state ----------------------------------------------------------

def _sequence(rng, n=3, t=12):
    x = np.abs(rng.normal(0.08, 0.05, (n, t, N_INPUTS))).astype(np.float32)
    m = np.ones_like(x)
    m[..., N_ATTENTION:] = 0
    return x, m


def test_streaming_state_carry_equals_whole_sequence(model):
    rng = np.random.default_rng(3)
    x, m = _sequence(rng)
    m[0, 4] = 0.0  # a segment without a face
    m[1, 6, 2] = 0.0  # one input missing
    whole = model.run(x, m)
    h = model.initial_state(len(x))
    for t in range(x.shape[1]):
        step = model.run(x[:, t : t + 1], m[:, t : t + 1], h)
        h = step.state
        np.testing.assert_allclose(step.score[:, 0], whole.score[:, t], atol=1e-5)
        np.testing.assert_allclose(step.levels[:, 0], whole.levels[:, t], atol=1e-5)
        np.testing.assert_allclose(step.uncertainty[:, 0], whole.uncertainty[:, t], atol=1e-5)
    np.testing.assert_allclose(h, whole.state, atol=1e-5)
    # Carried state matters: the same segment from a fresh state gives another answer.
    fresh = model.run(x[:, -1:], m[:, -1:])
    assert np.abs(fresh.score[:, 0] - whole.score[:, -1]).max() > 1e-4


def test_fully_missing_segment_holds_state_and_score(model):
    rng = np.random.default_rng(4)
    x, m = _sequence(rng, t=6)
    m[:, 3:] = 0.0
    x[:, 3:] = 123.0  # garbage under the mask must not matter
    out = model.run(x, m)
    for t in (4, 5):
        np.testing.assert_array_equal(out.score[:, t], out.score[:, 2])
    ref = model.run(x[:, :3], m[:, :3])
    np.testing.assert_array_equal(out.state, ref.state)


def test_masked_inputs_do_not_leak_and_expression_is_ignored(model):
    rng = np.random.default_rng(5)
    x, m = _sequence(rng, n=1, t=4)
    base = model.run(x, m).score
    x2 = x.copy()
    x2[..., N_ATTENTION:] = rng.random(x2[..., N_ATTENTION:].shape)
    m2 = model.effective_mask(np.ones_like(m), use_expression=True)
    assert not model.expression_trained and not m2[..., N_ATTENTION:].any()
    np.testing.assert_allclose(model.run(x2, m2).score, base, atol=1e-7)
    x3 = x.copy()
    x3[0, 1, 0] = np.nan  # non-finite -> masked
    assert np.isfinite(model.run(x3, m).score).all()


def test_outputs_are_well_formed(model):
    rng = np.random.default_rng(6)
    x, m = _sequence(rng, n=4, t=5)
    out = model.run(x * 5, m)
    assert ((out.score >= 0) & (out.score <= 1)).all()
    np.testing.assert_allclose(out.levels.sum(-1), 1.0, atol=1e-5)
    assert (out.uncertainty > 0).all() and (out.uncertainty <= 0.5).all()
    for key in ("input_names", "normalisation", "data_citation", "version", "segment_s", "hop_s"):
        assert key in model.metadata


# --- the stage -------------------------------------------------------------------------------

def _windows(rng, second, tracks, absent=()):
    return {t: frames_to_window(t, second, np.empty((0, 0)) if t in absent else random_frames(rng, 10))
            for t in tracks}


def test_short_clip_scores_after_min_seconds_and_absent_has_no_score(model):
    stage = TemporalStage(model, use_expression=False, k_min=1)
    rng = np.random.default_rng(7)
    outs = [stage.process_second(s, _windows(rng, s, [1], absent={1} if s == 3 else ())) for s in range(5)]
    states = [o.estimates[0].state for o in outs]
    assert states[: MIN_PRESENT_S - 1] == ["unknown"] * (MIN_PRESENT_S - 1)
    assert states[MIN_PRESENT_S - 1] == "present" and states[3] == "absent"
    absent = outs[3].estimates[0]
    assert absent.score is None and absent.level is None and absent.uncertainty is None
    ok = outs[4].estimates[0]
    assert 0 <= ok.score <= 1 and ok.level in range(4) and len(ok.p_levels) == 4 and ok.uncertainty > 0


def test_state_is_committed_every_hop_and_carried(model):
    stage = TemporalStage(model, k_min=1)
    rng = np.random.default_rng(8)
    for s in range(SEGMENT_S + 20):
        stage.process_second(s, _windows(rng, s, [1]))
    track = stage._tracks[1]
    assert track.last_commit == SEGMENT_S - 1 + 15 and track.state is not None and track.state.any()


def test_withdrawn_consent_forgets_the_track(model):
    stage = TemporalStage(model, k_min=1)
    rng = np.random.default_rng(9)
    stage.process_second(0, _windows(rng, 0, [1, 2]))
    out = stage.process_second(1, _windows(rng, 1, [1, 2]), consenting={2})
    assert [e.track_id for e in out.estimates] == [2] and 1 not in stage._tracks
    assert out.class_point.n_tracked == 1


def test_class_timeline_k_suppression(model):
    rng = np.random.default_rng(10)
    stage = TemporalStage(model, k_min=3)
    for s in range(3):
        out = stage.process_second(s, _windows(rng, s, [1, 2, 3, 4], absent={4} if s < 2 else {3, 4}))
    assert out.class_point.n_tracked == 4 and out.class_point.n_present == 2
    assert out.class_point.suppressed and out.class_point.score is None
    out = stage.process_second(3, _windows(rng, 3, [1, 2, 3, 4], absent={4}))
    scores = [e.score for e in out.estimates if e.state == "present"]
    assert not out.class_point.suppressed and out.class_point.n_present == 3
    assert out.class_point.score == pytest.approx(sum(scores) / 3)


def test_class_point_ignores_absent_and_unknown():
    est = [EngagementEstimate(1, 0, "present", 0.8), EngagementEstimate(2, 0, "present", 0.6),
           EngagementEstimate(3, 0, "absent"), EngagementEstimate(4, 0, "unknown")]
    p = class_point(0, est, k_min=2)
    assert p.score == pytest.approx(0.7) and p.n_present == 2 and p.n_tracked == 4 and not p.suppressed
    assert class_point(0, est, k_min=3).score is None
    with pytest.raises(ValueError):
        EngagementEstimate(1, 0, "absent", 0.1)


# --- alerts ----------------------------------------------------------------------------------

def test_sustained_drop_becomes_one_alert_with_its_span():
    series = [(s, 0.8) for s in range(600)] + [(s, 0.8 - 0.4 * (s - 600) / 120) for s in range(600, 720)]
    series += [(s, 0.4) for s in range(720, 1000)] + [(s, 0.8) for s in range(1000, 1300)]
    found = detect_drops(series)
    assert len(found) == 1
    a = found[0]
    assert a.kind == "attention_drop" and 590 <= a.start_second <= 640 and 990 <= a.end_second <= 1060
    assert a.magnitude == pytest.approx(0.4, abs=0.03)


def test_brief_dip_noise_and_gaps_give_no_alert():
    rng = np.random.default_rng(11)
    dip = [(s, 0.3 if 500 <= s < 540 else 0.8) for s in range(1200)]
    noise = [(s, float(np.clip(0.7 + rng.normal(0, 0.05), 0, 1))) for s in range(1200)]
    gaps = [(s, None if 300 <= s < 900 else 0.7) for s in range(1200)]
    assert detect_drops(dip) == [] and detect_drops(noise) == [] and detect_drops(gaps) == []


def test_drop_until_the_end_and_two_drops():
    series = [(s, 0.9 if s < 300 else 0.5) for s in range(800)]
    (a,) = detect_drops(series)
    assert a.end_second == 799 and a.start_second < 330
    two = [(s, 0.9 if (s // 400) % 2 == 0 else 0.5) for s in range(1600)]
    assert len(detect_drops(two, DropRule(min_drop=0.2, sustain_s=120))) == 2


# --- records match the schema ----------------------------------------------------------------

def _columns(table) -> set[str]:
    return {c.name for c in table.columns} - {"run_id", "created_at", "id"}


def test_records_to_dict_keys_are_schema_columns():
    e = EngagementEstimate(1, 2, "present", 0.5, 2, (0.1, 0.2, 0.3, 0.4), 0.2)
    assert set(e.to_dict()) == _columns(engagement_estimates)
    assert set(ClassPoint(1, 3, 4, 0.5, False).to_dict()) == _columns(class_timeline)
    assert set(Alert("attention_drop", 1, 200, 0.2).to_dict()) == _columns(alerts)
    assert ClassPoint(1, 0, 0, None, True).to_dict()["suppressed"] == 1
    assert math.isclose(e.to_dict()["p_level3"], 0.4)
