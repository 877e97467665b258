"""Behaviour of the engagement estimate through the real TemporalStage, on constructed per-second
sequences whose right direction is known: a participant facing the screen must score above one
turned 40 deg away or with eyes closed half the time, more on-screen time must never lower the
score, and absent seconds are absent (no score), never low.

Every participant first faces the screen for WARMUP_S seconds (the vision stage learns the
screen direction and the temporal stage the usual direction from them), then does what the case
says for the rest of RUN_S seconds; scores are compared over the last COMPARE_S seconds. The
same cases run on engagement-gru.v1, which fails them: the checks can fail.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from engagement.core.records import FEATURE_NAMES, WindowFeatures
from engagement.temporal.model import DEFAULT_MODEL, TemporalModel
from engagement.temporal.stage import TemporalStage

IDX = {n: i for i, n in enumerate(FEATURE_NAMES)}
WARMUP_S = 60
RUN_S = 300
COMPARE_S = 120
AWAY = math.radians(40)
FRAMES = 10
# Smallest score gap that counts as "lower": well above the scores' second-to-second noise here.
CLEAR_GAP = 0.05
# Monotonic sweep: a later point may sit below an earlier one by float noise only.
MONOTONE_SLACK = 1e-4


def second_window(second: int, rng: np.random.Generator, *, yaw: float = 0.0, eyes_closed: float = 0.0,
                  on_screen: float | None = 1.0, track: int = 1, present: bool = True) -> WindowFeatures:
    """One second of a participant: head and gaze turned `yaw` rad, with ordinary small movement;
    `eyes_closed` of the frames with closed eyes (lids near shut); the vision stage's verdicts."""
    if not present:
        empty = (None,) * len(FEATURE_NAMES)
        return WindowFeatures(track, second, FRAMES, 0, 0, empty, empty)
    mean = np.zeros(len(FEATURE_NAMES))
    std = np.zeros(len(FEATURE_NAMES))
    for name, centre in (("head_yaw", yaw), ("gaze_yaw", yaw), ("head_pitch", 0.05), ("gaze_pitch", 0.1),
                         ("head_roll", 0.0)):
        mean[IDX[name]] = centre + rng.normal(0.0, 0.01)
        std[IDX[name]] = 0.02
    mean[IDX["head_tz"]], std[IDX["head_tz"]] = 600.0 + rng.normal(0.0, 2.0), 3.0
    open_gap, closed_gap = 0.10, 0.01
    gap = (1 - eyes_closed) * open_gap + eyes_closed * closed_gap
    gap_std = math.sqrt(eyes_closed * (1 - eyes_closed)) * (open_gap - closed_gap) + 0.005
    for i in range(1, 6):
        for side in "lr":
            mean[IDX[f"lid_{side}{i}"]], std[IDX[f"lid_{side}{i}"]] = gap, gap_std
    ear = (1 - eyes_closed) * 0.3 + eyes_closed * 0.05
    mean[IDX["eye_open_left"]] = mean[IDX["eye_open_right"]] = ear
    if on_screen is None:
        attention = "unknown"
    elif eyes_closed >= 0.5:
        attention = "eyes_closed"
    else:
        attention = "on_screen" if on_screen >= 0.5 else "looking_away"
    return WindowFeatures(track, second, FRAMES, FRAMES, 0, tuple(mean), tuple(std),
                          on_screen_ratio=on_screen, eyes_closed_ratio=eyes_closed if on_screen is not None else None,
                          attention=attention)


def facing(second: int, rng: np.random.Generator) -> WindowFeatures:
    return second_window(second, rng)


def turned_away(second: int, rng: np.random.Generator) -> WindowFeatures:
    if second < WARMUP_S:
        return facing(second, rng)
    return second_window(second, rng, yaw=AWAY, on_screen=0.0)


