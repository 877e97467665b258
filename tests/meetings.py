"""Meeting recordings with known truth, written from the shared clips (tests and benchmarks).

A script says, for each second, which participant sits in which tile and whether their camera
is on; `write_meeting` draws it Zoom-like (`clips.zoom_frame`) into a small mp4 and returns the
truth: per second, how many participants show their face.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from clips import FACE_CLIPS, camera_off_tile, read_looped, zoom_frame
from conftest import require_shared

# A second's tiles: (participant, camera on) in reading order.
Script = Callable[[int], list[tuple[int, bool]]]


def feeds(n_participants: int, n_frames: int) -> list[list[np.ndarray]]:
    """Each participant's video: the real clips, mirrored and shifted in time past the eighth."""
    out = []
    for p in range(n_participants):
        k = p % len(FACE_CLIPS)
        frames = read_looped(require_shared(f"videos/{FACE_CLIPS[k]}"), n_frames + 3 * p, step=2)[3 * p :]
        out.append([cv2.flip(f, 1) for f in frames] if p >= len(FACE_CLIPS) else frames)
    return out


def write_meeting(path: Path, script: Script, n_participants: int, seconds: int, size=(1280, 720), fps: int = 10):
    """Write the recording; returns [participants with their face on screen, per second]."""
    n = seconds * fps
    video = feeds(n_participants, n)
    off = [camera_off_tile(f"Peserta {p + 1}") for p in range(n_participants)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(n):
        tiles = script(i // fps)
        writer.write(zoom_frame([video[p][i] if on else off[p] for p, on in tiles], size))
    writer.release()
    return [sum(on for _, on in script(s)) for s in range(seconds)]
