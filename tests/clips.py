"""Real clips as frames, for tests and benchmarks that need a whole (short) clip in memory or a
longer recording made from one. The product itself streams frames and never does this."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def read_frames(path, limit: int | None = None) -> tuple[list[np.ndarray], float]:
    """The clip's frames (at most `limit`) and its frame rate."""
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    frames = []
    while limit is None or len(frames) < limit:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames, fps


# Real face clips of the shared data set (under videos/) that gallery tests and benchmarks tile.
FACE_CLIPS = (
    "pyfeat/single_face.mp4",
    "liveportrait/d9.mp4",
    "pyfeat/WolfgangLanger_Pexels.mp4",
    "grid/brbk7n.mpg",
    "grid/lbax4n.mpg",
    "grid/lbbc2a.mpg",
    "grid/lwbsza.mpg",
    "grid/sbwe5n.mpg",
)


def read_looped(path, n: int, step: int = 1) -> list[np.ndarray]:
    """n frames (every `step`-th), looping the clip when it is shorter."""
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    i = 0
    while len(frames) < n:
        ok, img = cap.read()
        if not ok:
            if i == 0:  # not one frame: unreadable, looping would never end
                raise RuntimeError(f"cannot read {path}")
            cap.release()
            cap = cv2.VideoCapture(str(path))
            continue
        if i % step == 0:
            frames.append(img)
        i += 1
    cap.release()
    return frames


def write_repeated(clip, times: int, out: Path) -> Path:
    """`clip` played `times` times in a row, re-encoded (mp4v) at its own size and rate."""
    frames, fps = read_frames(clip)
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for _ in range(times):
        for img in frames:
            writer.write(img)
    writer.release()
    return out


# Zoom-like gallery recordings ------------------------------------------------------------------
# Zoom draws tiles of 16:9 on a near-black canvas, a few pixels apart, the block centred and a
# last row that is not full centred too; a participant without video is a plain grey tile with
# their name. These builders draw that from the real clips, with the truth known per frame.
ZOOM_CANVAS = 26  # Zoom's gallery background, #1a1a1a
# A camera-off tile is drawn by the product's own demo drawing (engagement.app.demo.camera_off_tile).
ZOOM_GAP = 6  # pixels between tiles


def zoom_grid(count: int) -> tuple[int, int]:
    """Zoom's columns x rows for `count` participants (9 -> 3x3, 10 -> 4x3, 25 -> 5x5)."""
    cols = int(np.ceil(np.sqrt(count)))
    return cols, int(np.ceil(count / cols))


def zoom_tiles(count: int, size: tuple[int, int]) -> list[tuple[int, int, int, int]]:
    """The tile rectangles (x0, y0, x1, y1) Zoom would draw for `count` participants."""
    width, height = size
    cols, rows = zoom_grid(count)
    tile_w = min((width - ZOOM_GAP * (cols + 1)) / cols, (height - ZOOM_GAP * (rows + 1)) / rows * 16 / 9)
    tile_h = tile_w * 9 / 16
    top = (height - rows * tile_h - (rows - 1) * ZOOM_GAP) / 2
    rects = []
    for r in range(rows):
        in_row = min(cols, count - r * cols)
        left = (width - in_row * tile_w - (in_row - 1) * ZOOM_GAP) / 2
        for c in range(in_row):
            x0, y0 = left + c * (tile_w + ZOOM_GAP), top + r * (tile_h + ZOOM_GAP)
            rects.append((int(x0), int(y0), int(x0 + tile_w), int(y0 + tile_h)))
    return rects


def _place(canvas: np.ndarray, rect: tuple[int, int, int, int], image: np.ndarray) -> None:
    """Draw `image` letterboxed (on the canvas colour) into `rect`."""
    x0, y0, x1, y1 = rect
    w, h = x1 - x0, y1 - y0
    scale = min(w / image.shape[1], h / image.shape[0])
    nw, nh = max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale))
    ox, oy = x0 + (w - nw) // 2, y0 + (h - nh) // 2
    canvas[oy : oy + nh, ox : ox + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)