def eyes_closed_half(second: int, rng: np.random.Generator) -> WindowFeatures:
    """Drowsy: after the warm-up, eyes closed for 5 s out of every 10 s."""
    if second < WARMUP_S or (second // 5) % 2 == 0:
        return facing(second, rng)
    return second_window(second, rng, eyes_closed=1.0, on_screen=0.0)


def on_screen_share_of(k: int):
    """After the warm-up, `k` seconds of every 10 on screen, the others judged looking away with
    every other number equal (all else equal: only the vision stage's verdict differs)."""

    def case(second: int, rng: np.random.Generator) -> WindowFeatures:
        if second < WARMUP_S or second % 10 < k:
            return facing(second, rng)
        return second_window(second, rng, on_screen=0.0)

    return case


def run_case(model: TemporalModel, case, seed: int = 0) -> list:
    """Estimates of one participant over RUN_S seconds through a fresh stage."""
    stage = TemporalStage(model, k_min=1)
    rng = np.random.default_rng(seed)
    return [stage.process_second(s, {1: case(s, rng)}).estimates[0] for s in range(RUN_S)]


def late_score(estimates) -> float:
    scores = [e.score for e in estimates[-COMPARE_S:] if e.score is not None]
    assert len(scores) == COMPARE_S
    return float(np.mean(scores))


@pytest.fixture(scope="module")
def model() -> TemporalModel:
    return TemporalModel.load()


@pytest.fixture(scope="module")
def facing_score(model) -> float:
    return late_score(run_case(model, facing))


def test_facing_the_screen_beats_a_steady_look_40_degrees_away(model, facing_score):
    away = late_score(run_case(model, turned_away))
    assert facing_score - away >= CLEAR_GAP, (facing_score, away)


def test_facing_the_screen_beats_eyes_closed_half_the_time(model, facing_score):
    drowsy = late_score(run_case(model, eyes_closed_half))
    assert facing_score - drowsy >= CLEAR_GAP, (facing_score, drowsy)


def test_more_on_screen_time_never_lowers_the_score(model):
    scores = [late_score(run_case(model, on_screen_share_of(k))) for k in range(0, 11, 2)]
    assert all(b >= a - MONOTONE_SLACK for a, b in zip(scores, scores[1:])), scores
    assert scores[-1] - scores[0] >= CLEAR_GAP, scores


def test_absent_seconds_are_absent_never_low(model, facing_score):
    """Camera off every other 10 s: those seconds carry no score, and the seconds with a face score
    as a participant who never left does."""

    def flicker(second: int, rng: np.random.Generator) -> WindowFeatures:
        return second_window(second, rng, present=second < WARMUP_S or (second // 10) % 2 == 0)

    estimates = run_case(model, flicker)
    absent = [e for s, e in enumerate(estimates) if s >= WARMUP_S and (s // 10) % 2 == 1]
    assert absent and all(e.state == "absent" and e.score is None and e.level is None for e in absent)
    present = [e.score for e in estimates[-COMPARE_S:] if e.state == "present"]
    assert len(present) == COMPARE_S // 2
    assert float(np.mean(present)) >= facing_score - 0.01


def test_unjudged_seconds_are_not_read_as_looking_away(model, facing_score):
    """The vision stage could not judge the gaze (on_screen_ratio None): the share is missing, not 0."""

    def unjudged(second: int, rng: np.random.Generator) -> WindowFeatures:
        return second_window(second, rng, on_screen=None if second >= WARMUP_S else 1.0)

    assert late_score(run_case(model, unjudged)) >= facing_score - 0.01


def test_the_checks_can_fail_engagement_gru_v1_fails_them():
    """v1 reads only movement variability: a steady look away or on-screen time cannot move it."""
    assert DEFAULT_MODEL != "engagement-gru.v1"
    v1 = TemporalModel.load("engagement-gru.v1")
    facing_v1 = late_score(run_case(v1, facing))
    assert facing_v1 - late_score(run_case(v1, turned_away)) < CLEAR_GAP
    sweep = [late_score(run_case(v1, on_screen_share_of(k))) for k in (0, 10)]
    assert sweep[1] - sweep[0] < CLEAR_GAP
