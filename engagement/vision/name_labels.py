"""The name label a meeting app prints in each tile, read from the label strip only.

Zoom draws a participant's display name bottom-left in white on a dark translucent box, Meet
bottom-left in white without a box, camera on or off. Only that strip (the tile's bottom-left
corner, `label_strip`) is cut out and read; the face is never looked at for identity.

The reader is Debian's Tesseract (`tesseract-ocr` with `tesseract-ocr-ind`, installed from the
distribution; nothing is downloaded at run time), run once per batch of strips: the strips to
read in one frame are stacked into one image, so a 5x5 gallery whose tiles all cut costs one
process start, not 25. Chosen over an ONNX OCR wheel (rapidocr-onnxruntime) because that wheel
pulls `opencv-python` beside mediapipe's `opencv-contrib-python` (two packages fighting over
one `cv2`) and does not install on Python 3.13; measured figures are in
docs/privacy.md ("Name labels").

What leaves this module is the text of a label, which the caller turns into a keyed pseudonym
at once (`engagement.vision.name_ids`); nothing here stores, logs or prints it.
"""

from __future__ import annotations

import difflib
import os
import re
import shutil
import subprocess
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from engagement.core.errors import ConfigError

# Suffixes meeting apps append to a display name (Zoom, Meet, Teams; English and Bahasa
# Indonesia): a name is matched without them, so "Budi S. (Host)" is the roster's "Budi S.".
_SUFFIXES = re.compile(
    r"\s*[\(\[]\s*(host|co-host|cohost|tuan rumah|pembawa acara|saya|me|you|anda|guest|tamu|"
    r"presenter|penyaji|organizer|penyelenggara|external|eksternal)\s*[\)\]]\s*$",
    re.IGNORECASE,
)
# Characters a display name keeps after normalising; OCR noise (|, _, ~) is dropped.
_NAME_CHARS = re.compile(r"[^\w .,'\-()]", re.UNICODE)


def normalise_display_name(text: str) -> str:
    """The form a display name is hashed in: case, spaces, unicode forms and the apps' role
    suffixes ("(Host)", "(Saya)") removed. Empty when nothing name-like is left."""
    text = unicodedata.normalize("NFKC", str(text))
    text = _NAME_CHARS.sub(" ", text)
    # A word without a letter or digit ("." or "-" alone) is OCR noise or decoration, not a name.
    text = " ".join(w for w in text.split() if any(c.isalnum() for c in w))
    while True:
        stripped = _SUFFIXES.sub("", text)
        if stripped == text:
            break
        text = stripped
    return _misread_suffix(" ".join(text.split()).casefold())[:320]


_ROLE_WORDS = tuple(_SUFFIXES.pattern.split("(", 2)[2].split(")")[0].split("|"))
_LAST_GROUP = re.compile(r"\s*[\(\[]\s*([a-z -]{2,16}?)\s*[\)\]]?\s*$")


def _misread_suffix(text: str) -> str:
    """`text` without a last bracketed word that is a role suffix read with a letter wrong
    ("(Hobt)" for "(Host)"): only role words go, so "Budi (Kemenkeu)" keeps its bracket."""
    found = _LAST_GROUP.search(text)
    if found is None or found.start() == 0:
        return text
    word = found.group(1)
    if any(difflib.SequenceMatcher(None, word, role).ratio() >= 0.75 for role in _ROLE_WORDS):
        return text[: found.start()].strip()
    return text


@dataclass(frozen=True)
class LabelOptions:
    """Where the label strip is and how it is read. Every default says why."""

    # Share of the tile's (width, height), from its bottom-left corner, that holds the label.
    # Height: Zoom's and Meet's labels sit within the bottom 15 % of a tile at every gallery
    # size drawn (3x3-5x5 at 720p and 1080p); 22 % leaves room for a name drawn a little higher.
    # Width: a long name with "(Host)" fills about two thirds of a 5x5 tile; the right side
    # holds the apps' mute icons, never the name.
    strip: tuple[float, float] = (0.8, 0.22)
    # Text is upscaled to about this many pixels high before reading: Tesseract reads 20-40 px
    # text best, and a 5x5 gallery at 720p prints names 9-11 px high.
    text_px: int = 32
    # Grey level (0-255) above which a pixel counts as the label's white text. Zoom and Meet
    # print names in pure white (255, anti-aliased); faces and rooms rarely reach it.
    white: int = 230
    # Indonesian alone: the names are Latin letters, and loading a second language (eng) made
    # every call 4-6x slower (0.05 s -> 0.2-0.35 s a call, measured here) for 2 more of 200
    # generated labels resolved right (184 against 182).
    languages: str = "ind"


def label_strip(tile: np.ndarray, options: LabelOptions = LabelOptions()) -> np.ndarray:
    """The bottom-left corner of a tile where the app prints the name (a view, not a copy)."""
    h, w = tile.shape[:2]
    share_w, share_h = options.strip
    return tile[h - max(8, int(round(h * share_h))) :, : max(8, int(round(w * share_w)))]