def zoom_frame(images: list[np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """One gallery frame: each image letterboxed (on the canvas colour) into its tile."""
    width, height = size
    canvas = np.full((height, width, 3), ZOOM_CANVAS, np.uint8)
    for rect, image in zip(zoom_tiles(len(images), size), images):
        _place(canvas, rect, image)
    return canvas


def zoom_filmstrip_frame(large: np.ndarray, strip: list[np.ndarray], size: tuple[int, int], *,
                         side: str = "top") -> np.ndarray:  # fmt: skip
    """Speaker view (`top`: a strip of small tiles above the speaker) or a shared screen
    (`right`: the screen, a strip of smaller tiles beside it), as Zoom draws them."""
    width, height = size
    canvas = np.full((height, width, 3), ZOOM_CANVAS, np.uint8)
    n = len(strip)
    if side == "top":
        th = height // 6
        tw = th * 16 // 9
        left = (width - n * tw - (n - 1) * ZOOM_GAP) // 2
        rects = [(left + i * (tw + ZOOM_GAP), ZOOM_GAP, left + i * (tw + ZOOM_GAP) + tw, ZOOM_GAP + th) for i in range(n)]
        large_rect = (0, 2 * ZOOM_GAP + th, width, height - ZOOM_GAP)
    else:
        tw = width // 8
        th = tw * 9 // 16
        x0, top = width - tw - ZOOM_GAP, (height - n * th - (n - 1) * ZOOM_GAP) // 2
        rects = [(x0, top + i * (th + ZOOM_GAP), x0 + tw, top + i * (th + ZOOM_GAP) + th) for i in range(n)]
        large_rect = (ZOOM_GAP, ZOOM_GAP, x0 - 2 * ZOOM_GAP, height - ZOOM_GAP)
    _place(canvas, large_rect, large)
    for rect, image in zip(rects, strip):
        _place(canvas, rect, image)
    return canvas


def shared_slide(size: tuple[int, int] = (1280, 720)) -> np.ndarray:
    """A shared screen: a white slide with a title and a few lines of text (no face)."""
    slide = np.full((size[1], size[0], 3), 250, np.uint8)
    cv2.putText(slide, "Materi Pelatihan", (60, 120), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (40, 40, 40), 4, cv2.LINE_AA)
    for i in range(5):
        cv2.putText(slide, f"- Poin pembahasan {i + 1}", (80, 230 + 80 * i), cv2.FONT_HERSHEY_SIMPLEX, 1.2,
                    (60, 60, 60), 2, cv2.LINE_AA)
    return slide


# Name labels -----------------------------------------------------------------------------------
# Zoom prints a participant's display name bottom-left in white on a dark translucent box; Meet
# prints it bottom-left in white with a soft shadow and no box. Both use a sans font whose size
# follows the screen, not the tile: about 1/60 of the frame's height.
LABEL_FONT = Path(cv2.__file__).parent / "qt" / "fonts" / "DejaVuSans.ttf"


def draw_name_label(canvas: np.ndarray, rect: tuple[int, int, int, int], name: str, style: str = "zoom") -> None:
    """Draw `name` into the tile `rect` of `canvas` (in place), as Zoom or Meet draws it."""
    from PIL import Image, ImageDraw, ImageFont

    x0, y0, x1, y1 = rect
    px = max(9, round(canvas.shape[0] / 60))
    font = ImageFont.truetype(str(LABEL_FONT), px)
    left, top, right, bottom = font.getbbox(name)
    pad = max(3, px // 3)
    bx0, by1 = x0 + pad, y1 - pad
    bx1, by0 = bx0 + (right - left) + 2 * pad, by1 - (bottom - top) - 2 * pad
    if style == "zoom":
        region = canvas[by0:by1, bx0:bx1]
        region[:] = (region.astype(np.float32) * 0.35).astype(np.uint8)  # black at 65 %
    image = Image.fromarray(canvas[by0:by1, bx0:bx1][:, :, ::-1].copy())
    draw = ImageDraw.Draw(image)
    at = (pad - left, pad - top)
    if style == "meet":
        draw.text((at[0] + 1, at[1] + 1), name, font=font, fill=(20, 20, 20))
    draw.text(at, name, font=font, fill=(255, 255, 255))
    canvas[by0:by1, bx0:bx1] = np.asarray(image)[:, :, ::-1]


def labelled_frame(images: list[np.ndarray], names: list[str], size: tuple[int, int], style: str = "zoom") -> np.ndarray:
    """`zoom_frame` with each tile's name drawn in it the way `style` (zoom, meet) draws it."""
    canvas = zoom_frame(images, size)
    for rect, name in zip(zoom_tiles(len(images), size), names):
        draw_name_label(canvas, rect, name, style)
    return canvas


# Display names as Indonesian participants set them: given names, initials, titles, and the
# suffixes the apps add.
INDONESIAN_NAMES = (
    "Budi S.", "Siti Nurhaliza", "Agus Salim (Host)", "Dewi Lestari", "Rina Wulandari (Saya)",
    "Muhammad Rizky", "Ni Made Ayu", "I Gede Putra", "Yohanes Manurung", "Fitri Handayani",
    "Bambang Wijaya", "Sri Rahayu", "Andi Pratama", "Nur Aini", "Hendra Gunawan",
    "Putu Ayu Kartika", "Ahmad Fauzi", "Lestari Ningsih", "Teguh Santoso", "Wahyu Hidayat",
    "Ratna Sari Dewi", "Dr. Eko Prasetyo", "Yuliana Simanjuntak", "Rudi Hartono", "Intan Permata",
)
