"""Fatigue for the class (feature tests): yawns per participant-hour, heavy eyes, smiles, each
held back below k; the `fatigue_rising` alert and the facilitator's sentence about it."""

from __future__ import annotations

import pytest

from dashboard.clock import Clock
from dashboard.summary import fatigue_frame, fatigue_sentence
from engagement.core.records import FEATURE_NAMES, WindowFeatures
from engagement.temporal.outputs import ClassPoint
from engagement.temporal.timeline import FatigueRule, class_alerts, class_point, fatigue_alerts, fatigue_series

N = 12


def window(track: int, second: int, *, yawn: int = 0, perclos: float | None = 0.03, smile: int | None = None) -> WindowFeatures:
    values = (0.0,) * len(FEATURE_NAMES)
    return WindowFeatures(track, second, 30, 30, 0, values, values, attention="on_screen", on_screen_ratio=1.0,
                          eyes_closed_ratio=0.0, yawn=yawn, perclos=perclos, smile=smile)  # fmt: skip


def test_class_figures_need_k_participants_behind_them():
    three = [window(t, 5, perclos=0.2 if t == 0 else 0.03, smile=1 if t < 2 else 0) for t in range(3)]
    point = class_point(5, [], k_min=3, windows=three, yawn_starts=1)
    assert point.n_seen == 3 and point.n_yawns == 1
    assert point.perclos_share == pytest.approx(1 / 3) and point.smile_share == pytest.approx(2 / 3)
    two = class_point(5, [], k_min=3, windows=three[:2], yawn_starts=1)
    assert two.n_yawns is None and two.perclos_share is None and two.smile_share is None


def test_smile_share_is_never_shown_where_smiles_are_not_measured():
    # Under eu-ai-act every window's smile is None (tests/test_fatigue.py): no share at all.
    point = class_point(5, [], k_min=3, windows=[window(t, 5, smile=None) for t in range(N)])
    assert point.smile_share is None and point.perclos_share == 0.0


def class_points(yawn_at: dict[int, int], heavy: float = 0.0, seconds: int = 900) -> list[ClassPoint]:
    """A class of N seen every second; `yawn_at`: second -> yawns that began then."""
    return [
        ClassPoint(s, N, N, 0.6, False, N, 0.8, 0, n_seen=N, n_yawns=yawn_at.get(s, 0), perclos_share=heavy)
        for s in range(seconds)
    ]


def test_three_yawns_among_twelve_in_five_minutes_raise_the_alert_and_one_does_not():
    points = class_points({400: 1, 460: 1, 520: 1})
    rate = {s: r for s, _, r, _ in fatigue_series(points)}
    assert rate[530] == pytest.approx(3.0)  # 3 yawns / (12 people x 5 min = 1 participant-hour)
    alerts = [a for a in class_alerts(points) if a.kind == "fatigue_rising"]
    assert len(alerts) == 1 and alerts[0].start_second == 520 and alerts[0].end_second == 699
    assert not fatigue_alerts(class_points({400: 1}))
    assert not fatigue_alerts(class_points({}))


def test_heavy_eyes_in_a_third_of_the_class_raise_the_alert():
    assert fatigue_alerts(class_points({}, heavy=0.33))
    assert not fatigue_alerts(class_points({}, heavy=0.1))


def test_seconds_held_back_below_k_never_make_a_yawn_rate():
    points = [ClassPoint(s, 2, 2, None, True, 2, None, None, n_seen=2, n_yawns=None) for s in range(900)]
    assert all(rate is None for _, _, rate, _ in fatigue_series(points)) and not fatigue_alerts(points)


def test_the_facilitator_sentence_names_the_yawns_and_the_break():
    points = class_points({400: 1, 460: 1, 520: 1}, seconds=600)
    now = fatigue_sentence(points, Clock.for_session(None, 600), "id", live=True)
    assert now == "3 kali menguap di antara 12 peserta dalam 5 menit terakhir: saatnya istirahat singkat."
    english = fatigue_sentence(points, Clock.for_session(None, 600), "en", live=True)
    assert english == "3 yawns among 12 participants in the last 5 minutes: time for a short break."
    heavy = fatigue_sentence(class_points({400: 1, 460: 1, 520: 1}, heavy=0.5, seconds=600), Clock.for_session(None, 600),
                             "id", live=True)  # fmt: skip
    assert heavy is not None and "mata berat pada 50% peserta" in heavy
    later = fatigue_sentence(class_points({400: 1, 460: 1, 520: 1}), Clock.for_session(None, 900), "en", live=False)
    assert later is not None and later.startswith("Signs of tiredness at")
    assert fatigue_sentence(class_points({400: 1}), Clock.for_session(None, 900), "id", live=True) is None


def test_the_fatigue_lane_has_one_row_per_bucket():
    frame = fatigue_frame(class_points({400: 1, 460: 1, 520: 1}), 60)
    assert list(frame["t"]) == list(range(0, 900, 60))
    assert frame.set_index("t").loc[540, "yawn_rate"] == pytest.approx(3.0)


def test_a_yawn_over_several_seconds_is_one_yawn_in_the_class_rate():
    from engagement.temporal.model import TemporalModel
    from engagement.temporal.stage import TemporalStage

    stage = TemporalStage(TemporalModel.load(), k_min=3)
    yawning = {10, 11, 12, 13, 40, 41}  # track 0 yawns twice; the others never
    points = [
        stage.process_second(s, {t: window(t, s, yawn=int(t == 0 and s in yawning)) for t in range(4)}).class_point
        for s in range(60)
    ]
    assert [p.second for p in points if p.n_yawns] == [10, 40]
    assert sum(p.n_yawns for p in points) == 2
