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

from engagement.app.demo import camera_off_tile

from clips import FACE_CLIPS, labelled_frame, zoom_frame
from conftest import require_shared

# A second's tiles: (participant, camera on) in reading order.
Script = Callable[[int], list[tuple[int, bool]]]


class Feed:
    """One participant's video, frame by frame, looping: a real clip (every 2nd frame: 12-15 fps
    content), mirrored past the eighth participant and shifted in time, so that no two look alike.
    Read as it is drawn, so a long 5x5 recording never holds its clips in memory."""

    def __init__(self, participant: int):
        self.path = str(require_shared(f"videos/{FACE_CLIPS[participant % len(FACE_CLIPS)]}"))
        self.mirror = participant >= len(FACE_CLIPS)
        self.cap = cv2.VideoCapture(self.path)
        for _ in range(6 * participant):
            self._read()

    def _read(self) -> np.ndarray:
        ok, image = self.cap.read()
        if not ok:
            self.cap.release()
            self.cap = cv2.VideoCapture(self.path)
            ok, image = self.cap.read()
            if not ok:
                raise RuntimeError(f"cannot read {self.path}")
        return image

    def next(self) -> np.ndarray:
        self._read()  # every 2nd frame
        image = self._read()
        return cv2.flip(image, 1) if self.mirror else image


def write_meeting(path: Path, script: Script, n_participants: int, seconds: int, size=(1280, 720), fps: int = 10,
                  draw=zoom_frame, names: list[str] | None = None, style: str = "zoom"):  # fmt: skip
    """Write the recording (`draw`: the tiles' images and the size -> a frame; Zoom's gallery by
    default; `names`: each participant's display name, drawn in their tile as `style` (zoom,
    meet) draws it); returns [participants with their face on screen, per second]."""
    video = [Feed(p) for p in range(n_participants)]
    off = [camera_off_tile(names[p] if names else f"Peserta {p + 1}") for p in range(n_participants)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(seconds * fps):
        tiles = script(i // fps)
        frames = [feed.next() for feed in video]  # every feed runs on, shown or not
        images = [frames[p] if on else off[p] for p, on in tiles]
        if names:
            writer.write(labelled_frame(images, [names[p] for p, _ in tiles], size, style))
        else:
            writer.write(draw(images, size))
    writer.release()
    for feed in video:
        feed.cap.release()
    return [sum(on for _, on in script(s)) for s in range(seconds)]