def _text_line(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(y0, y1, x0, x1) of the label's line of white text in a strip's mask. The name starts at
    the tile's left edge, so the line is the band of rows with the most white in the strip's
    left fifth (a white shirt further right does not count); it runs from there to the right
    until a gap wider than the line is high (what lies beyond is the video, not the name)."""
    left = mask[:, : max(4, mask.shape[1] // 5)].sum(axis=1)
    bands: list[list[int]] = []  # [white pixels, first row, row after the last]
    for y in np.flatnonzero(left).tolist():
        if bands and y - bands[-1][2] <= 2:  # thin strokes leave a row or two blank inside a line
            bands[-1][0] += int(left[y])
            bands[-1][2] = y + 1
        else:
            bands.append([int(left[y]), y, y + 1])
    if not bands:
        return None
    _, y0, y1 = max(bands)
    line_h = y1 - y0
    cols = np.flatnonzero(mask[y0:y1].any(axis=0))
    if line_h < 5 or cols.size == 0 or cols[0] > mask.shape[1] // 5:
        return None
    x1 = cols[0]
    for c in cols:
        if c - x1 > 2 * line_h:
            break
        x1 = c
    return int(y0), int(y1), int(cols[0]), int(x1 + 1)


def _binarise(strip: np.ndarray, options: LabelOptions) -> np.ndarray | None:
    """The label's text line, black on white and upscaled: what Tesseract reads best. White
    text is kept; the dark box, the video and the text's shadow all become background. None
    when the strip holds no line of white text."""
    grey = cv2.cvtColor(strip, cv2.COLOR_BGR2GRAY) if strip.ndim == 3 else strip
    found = _text_line(grey >= options.white)
    if found is None:
        return None
    y0, y1, x0, x1 = found
    pad = max(2, (y1 - y0) // 3)
    line = grey[max(0, y0 - pad) : y1 + pad, max(0, x0 - pad) : x1 + pad]
    scale = max(1.0, options.text_px / (y1 - y0))
    line = cv2.resize(line, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    # Soft ink: anti-aliased strokes of 10 px text are grey at their edges, and a hard threshold
    # thins them into other letters (d -> c, n -> r); a ramp keeps their shape for Tesseract.
    ink = np.clip((line.astype(np.float32) - (options.white - 90)) / 90.0, 0.0, 1.0)
    return (255 - 255 * ink).astype(np.uint8)


class TesseractReader:
    """Reads label strips with the `tesseract` program, many strips per call."""

    def __init__(self, options: LabelOptions = LabelOptions(), program: str | None = None):
        self.options = options
        self.program = program or shutil.which("tesseract")
        if self.program is None:
            raise ConfigError(
                "reading name labels needs Tesseract: apt-get install tesseract-ocr tesseract-ocr-ind"
            )

    def read(self, strips: Sequence[np.ndarray]) -> list[str]:
        """The text of each strip ('' where nothing was read), in order."""
        if not strips:
            return []
        found = [_binarise(s, self.options) for s in strips]
        images = [img for img in found if img is not None]
        if not images:
            return [""] * len(strips)
        gap = max(img.shape[0] for img in images)  # white between strips: lines never merge
        width = max(img.shape[1] for img in images) + 2 * gap
        spans, y = [], gap
        canvas_h = sum(img.shape[0] + gap for img in images) + gap
        canvas = np.full((canvas_h, width), 255, np.uint8)
        for img in images:
            canvas[y : y + img.shape[0], gap : gap + img.shape[1]] = img
            spans.append((y, y + img.shape[0]))
            y += img.shape[0] + gap
        words = self._words(canvas)
        texts: list[list[tuple[int, str]]] = [[] for _ in images]
        for top, height, left, word in words:
            centre = top + height / 2
            for i, (a, b) in enumerate(spans):
                if a - gap / 2 <= centre < b + gap / 2:
                    texts[i].append((left, word))
                    break
        read = iter(" ".join(w for _, w in sorted(t)) for t in texts)
        return [next(read) if img is not None else "" for img in found]

    def _words(self, image: np.ndarray) -> list[tuple[int, int, int, str]]:
        ok, png = cv2.imencode(".png", image)
        if not ok:
            return []
        # --psm 6: one uniform block of text lines; TSV gives each word's box, so a word is put
        # back into its own strip by where it was found, whatever lines Tesseract made.
        args = [self.program, "stdin", "stdout", "--psm", "6", "-l", self.options.languages, "tsv"]
        # One thread: Tesseract's OpenMP threads only spin against the landmarkers for one line
        # of text (a call took 0.15 s with them, 0.05 s without, on the two cores here).
        env = {**os.environ, "OMP_THREAD_LIMIT": "1"}
        done = subprocess.run(args, input=png.tobytes(), capture_output=True, timeout=60, check=False, env=env)
        if done.returncode != 0:
            raise ConfigError(f"tesseract failed reading name labels: {done.stderr.decode(errors='replace')[:200]}")
        out = []
        for line in done.stdout.decode("utf-8", errors="replace").splitlines()[1:]:
            cols = line.split("\t")
            if len(cols) < 12 or not cols[11].strip():
                continue
            try:
                conf = float(cols[10])
            except ValueError:
                continue
            if conf < 0:  # -1: a block or line row, not a word
                continue
            out.append((int(cols[7]), int(cols[9]), int(cols[6]), cols[11].strip()))
        return out
