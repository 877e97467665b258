"""Alerts while a class runs: which drops are new since the page last looked, a quick check of
the cameras-off share, and the alert sound.

The analysis writes its alerts only when it finishes, so during a live run the dashboard runs
the same rules (`engagement.temporal.timeline.class_alerts`) on the class timeline stored so far.
The sustained rules need a minute or more; a sudden rise of cameras off (half the class gone for
20 seconds) is worth a banner before that, so `cameras_off_jump` compares the last 20 seconds
with the five minutes before them.
"""

from __future__ import annotations

import base64
import io
import math
import struct
import wave
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd

from engagement.temporal.outputs import ClassPoint
from engagement.temporal.timeline import class_alerts

ALERT_COLUMNS = ["kind", "start_second", "end_second", "magnitude"]
JUMP_NOW_S = 20
JUMP_BEFORE_S = 300
JUMP_MIN_SHARE = 0.30  # at least this share of cameras off now ...
JUMP_MIN_RISE = 0.20  # ... and this much above the five minutes before


def live_alerts(points: list[ClassPoint]) -> pd.DataFrame:
    """The alerts the analysis would write if it finished now (ongoing drops included)."""
    rows = [a.to_dict() for a in class_alerts(points)]
    return pd.DataFrame(rows, columns=ALERT_COLUMNS)


def alert_key(kind: str, start_second: int) -> str:
    """An alert's identity across refreshes: its kind and start (its end grows while it lasts)."""
    return f"{kind}:{int(start_second)}"


def unseen(alerts: pd.DataFrame, seen: set[str]) -> pd.DataFrame:
    """The alerts not announced yet."""
    if alerts.empty:
        return alerts
    keys = [alert_key(k, s) for k, s in zip(alerts["kind"], alerts["start_second"])]
    return alerts[[k not in seen for k in keys]]


@dataclass(frozen=True)
class Jump:
    now: float  # cameras-off share over the last JUMP_NOW_S seconds
    before: float  # over the JUMP_BEFORE_S seconds before them
    second: int  # the latest second


def cameras_off_jump(points: list[ClassPoint]) -> Jump | None:
    """A sudden rise of cameras off at the end of `points` (seconds hidden by k do not count)."""
    known = [(p.second, p.n_absent / p.n_tracked) for p in points if p.n_absent is not None and p.n_tracked]
    if not known:
        return None
    last = known[-1][0]
    now = [v for s, v in known if s > last - JUMP_NOW_S]
    before = [v for s, v in known if last - JUMP_NOW_S - JUMP_BEFORE_S < s <= last - JUMP_NOW_S]
    if len(now) < JUMP_NOW_S // 2 or len(before) < JUMP_NOW_S:
        return None
    share_now, share_before = sum(now) / len(now), sum(before) / len(before)
    if share_now >= JUMP_MIN_SHARE and share_now - share_before >= JUMP_MIN_RISE:
        return Jump(share_now, share_before, last)
    return None


@lru_cache(maxsize=1)
def chime_wav() -> bytes:
    """A soft two-note chime (0.6 s, 16 kHz mono WAV), generated here: nothing is fetched."""
    rate, notes = 16_000, ((880.0, 0.25), (660.0, 0.35))
    frames = bytearray()
    for freq, length in notes:
        n = int(rate * length)
        for i in range(n):
            fade = min(1.0, i / (0.01 * rate), (n - i) / (0.05 * rate))  # no clicks at the edges
            frames += struct.pack("<h", int(0.35 * 32767 * fade * math.sin(2 * math.pi * freq * i / rate)))
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(bytes(frames))
    return buf.getvalue()


def chime_html(token: str) -> str:
    """An <audio> element that plays the chime once. Inline as a data: URL: Streamlit's /media
    route fails for audio under the pinned Streamlit/starlette (see researcher ZIP_MIME), and a
    data: URL never leaves the browser. `token` makes each new alert a new element (one play)."""
    data = base64.b64encode(chime_wav()).decode("ascii")
    return f'<audio autoplay data-alert="{token}" src="data:audio/wav;base64,{data}"></audio>'


JUMP_KIND = "cameras_off_jump"


def with_jump(alerts: pd.DataFrame, points: list[ClassPoint], jump: Jump | None) -> pd.DataFrame:
    """The live alerts and a sudden cameras-off rise as one table: the counter, the toasts and the
    banners all read it (the counter stayed at 0 while the camera-off banner showed). The rise
    starts where the cameras-off share last climbed to JUMP_MIN_SHARE, so its identity (kind and
    start) holds across refreshes and it is announced once."""
    if jump is None:
        return alerts
    shares = [(p.second, p.n_absent / p.n_tracked) for p in points if p.n_absent is not None and p.n_tracked]
    start = jump.second
    for second, share in reversed(shares):
        if share < JUMP_MIN_SHARE:
            break
        start = second
    row = pd.DataFrame([[JUMP_KIND, start, jump.second, jump.now - jump.before]], columns=ALERT_COLUMNS)
    return row if alerts.empty else pd.concat([alerts, row], ignore_index=True)


NOW_S = 30  # the "now" panel's share on screen: the last 30 seconds ...
BEFORE_S = 300  # ... against the five minutes before them


@dataclass(frozen=True)
class Now:
    """What the live view's large panel shows: the share on screen over the last NOW_S seconds,
    its change against the BEFORE_S seconds before (None until both are known), the latest second
    and the people with a camera on then."""

    share: float | None
    change: float | None
    second: int
    present: int


def now_figures(points: list[ClassPoint]) -> Now | None:
    if not points:
        return None
    last = points[-1].second

    def mean(first: int, end: int) -> float | None:
        values = [p.on_screen_share for p in points if first < p.second <= end and p.on_screen_share is not None]
        return sum(values) / len(values) if values else None

    share = mean(last - NOW_S, last)
    before = mean(last - NOW_S - BEFORE_S, last - NOW_S)
    change = None if share is None or before is None else share - before
    newest = points[-1]
    # People with their camera on: the tracked less those absent (cameras off, faces lost).
    present = newest.n_tracked - newest.n_absent if newest.n_absent is not None else newest.n_present
    return Now(share, change, last, present)


LEARNING_S = 120  # past this, a class with no share at all is hidden by k, not still learning


def learning(points: list[ClassPoint]) -> bool:
    """True while nobody's screen direction is learned yet: the first seconds of a live class,
    when no second has an on-screen share (blank charts said nothing about why)."""
    return bool(points) and points[-1].second <= LEARNING_S and all(p.on_screen_share is None for p in points)
