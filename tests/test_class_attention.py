"""Class-level attention: the on-screen share and cameras off per second, with the minimum group
size, and the alerts on them (feature tests on constructed per-second inputs)."""

from __future__ import annotations

import numpy as np
import pytest

from engagement.core.records import FEATURE_NAMES, WindowFeatures
from engagement.core.schema import alerts, class_timeline
from engagement.temporal.outputs import Alert, ClassPoint, EngagementEstimate
from engagement.temporal.timeline import AlertRules, DropRule, class_alerts, class_point

N = len(FEATURE_NAMES)


def window(track: int, second: int, state: str, on_screen: float | None = None) -> WindowFeatures:
    if state == "absent":
        return WindowFeatures(track, second, 10, 0, 0, (None,) * N, (None,) * N)
    if state == "unknown":
        return WindowFeatures(track, second, 10, 10, 0, (0.0,) * N, (0.0,) * N, attention="unknown")
    ratio = on_screen if on_screen is not None else (1.0 if state == "on_screen" else 0.0)
    closed = 1.0 - ratio if state == "eyes_closed" else 0.0
    return WindowFeatures(
        track, second, 10, 10, 0, (0.0,) * N, (0.0,) * N,
        on_screen_ratio=ratio, eyes_closed_ratio=closed, attention=state,
    )  # fmt: skip


def estimates(windows: list[WindowFeatures]) -> list[EngagementEstimate]:
    return [
        EngagementEstimate(w.track_id, w.second, "present", score=0.6) if w.present
        else EngagementEstimate(w.track_id, w.second, "absent")
        for w in windows
    ]  # fmt: skip


def point(windows: list[WindowFeatures], k_min: int = 3) -> ClassPoint:
    return class_point(windows[0].second, estimates(windows), k_min, windows=windows)


def test_on_screen_share_is_over_judged_participants_and_absent_are_counted_apart():
    ws = [
        window(1, 0, "on_screen"),
        window(2, 0, "on_screen", on_screen=0.5),
        window(3, 0, "looking_away"),
        window(4, 0, "eyes_closed"),
        window(5, 0, "absent"),
        window(6, 0, "unknown"),
    ]
    p = point(ws)
    assert p.n_judged == 4
    assert p.on_screen_share == pytest.approx((1.0 + 0.5 + 0.0 + 0.0) / 4)
    assert p.n_absent == 1 and p.n_tracked == 6


def test_minimum_group_size_hides_small_groups():
    lone = point([window(1, 0, "on_screen")])
    assert lone.on_screen_share is None and lone.n_absent is None and lone.score is None
    # Two judged of four tracked with k = 3: the share is hidden, the cameras-off count is not
    # (it is a figure over all four).
    p = point([window(1, 0, "on_screen"), window(2, 0, "looking_away"), window(3, 0, "absent"), window(4, 0, "absent")])
    assert p.on_screen_share is None and p.n_judged == 2
    assert p.n_absent == 2
    assert point([window(1, 0, "on_screen"), window(2, 0, "looking_away"), window(3, 0, "absent")], k_min=2).on_screen_share == 0.5


def test_class_point_without_windows_keeps_the_score_only():
    p = class_point(0, [EngagementEstimate(i, 0, "present", score=0.5) for i in range(3)])
    assert p.score == 0.5 and p.on_screen_share is None and p.n_absent is None and p.n_judged == 0


def test_class_rows_match_their_tables():
    row = point([window(i, 0, "on_screen") for i in range(3)]).to_dict()
    assert set(row) == {c.name for c in class_timeline.columns} - {"run_id", "created_at"}
    assert row["on_screen_share"] == 1.0 and row["n_absent"] == 0
    for kind in ("on_screen_drop", "cameras_off_rise"):
        assert len(kind) <= alerts.c.kind.type.length


def session(seconds: int, on_screen_share, absent_count, n: int = 10, seed: int = 0) -> list[ClassPoint]:
    """Class points of `n` participants; the share on screen and the number absent per second."""
    rng = np.random.default_rng(seed)
    out = []
    for s in range(seconds):
        absent = absent_count(s)
        n_on = int(round(on_screen_share(s) * (n - absent)))
        ws = []
        for i in range(n):
            if i < absent:
                ws.append(window(i, s, "absent"))
            else:
                state = "on_screen" if i - absent < n_on else "looking_away"
                ws.append(window(i, s, state))
        rng.shuffle(ws)
        out.append(point(ws))
    return out


def test_sustained_fall_of_the_on_screen_share_fires_an_alert():
    # 10 minutes at 90 % on screen, 3 minutes at 50 %, back to 90 %.
    points = session(960, lambda s: 0.5 if 600 <= s < 780 else 0.9, lambda s: 0)
    found = class_alerts(points)
    (a,) = [x for x in found if x.kind == "on_screen_drop"]
    assert 590 <= a.start_second <= 630 and 770 <= a.end_second <= 800
    assert a.magnitude == pytest.approx(0.4, abs=0.05)
    assert not [x for x in found if x.kind == "cameras_off_rise"]


def test_short_dip_of_the_on_screen_share_is_not_an_alert():
    points = session(900, lambda s: 0.3 if 600 <= s < 620 else 0.9, lambda s: 0)
    assert [a for a in class_alerts(points) if a.kind == "on_screen_drop"] == []


def test_rise_of_cameras_off_fires_an_alert_and_does_not_read_as_a_fall_of_on_screen():
    # From minute 10, 4 of 10 turn their cameras off for 3 minutes; the rest keep watching.
    points = session(960, lambda s: 0.9, lambda s: 4 if 600 <= s < 780 else 0)
    found = class_alerts(points)
    (a,) = [x for x in found if x.kind == "cameras_off_rise"]
    assert 590 <= a.start_second <= 630 and 770 <= a.end_second <= 800
    assert a.magnitude == pytest.approx(0.4, abs=0.05)
    # Absent people are not "looking away": the on-screen share of those present holds.
    assert [x for x in found if x.kind == "on_screen_drop"] == []


def test_hidden_seconds_never_fire_alerts():
    # Two participants with k = 3: every class figure is hidden, whatever they do.
    points = []
    for s in range(900):
        state = "looking_away" if s >= 600 else "on_screen"
        ws = [window(1, s, state), window(2, s, "absent" if s >= 600 else "on_screen")]
        points.append(point(ws))
    assert class_alerts(points) == []


def test_score_alerts_keep_their_rule():
    points = [ClassPoint(s, 5, 5, 0.7 if s < 600 or s >= 900 else 0.4, False) for s in range(1200)]
    (a,) = class_alerts(points, AlertRules(score=DropRule()))
    assert a == Alert("attention_drop", a.start_second, a.end_second, a.magnitude)
    assert a.magnitude == pytest.approx(0.3, abs=0.01)


def test_temporal_stage_writes_the_class_attention_and_its_alerts():
    from engagement.temporal.stage import TemporalStage

    stage = TemporalStage.load()
    outputs = []
    for s in range(900):
        share_on = 0.4 if 500 <= s < 700 else 1.0
        ws = {i: window(i, s, "on_screen" if i < round(share_on * 5) else "looking_away") for i in range(5)}
        outputs.append(stage.process_second(s, ws))
    assert outputs[100].class_point.on_screen_share == 1.0 and outputs[100].class_point.n_absent == 0
    assert outputs[600].class_point.on_screen_share == pytest.approx(0.4)
    kinds = [a.kind for a in stage.finish()]
    assert kinds.count("on_screen_drop") == 1
