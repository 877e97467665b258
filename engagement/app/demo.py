"""The offline demo: a short class recorded in gallery view, made from one public-domain photo.

The face is scikit-image's `astronaut.png` (NASA portrait of Eileen Collins, public domain),
which ships inside the scikit-image wheel, so the demo needs no download. Nine participants
("Peserta 1" to "Peserta 9") sit in a 3x3 gallery drawn the way meeting software draws one (a
dark canvas, tiles a few pixels apart, a name in each tile, DEMO on every tile). Each tile is the
photo mirrored, tinted and shifted, and moved by a script (`DEMO_SCRIPT`): heads turn aside, a
head tips down to a phone, eyes close for a few seconds, one camera is switched off. During the third agenda item most of the
class looks away for a while, so the dashboard has a drop, an alert and a suggestion to show.

The recording is an ordinary mp4 analysed by the same `engagement analyze` path as a real
gallery recording: the layout is found from the frames, one landmarker per tile.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from engagement.app.agenda import AgendaRow, replace_agenda
from engagement.core.config import data_dir
from engagement.core.repositories.runs import session_id
from engagement.core.store import Store

DEMO_SESSION = "demo"
# The demo has a database of its own: its public demo/demo account never sits beside real data.
DEMO_DB = "demo.sqlite"
# The recording's file name carries its version: a recording cached by an older demo is redrawn.
DEMO_VIDEO = "demo-class-v3.mp4"
DEMO_SIZE = (1280, 720)
DEMO_FPS = 6  # analysed at 3 fps (the gallery rate); 6 keeps the file small and the motion smooth
DEMO_SECONDS = 150
PARTICIPANTS = 9
CANVAS = 26  # the gallery's near-black background
CAMERA_OFF = 48  # a camera-off tile: a plain grey a little lighter than the canvas
GAP = 6  # pixels between tiles
FACE_CROP = (90, 0, 390, 225)  # x0, y0, x1, y1 of the head and shoulders in astronaut.png
# The eyes in astronaut.png (centre x, y, half width, half height; found by the landmarker), painted
# over with skin and a lash line for closed eyes: the landmarker's eye openness (EAR) read 0.03-0.05
# instead of 0.33.
EYES = ((205, 101, 12, 6), (246, 104, 12, 6))
FACE_CENTRE = (238.0, 112.0)  # the middle of the face in astronaut.png (between the eyes and the mouth)
FACE_RADIUS = 62.0  # half the face's width there, px

# The agenda (start second, title); the drop is planned during the third item.
DEMO_AGENDA: tuple[tuple[int, str], ...] = (
    (0, "Pembukaan dan perkenalan"),
    (30, "Paparan: Pelayanan Publik Digital"),
    (60, "Paparan: Regulasi dan Studi Kasus"),
    (135, "Tanya jawab dan penutup"),
)
DROP_ITEM = 2

# Per participant (0-based): (start s, end s, what) for each time they are not looking at the
# screen. "aside": the head turned aside; "eyes": eyes closed; "phone": the head tipped down to a phone;
# "off": the camera switched off. A look away lasts under half the time the participant has
# already looked at the screen: the screen direction is each participant's own median direction,
# and a look away longer than the looks at the screen before it would become the screen.
DEMO_SCRIPT: dict[int, tuple[tuple[float, float, str], ...]] = {
    0: ((62, 108, "aside"),),
    1: ((12, 16, "aside"), (64, 110, "phone")),
    2: ((68, 114, "aside"),),
    3: ((74, 120, "phone"),),
    4: ((80, 126, "aside"),),
    5: ((86, 130, "phone"),),
    6: ((20, 28, "eyes"), (100, 130, "aside")),
    7: ((136, 141, "phone"),),
    8: ((40, DEMO_SECONDS, "off"),),
}
# Per participant: mirrored, tint (B, G, R gains), shift (x, y px) and zoom of the photo.
_MIRROR = (False, True, False, True, True, False, True, False, False)
_TINT = ((1.0, 1.0, 1.0), (0.9, 0.95, 1.1), (1.1, 1.0, 0.9), (0.85, 0.9, 1.0), (1.0, 1.05, 1.15),
         (1.1, 1.1, 1.0), (0.95, 0.85, 0.95), (1.05, 0.95, 0.85), (0.9, 1.0, 1.0))
_SHIFT = ((0, 0), (-20, 6), (18, -4), (-10, 10), (14, 4), (-24, -6), (8, 8), (22, 2), (0, -8))
_ZOOM = (1.0, 0.92, 1.06, 0.96, 1.1, 0.9, 1.02, 0.94, 1.0)
_POSE = {"aside": (65.0, 0.0), "phone": (55.0, 40.0)}  # turn, tip (deg of the cylinder: `_turn`)
_RAMP_S = 1.0  # a head turns over a second, not in one frame


def tile_rects(count: int = PARTICIPANTS, size: tuple[int, int] = DEMO_SIZE) -> list[tuple[int, int, int, int]]:
    """The tile rectangles (x0, y0, x1, y1): 16:9 tiles in a centred square grid."""
    width, height = size
    cols = math.ceil(math.sqrt(count))
    rows = math.ceil(count / cols)
    tile_w = min((width - GAP * (cols + 1)) / cols, (height - GAP * (rows + 1)) / rows * 16 / 9)
    tile_h = tile_w * 9 / 16
    top = (height - rows * tile_h - (rows - 1) * GAP) / 2
    left = (width - cols * tile_w - (cols - 1) * GAP) / 2
    rects = []
    for i in range(count):
        x0, y0 = left + (i % cols) * (tile_w + GAP), top + (i // cols) * (tile_h + GAP)
        rects.append((int(x0), int(y0), int(x0 + tile_w), int(y0 + tile_h)))
    return rects


def state_at(participant: int, t_s: float) -> tuple[str, float]:
    """What the participant does at `t_s` ("screen", "aside", "phone", "eyes", "off") and how far
    into it the head has turned (0..1)."""
    for start, end, what in DEMO_SCRIPT[participant]:
        if start <= t_s < end:
            return what, min(1.0, (t_s - start) / _RAMP_S, (end - t_s) / _RAMP_S)
    return "screen", 0.0


def _face_image() -> np.ndarray:
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def _closed_eyes(face: np.ndarray) -> np.ndarray:
    """The photo with its eyes closed (`EYES`)."""
    closed = face.copy()
    for cx, cy, a, b in EYES:
        skin = face[cy + b + 6, cx - 3 : cx + 4].mean(axis=0)  # the cheek just below the eye
        cv2.ellipse(closed, (cx, cy), (a + 2, b + 3), 0, 0, 360, skin.tolist(), -1, cv2.LINE_AA)
        cv2.ellipse(closed, (cx, cy + 1), (a, 3), 0, 20, 160, (40, 35, 40), 1, cv2.LINE_AA)
    return closed


def demo_faces() -> tuple[np.ndarray, np.ndarray]:
    """The photo (BGR) with its eyes open and closed."""
    face = _face_image()
    return face, _closed_eyes(face)


def _turn(tile: np.ndarray, centre: tuple[float, float], radius: float, yaw_deg: float, pitch_deg: float,
          backdrop: tuple[int, int, int]) -> np.ndarray:
    """The head turned by yaw and tipped by pitch: the face is read as lying on a cylinder of
    `radius` around `centre` and the cylinder turned, so the nose and eyes move towards one side
    while the outline stays (a flat photo turned as a card keeps a frontal face: the landmarker
    read 42 deg of card turn as 3 deg of head yaw)."""
    h, w = tile.shape[:2]
    xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))

    def along(coord: np.ndarray, c: float, angle: float) -> np.ndarray:
        u = np.clip((coord - c) / radius, -0.999, 0.999)
        src = radius * np.sin(np.clip(np.arcsin(u) - math.radians(angle), -math.pi / 2, math.pi / 2))
        weight = np.clip(1.6 - np.abs(coord - c) / radius, 0.0, 1.0)  # fades out beyond the head
        return (coord + weight * (c + src - coord)).astype(np.float32)

    map_x = along(xs, centre[0], yaw_deg)
    map_y = along(ys, centre[1], pitch_deg)
    return cv2.remap(tile, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=backdrop)


def _label(tile: np.ndarray, text: str, corner: str) -> None:
    scale = tile.shape[1] / 640
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = (6, th + 8) if corner == "top" else (6, tile.shape[0] - 8)
    cv2.rectangle(tile, (x - 4, y - th - 4), (x + tw + 4, y + 4), (0, 0, 0), -1)
    cv2.putText(tile, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def camera_off_tile(name: str, size: tuple[int, int] = (320, 180)) -> np.ndarray:
    """What a meeting app shows for a participant without video: their name on a plain tile."""
    tile = np.full((size[1], size[0], 3), CAMERA_OFF, np.uint8)
    scale = size[0] / 320
    (tw, th), _ = cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    cv2.putText(tile, name, ((size[0] - tw) // 2, (size[1] + th) // 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (235, 235, 235), 2, cv2.LINE_AA)
    return tile


def _tile(faces: tuple[np.ndarray, np.ndarray], participant: int, t_s: float, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    name = f"Peserta {participant + 1}"
    what, amount = state_at(participant, t_s)
    if what == "off":
        tile = camera_off_tile(name, size)
    else:
        face = faces[1] if what == "eyes" else faces[0]
        x0, y0, x1, y1 = FACE_CROP
        sway = 2 * math.pi * (t_s + 1.3 * participant)
        scale = h / (y1 - y0) * 0.95 * _ZOOM[participant] * (1.0 + 0.02 * math.sin(sway / 9.0))
        dx = _SHIFT[participant][0] + 6 * math.sin(sway / 7.0)
        dy = _SHIFT[participant][1] + 3 * math.sin(sway / 5.0) + 0.04 * h
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        place = np.array([[scale, 0, w / 2 - cx * scale + dx], [0, scale, h / 2 - cy * scale + dy], [0, 0, 1]])
        if _MIRROR[participant]:  # read the photo mirrored (x -> width - 1 - x)
            place = place @ np.array([[-1, 0, face.shape[1] - 1], [0, 1, 0], [0, 0, 1]])
        backdrop = (70 + 9 * participant, 60 + 5 * (participant % 3), 55 + 7 * (participant % 4))
        tile = cv2.warpAffine(face, place[:2], (w, h), borderMode=cv2.BORDER_CONSTANT, borderValue=backdrop)
        if what in _POSE:
            centre = tuple(place[:2] @ np.array([*FACE_CENTRE, 1.0]))
            yaw, pitch = _POSE[what]
            # The photo's face is turned a little already: turned further the same way the
            # landmarker still finds it, so a mirrored copy turns the other way.
            yaw = -yaw if _MIRROR[participant] else yaw
            tile = _turn(tile, centre, FACE_RADIUS * scale, yaw * amount, pitch * amount, backdrop)
        tile = np.clip(tile * np.array(_TINT[participant]), 0, 255).astype(np.uint8)
    _label(tile, "DEMO", "top")
    _label(tile, name, "bottom")
    return tile


def demo_frame(faces: tuple[np.ndarray, np.ndarray], t_s: float) -> np.ndarray:
    """One frame of the demo recording at `t_s` seconds."""
    canvas = np.full((DEMO_SIZE[1], DEMO_SIZE[0], 3), CANVAS, np.uint8)
    for participant, (x0, y0, x1, y1) in enumerate(tile_rects()):
        canvas[y0:y1, x0:x1] = _tile(faces, participant, t_s, (x1 - x0, y1 - y0))
    return canvas


def demo_video_path() -> Path:
    return data_dir() / "demo" / DEMO_VIDEO


def demo_db_url() -> str:
    """SQLAlchemy URL of the demo's own database in the data directory."""
    return f"sqlite:///{data_dir() / DEMO_DB}"


def make_demo_video(path: Path, seconds: int = DEMO_SECONDS) -> Path:
    """Write the demo recording (streamed frame by frame) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.mp4")  # an interrupted write never passes for the recording
    writer = cv2.VideoWriter(str(partial), cv2.VideoWriter_fourcc(*"mp4v"), DEMO_FPS, DEMO_SIZE)
    if not writer.isOpened():
        raise OSError(f"cannot write the demo video to {path}")
    faces = demo_faces()
    try:
        for i in range(seconds * DEMO_FPS):
            writer.write(demo_frame(faces, i / DEMO_FPS))
    finally:
        writer.release()
    partial.replace(path)
    return path


def write_demo_agenda(store: Store, session: str) -> None:
    """The demo session's agenda (`DEMO_AGENDA`), replacing any earlier one."""
    replace_agenda(store, session_id(store, session), [AgendaRow(start, title) for start, title in DEMO_AGENDA])
