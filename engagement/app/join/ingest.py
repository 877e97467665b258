"""What a participant's browser may send, checked field by field before anything is stored.

The browser sends, once a second, the per-frame numbers it measured (`FaceNumbers`, vision/
signals.py) and nothing else: a field that is not expected (landmarks, an image, blendshapes) is
refused by name, so a page changed to send more cannot get it stored. Numbers must be finite and
in range, frame times must increase and may not run ahead of the stream's own clock.

The numbers are the participant's own measurements: the server can check their form, their range
and their timing, not that a camera produced them (docs/serve.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from engagement.vision.browser import NumbersFrame
from engagement.vision.signals import FaceNumbers

MAX_BODY_BYTES = 64 * 1024
MAX_FRAMES = 90  # a batch a second at up to 60 frames a second, with room for a late batch
MAX_STREAM_MS = 24 * 3600 * 1000.0
MAX_FRAME_SIDE = 7680  # 8K: the vision stage's own limit on a frame
# Frame times may run this far ahead of the server's clock for the stream (ms): the browser
# starts its clock after the server does, so a true stream never runs ahead; the slack covers
# timer granularity, not a participant sending the future.
AHEAD_SLACK_MS = 2000.0

_PI = math.pi
# field -> (low, high): the range of each number. None (JSON null) is a number that could not be
# measured in that frame (NaN in Python), as the vision stage has them.
NUMBER_RANGES: dict[str, tuple[float, float]] = {
    "yaw": (-_PI, _PI), "pitch": (-_PI, _PI), "roll": (-_PI, _PI),
    "tz": (0.0, 10_000.0),
    # Head turn plus eye-in-head rotation (at most a quarter turn).
    "gaze_yaw": (-1.5 * _PI, 1.5 * _PI), "gaze_pitch": (-1.5 * _PI, 1.5 * _PI),
    "ear_l": (0.0, 2.0), "ear_r": (0.0, 2.0),
    "iod": (0.0, float(MAX_FRAME_SIDE)),
    "blur": (0.0, 1e7),  # variance of the Laplacian of a 96x96 grey image: below (8 * 255)^2
    "bright": (0.0, 255.0),
}  # fmt: skip
LIST_RANGES: dict[str, tuple[int, float, float]] = {
    "lids_l": (5, 0.0, 2.0), "lids_r": (5, 0.0, 2.0),
    "pivot": (3, -100_000.0, 100_000.0),
}  # fmt: skip
FACE_FIELDS = frozenset(NUMBER_RANGES) | frozenset(LIST_RANGES)
FRAME_FIELDS = frozenset({"t", "face"}) | FACE_FIELDS
BATCH_FIELDS = frozenset({"stream", "seq", "w", "h", "frames"})


class Refused(Exception):
    """A request refused: HTTP `status`, a stable `code` (the page translates it), a detail."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail
        self.audit: dict | None = None  # the audit entry's details where the refusal matters


@dataclass(frozen=True)
class Batch:
    stream: str
    seq: int
    size: tuple[int, int]
    frames: tuple[NumbersFrame, ...]


def load_json(body: bytes) -> dict:
    if len(body) > MAX_BODY_BYTES:
        raise Refused(413, "too_large", f"a request holds at most {MAX_BODY_BYTES} bytes, this one {len(body)}")
    try:
        data = json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, "malformed", f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise Refused(400, "malformed", "a JSON object was expected")
    return data


def _no_constant(name: str):
    raise ValueError(f"{name} is not a number this server takes")


def only_fields(data: dict, allowed: frozenset[str], where: str) -> None:
    """Refuse any field not in `allowed`, naming it: the server stores what it expects, nothing else."""
    extra = sorted(set(data) - allowed)
    if extra:
        raise Refused(400, "unexpected_field", f"{where}: field(s) not accepted: {', '.join(extra[:5])}")


