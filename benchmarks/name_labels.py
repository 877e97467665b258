"""What reading the tiles' name labels costs, as a share of the gallery analysis it rides on.

    python benchmarks/name_labels.py [--seconds 12] [--reorder-every 2] [--sizes 3x3@720,5x5@1080]
                                     [--reread S]

For each gallery a Zoom-like recording is generated from the shared clips (tests/meetings.py)
with every participant's display name drawn in their tile and the tiles shuffled every
`--reorder-every` seconds (each shuffle cuts every tile: the labels are all read again). The
meeting vision stage then runs over it at the gallery's sample rate, reading names through the
keyed hash as a run does. Printed per gallery: the stage's wall time, the time spent reading
labels (Tesseract, the strips cut and stacked), reads per second, and the share of the
analysis that the label reading took (issue 28's goal: <= 5 %). The share is measured in the
same run as the analysis it divides by, so a busy machine slows both.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import random
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from clips import INDONESIAN_NAMES  # noqa: E402
from engagement.core.config import AnalysisOptions  # noqa: E402
from engagement.vision.layout import parse_layout  # noqa: E402
from engagement.vision.meeting import GALLERY_SAMPLE_FPS, MeetingVisionStage  # noqa: E402
from engagement.vision.name_labels import TesseractReader, normalise_display_name  # noqa: E402
from engagement.vision.sources import VideoFileSource  # noqa: E402
from meetings import write_meeting  # noqa: E402


class TimedReader(TesseractReader):
    """Tesseract, with the seconds spent in it added up."""

    seconds = 0.0

    def read(self, strips):
        start = time.perf_counter()
        try:
            return super().read(strips)
        finally:
            self.seconds += time.perf_counter() - start


def gallery(spec: str) -> tuple[int, tuple[int, int]]:
    grid, height = spec.split("@")
    cols, rows = (int(v) for v in grid.split("x"))
    return cols * rows, {"720": (1280, 720), "1080": (1920, 1080)}[height]


def measure(spec: str, seconds: int, every: int, folder: Path, reread_s: float | None) -> None:
    n, size = gallery(spec)
    rng = random.Random(28)
    orders = []
    for s in range(seconds):
        if s % every == 0:
            order = list(range(n))
            rng.shuffle(order)
        orders.append(order)
    video = folder / f"{spec.replace('@', '_')}.mp4"
    names = [INDONESIAN_NAMES[p % len(INDONESIAN_NAMES)] for p in range(n)]
    write_meeting(video, lambda s: [(p, True) for p in orders[s]], n, seconds, size=size, fps=25, names=names)
    key = secrets.token_bytes(32)
    stage = MeetingVisionStage.for_spec(AnalysisOptions(expression=False), parse_layout("auto"))
    reader = TimedReader()
    stage.read_names(lambda text: hmac.new(key, normalise_display_name(text).encode(), hashlib.sha256).hexdigest(),
                     reader)  # fmt: skip
    if reread_s is not None:
        stage.names.reread_s = reread_s  # type: ignore[union-attr]
    start = time.perf_counter()
    try:
        for frame in VideoFileSource(video, GALLERY_SAMPLE_FPS).frames():
            faces = stage.observe(frame)
            stage.measure(frame, faces)
    finally:
        stage.close()
    total = time.perf_counter() - start
    reads = stage.names.reads if stage.names else 0
    print(f"{spec:>9}: analysis {total:6.1f} s, label reading {reader.seconds:5.2f} s "
          f"({reads} strips, {reads / seconds:.1f} per second of video, "
          f"{1000 * reader.seconds / max(reads, 1):.0f} ms a strip): {100 * reader.seconds / total:.1f} % of the analysis")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=12)
    parser.add_argument("--reorder-every", type=int, default=2)
    parser.add_argument("--sizes", default="3x3@720,5x5@1080")
    parser.add_argument("--reread", type=float, default=None, help="seconds between reads of an unchanged tile")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.sizes.split(","):
            measure(spec, args.seconds, args.reorder_every, Path(tmp), args.reread)


if __name__ == "__main__":
    main()
