"""Temporal stage: segment statistics, masks, state carry-over, k-suppression, drop alerts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from engagement.core.records import EXPRESSION_LABELS, FEATURE_NAMES, WindowFeatures
from engagement.core.schema import alerts, class_timeline, engagement_estimates
from engagement.temporal.features import (
    BASELINE_MIN_S,
    INPUT_NAMES,
    MIN_PRESENT_S,
    N_INPUTS,
    SEGMENT_S,
    Baseline,
    engagewild_inputs,
    gaussian_cone_share,
    segment_inputs,
)
from engagement.temporal.model import TemporalModel
from engagement.temporal.outputs import Alert, ClassPoint, EngagementEstimate
from engagement.temporal.stage import TemporalStage
from engagement.temporal.timeline import DropRule, class_point, detect_drops

IDX = {n: i for i, n in enumerate(FEATURE_NAMES)}


VARIABILITY = ("gaze_yaw_std", "gaze_pitch_std", "eyelid_cv", "head_dist_cv", "head_pitch_std", "head_yaw_std",
               "head_roll_std")
COL = {n: i for i, n in enumerate(INPUT_NAMES)}


def frames_to_window(track: int, second: int, frames: np.ndarray, n_frames: int | None = None,
                     expression=None, on_screen: float | None = None, attention: str = "unknown") -> WindowFeatures:
    """A window from per-frame values (rows: frames, columns: FEATURE_NAMES)."""
    if len(frames) == 0:
        empty = (None,) * len(FEATURE_NAMES)
        return WindowFeatures(track, second, n_frames or 10, 0, 0, empty, empty, None)
    return WindowFeatures(track, second, n_frames or len(frames), len(frames), 0,
                          tuple(float(v) for v in frames.mean(0)), tuple(float(v) for v in frames.std(0)), expression,
                          on_screen_ratio=on_screen, eyes_closed_ratio=None if on_screen is None else 0.0,
                          attention=attention)


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
    x, mask = segment_inputs(windows)
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
    assert all(mask[COL[n]] for n in VARIABILITY)
    # No judgement from the vision stage and no usual direction yet: those inputs are missing.
    assert not mask[COL["on_screen_share"]] and not mask[COL["gaze_offset"]] and not mask[COL["head_offset"]]


def test_on_screen_share_and_offsets_from_the_participants_own_direction():
    rng = np.random.default_rng(12)
    frames = [random_frames(rng, n) for n in (10, 30, 10)]
    windows = [frames_to_window(1, 0, frames[0], on_screen=0.2), frames_to_window(1, 1, frames[1], on_screen=1.0),
               frames_to_window(1, 2, np.empty((0, 0))),
               frames_to_window(1, 3, frames[2], on_screen=None)]  # a face whose gaze was not judged
    usual = {"gaze_pitch": 0.1, "gaze_yaw": -0.2, "head_pitch": 0.05, "head_yaw": 0.3}
    x, mask = segment_inputs(windows, usual)
    # Judged seconds only, weighted by frames with a face: (10 * 0.2 + 30 * 1.0) / 40.
    assert x[COL["on_screen_share"]] == pytest.approx(0.8) and mask[COL["on_screen_share"]]
    allf = np.concatenate(frames)
    gp, gy = allf[:, IDX["gaze_pitch"]].mean(), allf[:, IDX["gaze_yaw"]].mean()
    assert x[COL["gaze_offset"]] == pytest.approx(math.hypot(gp - 0.1, gy + 0.2), rel=1e-4)
    hp, hy = allf[:, IDX["head_pitch"]].mean(), allf[:, IDX["head_yaw"]].mean()
    assert x[COL["head_offset"]] == pytest.approx(math.hypot(hp - 0.05, hy - 0.3), rel=1e-4)


def test_baseline_is_a_running_median_that_a_look_away_cannot_move():
    rng = np.random.default_rng(13)
    base = Baseline(size=50)
    for s in range(BASELINE_MIN_S - 1):
        base.add(frames_to_window(1, s, random_frames(rng, 10)))
    assert base.median() is None  # not enough seconds yet: offsets stay missing
    base.add(frames_to_window(1, 9, random_frames(rng, 10)))
    before = base.median()
    assert before is not None and abs(before["gaze_yaw"]) < 0.05
    away = random_frames(rng, 10)
    away[:, IDX["gaze_yaw"]] += 0.7
    for s in range(10, 100):
        base.add(frames_to_window(1, s, away, on_screen=0.0, attention="looking_away"))
    assert base.median() == before  # judged away: not the participant's usual direction
    for s in range(100, 200):
        base.add(frames_to_window(1, s, away))  # unjudged: counts; the window keeps the last 50
    assert base.median()["gaze_yaw"] == pytest.approx(float(np.mean(away[:, IDX["gaze_yaw"]])), abs=1e-6)


def test_seconds_without_a_face_are_ignored_not_zero():
    rng = np.random.default_rng(1)
    f = random_frames(rng, 20)
    with_gaps = [frames_to_window(1, 0, f), frames_to_window(1, 1, np.empty((0, 0))), frames_to_window(1, 2, np.empty((0, 0)))]
    usual = {"gaze_pitch": 0.0, "gaze_yaw": 0.0, "head_pitch": 0.0, "head_yaw": 0.0}
    x1, m1 = segment_inputs(with_gaps, usual)
    x2, m2 = segment_inputs(with_gaps[:1], usual)
    np.testing.assert_allclose(x1, x2)
    np.testing.assert_array_equal(m1, m2)
    x, m = segment_inputs(with_gaps[1:], usual)
    assert not m.any() and not x.any()


def test_expressions_are_not_an_input():
    """The shipped models do not use the expression CNN: its output changes no input."""
    assert not any(n.startswith("expr_") for n in INPUT_NAMES)
    rng = np.random.default_rng(2)
    frames = random_frames(rng, 10)
    probs = tuple([1.0 / len(EXPRESSION_LABELS)] * len(EXPRESSION_LABELS))
    with_expr = segment_inputs([frames_to_window(1, 0, frames, expression=probs)])
    without = segment_inputs([frames_to_window(1, 0, frames)])
    np.testing.assert_array_equal(with_expr[0], without[0])
    np.testing.assert_array_equal(with_expr[1], without[1])


CONE = (0.33, 0.21)


def test_engagewild_mapping_uses_the_documented_dims():
    arr = np.zeros((1, 3, 60), np.float32)
    arr[0, :, 14], arr[0, :, 58], arr[0, :, 16:26] = 0.1, 0.2, np.arange(10) / 100
    arr[0, 1, 46] = np.nan
    arr[0, :, 12] = [0.1, 0.1, 0.9]  # gaze yaw: the video's median is 0.1; the last segment 0.8 off
    arr[0, :, 52] = [0.0, 0.3, 0.0]  # head yaw (pose_Ry): median 0; the middle segment 0.3 off
    x, m = engagewild_inputs(arr, CONE)
    assert x[0, 0, COL["gaze_yaw_std"]] == pytest.approx(0.1)
    assert x[0, 0, COL["head_yaw_std"]] == pytest.approx(0.2)
    assert x[0, 0, COL["eyelid_cv"]] == pytest.approx(0.045)
    assert m[0, 1, COL["head_dist_cv"]] == 0 and m[0, 0, COL["head_dist_cv"]] == 1
    np.testing.assert_allclose(x[0, :, COL["gaze_offset"]], [0.0, 0.0, 0.8], atol=1e-6)
    np.testing.assert_allclose(x[0, :, COL["head_offset"]], [0.0, 0.3, 0.0], atol=1e-6)
    # Segment 0: Gaussian gaze (std 0.1 yaw, 0 pitch) centred on the usual direction, yaw
    # half-angle 0.33: P(|N(0, 0.1)| < 0.33) = 0.999; segment 2 sits 0.8 rad off: outside.
    assert x[0, 0, COL["on_screen_share"]] == pytest.approx(0.999, abs=1e-3)
    assert x[0, 2, COL["on_screen_share"]] == pytest.approx(0.0, abs=1e-3)
    assert m[..., COL["on_screen_share"]].all()


def test_gaussian_cone_share_against_sampling():
    rng = np.random.default_rng(14)
    offset, std = np.array([0.2, -0.1]), np.array([0.15, 0.1])
    g = offset + std * rng.standard_normal((200_000, 2))
    expect = np.mean((g[:, 0] / CONE[0]) ** 2 + (g[:, 1] / CONE[1]) ** 2 <= 1.0)
    assert gaussian_cone_share(offset, std, CONE) == pytest.approx(expect, abs=0.005)
    assert gaussian_cone_share(np.zeros(2), np.zeros(2), CONE) == 1.0


# --- the ONNX model: masks and state ----------------------------------------------------------

def _sequence(rng, n=3, t=12):
    x = np.abs(rng.normal(0.08, 0.05, (n, t, N_INPUTS))).astype(np.float32)
    x[..., COL["on_screen_share"]] = rng.uniform(0.0, 1.0, (n, t))
    return x, np.ones_like(x)


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


def test_masked_inputs_do_not_leak(model):
    rng = np.random.default_rng(5)
    x, m = _sequence(rng, n=1, t=4)
    m[0, 1, COL["head_yaw_std"]] = 0.0
    base = model.run(x, m).score
    x2 = x.copy()
    x2[0, 1, COL["head_yaw_std"]] = 123.0  # garbage under the mask
    np.testing.assert_allclose(model.run(x2, m).score, base, atol=1e-7)
    x3 = x.copy()
    x3[0, 1, 0] = np.nan  # non-finite -> masked
    assert np.isfinite(model.run(x3, m).score).all()


def test_shipped_model_reads_attention_and_no_expression(model):
    assert model.name == "engagement-linear.v2"
    assert {"on_screen_share", "gaze_offset", "head_offset"} <= set(model.input_names)
    assert not any(n.startswith("expr_") for n in model.input_names)
    assert model.metadata["uses_expression"] == "false"
    assert model.screen_cone is not None and len(model.screen_cone) == 2


def test_v1_stays_loadable_by_name_with_its_expression_channel_missing():
    v1 = TemporalModel.load("engagement-gru.v1")
    assert v1.name == "engagement-gru.v1" and len(v1.input_names) == 14
    rng = np.random.default_rng(15)
    x, m = _sequence(rng, n=2, t=5)
    out = v1.run(x, m)
    assert out.score.shape == (2, 5) and np.isfinite(out.score).all()
    # v1 reads only its seven variability inputs: the new ones do not move it.
    x2 = x.copy()
    x2[..., COL["on_screen_share"]] = 0.0
    x2[..., COL["gaze_offset"]] = 0.7
    np.testing.assert_allclose(v1.run(x2, m).score, out.score, atol=1e-7)


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
    stage = TemporalStage(model, k_min=1)
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