def _integer(value, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise Refused(400, "out_of_range", f"{what} must be a whole number from {low} to {high}, got {value!r}")
    return value


def _number(value, what: str, low: float, high: float) -> float:
    """A finite number in [low, high]; None (not measured in this frame) becomes NaN."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Refused(400, "malformed", f"{what} must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or not low <= value <= high:
        raise Refused(400, "out_of_range", f"{what} must lie from {low:g} to {high:g}, got {value!r}")
    return float(value)


def _numbers(value, what: str, count: int, low: float, high: float) -> tuple[float, ...]:
    if not isinstance(value, list) or len(value) != count:
        raise Refused(400, "malformed", f"{what} must be a list of {count} numbers")
    return tuple(_number(v, f"{what}[{i}]", low, high) for i, v in enumerate(value))


def face_numbers(frame: dict, where: str) -> FaceNumbers:
    missing = sorted(FACE_FIELDS - set(frame))
    if missing:
        raise Refused(400, "malformed", f"{where}: missing field(s): {', '.join(missing)}")
    n = {k: _number(frame[k], f"{where}.{k}", *NUMBER_RANGES[k]) for k in NUMBER_RANGES}
    lists = {k: _numbers(frame[k], f"{where}.{k}", *LIST_RANGES[k]) for k in LIST_RANGES}
    return FaceNumbers(
        yaw=n["yaw"], pitch=n["pitch"], roll=n["roll"], tz=n["tz"], gaze_yaw=n["gaze_yaw"],
        gaze_pitch=n["gaze_pitch"], ear_left=n["ear_l"], ear_right=n["ear_r"], lids_left=lists["lids_l"],
        lids_right=lists["lids_r"], iod=n["iod"], blur=n["blur"], brightness=n["bright"], pivot=lists["pivot"],
    )  # fmt: skip


def parse_frame(frame, index: int, size: tuple[int, int]) -> NumbersFrame:
    where = f"frames[{index}]"
    if not isinstance(frame, dict):
        raise Refused(400, "malformed", f"{where} must be an object")
    only_fields(frame, FRAME_FIELDS, where)
    t_ms = _number(frame.get("t"), f"{where}.t", 0.0, MAX_STREAM_MS)
    if math.isnan(t_ms):
        raise Refused(400, "malformed", f"{where}.t is missing")
    face = frame.get("face")
    if not isinstance(face, bool):
        raise Refused(400, "malformed", f"{where}.face must be true or false")
    if not face:
        only_fields(frame, frozenset({"t", "face"}), f"{where} (no face)")
        return NumbersFrame(t_ms, index, None, size)
    return NumbersFrame(t_ms, index, face_numbers(frame, where), size)


def parse_batch(data: dict) -> Batch:
    """A second's frames, checked; times must increase within the batch (the stream checks them
    against earlier batches and its clock)."""
    only_fields(data, BATCH_FIELDS, "batch")
    stream = data.get("stream")
    if not isinstance(stream, str) or not 8 <= len(stream) <= 64:
        raise Refused(400, "malformed", "batch.stream must be the stream id that start returned")
    seq = _integer(data.get("seq"), "batch.seq", 0, 10**9)
    size = (_integer(data.get("w"), "batch.w", 16, MAX_FRAME_SIDE), _integer(data.get("h"), "batch.h", 16, MAX_FRAME_SIDE))
    frames = data.get("frames")
    if not isinstance(frames, list) or not 1 <= len(frames) <= MAX_FRAMES:
        raise Refused(400, "malformed", f"batch.frames must be a list of 1 to {MAX_FRAMES} frames")
    parsed = tuple(parse_frame(f, i, size) for i, f in enumerate(frames))
    for a, b in zip(parsed, parsed[1:]):
        if b.t_ms <= a.t_ms:
            raise Refused(400, "time_order", f"frame times must increase: {b.t_ms:g} ms after {a.t_ms:g} ms")
    return Batch(stream, seq, size, parsed)


def wire_frame(t_ms: float, n: FaceNumbers | None) -> dict:
    """One frame as the join page sends it (the inverse of `parse_frame`; NaN goes as null)."""
    if n is None:
        return {"t": t_ms, "face": False}
    number = lambda v: None if not math.isfinite(v) else float(v)  # noqa: E731 - a local shorthand
    return {
        "t": t_ms, "face": True, "yaw": number(n.yaw), "pitch": number(n.pitch), "roll": number(n.roll),
        "tz": number(n.tz), "gaze_yaw": number(n.gaze_yaw), "gaze_pitch": number(n.gaze_pitch),
        "ear_l": number(n.ear_left), "ear_r": number(n.ear_right), "lids_l": [number(v) for v in n.lids_left],
        "lids_r": [number(v) for v in n.lids_right], "iod": number(n.iod), "blur": number(n.blur),
        "bright": number(n.brightness), "pivot": [number(v) for v in n.pivot],
    }  # fmt: skip
