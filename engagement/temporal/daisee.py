"""DAiSEE loader: label files plus the data set's folder convention, for users who hold the videos.

Label files as distributed: `AllLabels.csv` has the header `ClipID,Boredom,Engagement,Confusion,
Frustration ` (note the trailing space); `TrainLabels.csv`, `ValidationLabels.csv`,
`TestLabels.csv` have no header. Each row: clip file name (`1100011002.avi`, some `.mp4`) and
four levels 0-3. Videos live at `DAiSEE/DataSet/{Train,Validation,Test}/<subject>/<clip id
without extension>/<ClipID>`; the subject folder is found by scanning, not guessed from the id.

The full pipeline on DAiSEE (vision stage -> per-second windows -> segment statistics -> GRU):
`clip_sequence` turns one clip's windows into a model input sequence (10 s clips: 2 s segments
every 1 s by default), `extract_sequences` runs a window extractor over clips, and
`engagement.training.temporal.train_sequences` trains on the result.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engagement.errors import ConfigError
from engagement.records import WindowFeatures
from engagement.temporal.features import N_INPUTS, Baseline, segment_inputs

AFFECTS: tuple[str, ...] = ("Boredom", "Engagement", "Confusion", "Frustration")
SPLITS: dict[str, str] = {"train": "Train", "validation": "Validation", "test": "Test"}
LABEL_FILES: dict[str, str] = {"train": "TrainLabels.csv", "validation": "ValidationLabels.csv", "test": "TestLabels.csv"}
VIDEO_EXTENSIONS = (".avi", ".mp4")


@dataclass(frozen=True)
class DaiseeClip:
    clip_id: str  # file name as in the label files, e.g. 1100011002.avi
    levels: tuple[int, int, int, int]  # AFFECTS order, each 0-3
    split: str | None = None
    path: Path | None = None  # the video, when found under the data set root

    @property
    def stem(self) -> str:
        return Path(self.clip_id).stem

    @property
    def engagement(self) -> int:
        return self.levels[1]

    @property
    def engagement_score(self) -> float:
        """Engagement level on the [0, 1] scale of the temporal model (0, 1/3, 2/3, 1)."""
        return self.levels[1] / 3.0


def read_labels(path: Path, split: str | None = None) -> list[DaiseeClip]:
    """Rows of a DAiSEE label file (with or without the header line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as e:
        raise ConfigError(f"cannot read DAiSEE labels {path}: {e}") from None
    clips = []
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        cells = [c.strip() for c in row]
        if not cells or not cells[0]:
            continue
        if cells[0].lower() == "clipid":
            got = tuple(c for c in cells[1:] if c)
            if got != AFFECTS:
                raise ConfigError(f"{path}: unexpected header {cells}")
            continue
        if len(cells) < 5:
            raise ConfigError(f"{path}:{lineno}: expected ClipID and 4 levels, got {row}")
        try:
            levels = tuple(int(c) for c in cells[1:5])
        except ValueError:
            raise ConfigError(f"{path}:{lineno}: levels must be integers 0-3, got {cells[1:5]}") from None
        if any(not 0 <= v <= 3 for v in levels):
            raise ConfigError(f"{path}:{lineno}: levels must be 0-3, got {levels}")
        clips.append(DaiseeClip(cells[0], levels, split))  # type: ignore[arg-type]
    return clips


def dataset_dir(root: Path) -> Path:
    """`.../DAiSEE/DataSet` from a path to it, to `DAiSEE`, or to the folder holding `DAiSEE`."""
    root = Path(root)
    for candidate in (root, root / "DataSet", root / "DAiSEE" / "DataSet"):
        if any((candidate / s).is_dir() for s in SPLITS.values()):
            return candidate
    raise ConfigError(f"no DAiSEE DataSet/{{Train,Validation,Test}} folders under {root}")


def index_videos(split_dir: Path) -> dict[str, Path]:
    """Clip file name -> path for `<split>/<subject>/<clip id>/<ClipID>` (scanned, any subject)."""
    found: dict[str, Path] = {}
    if not split_dir.is_dir():
        return found
    for subject in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        for clip_dir in sorted(p for p in subject.iterdir() if p.is_dir()):
            for f in clip_dir.iterdir():
                if f.suffix.lower() in VIDEO_EXTENSIONS and f.stem == clip_dir.name:
                    found[f.name] = f
    return found


def load_split(labels_dir: Path, split: str, videos_root: Path | None = None,
               require_videos: bool = False) -> list[DaiseeClip]:
    """Clips of one split with their labels and, when `videos_root` is given, video paths.

    Clips whose video is missing keep `path=None` (or raise with `require_videos`).
    """
    if split not in SPLITS:
        raise ConfigError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    clips = read_labels(Path(labels_dir) / LABEL_FILES[split], split)
    if videos_root is None:
        return clips
    videos = index_videos(dataset_dir(videos_root) / SPLITS[split])
    out = [DaiseeClip(c.clip_id, c.levels, split, videos.get(c.clip_id)) for c in clips]
    missing = [c.clip_id for c in out if c.path is None]
    if require_videos and missing:
        raise ConfigError(f"{len(missing)} of {len(out)} {split} videos not found, e.g. {missing[0]}")
    return out


def read_frames(path: Path, sample_fps: float | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """(t_ms, BGR frame) of a clip, streamed; `sample_fps` keeps about that many per second."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise ConfigError(f"cannot open video {path}")
    try:
        fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
        step = max(1, round(fps / sample_fps)) if sample_fps else 1
        index = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if index % step == 0:
                yield index * 1000.0 / fps, frame
            index += 1
    finally:
        cap.release()


def clip_sequence(windows: list[WindowFeatures], segment_s: int = 2,
                  hop_s: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(x, mask), each (S, N_INPUTS): segment statistics of one track's per-second windows.

    DAiSEE clips last 10 s, far shorter than engagewild's 30 s segments: 2 s segments every
    second keep a sequence of about 9 steps (a model trained this way is a DAiSEE model). The
    participant's usual direction is the clip's own median, as engagewild's is the video's.
    """
    windows = sorted(windows, key=lambda w: w.second)
    if not windows:
        return np.zeros((0, N_INPUTS), np.float32), np.zeros((0, N_INPUTS), np.float32)
    baseline = Baseline(size=len(windows), min_seconds=1)
    for w in windows:
        baseline.add(w)
    usual = baseline.median()
    first, last = windows[0].second, windows[-1].second
    xs, ms = [], []
    end = first + segment_s - 1
    while True:
        seg = [w for w in windows if end - segment_s < w.second <= end]
        x, m = segment_inputs(seg, usual)
        xs.append(x)
        ms.append(m)
        if end >= last:
            break
        end += hop_s
    return np.stack(xs), np.stack(ms)


WindowExtractor = Callable[[Path], list[WindowFeatures]]


def extract_sequences(clips: Iterable[DaiseeClip], extractor: WindowExtractor, segment_s: int = 2,
                      hop_s: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(x, mask, y, clip_ids) for clips with a video; x/mask padded to the longest (N, S, F).

    `extractor(path)` returns the per-second windows of the clip's main face (e.g. the vision
    stage plus `WindowAggregator`, keeping the track present longest). Padding is masked, which
    the model treats as missing: its state holds.
    """
    seqs, labels, ids = [], [], []
    for clip in clips:
        if clip.path is None:
            continue
        x, m = clip_sequence(extractor(clip.path), segment_s, hop_s)
        if len(x) == 0:
            continue
        seqs.append((x, m))
        labels.append(clip.engagement_score)
        ids.append(clip.clip_id)
    if not seqs:
        empty = np.zeros((0, 0, N_INPUTS), np.float32)
        return empty, empty, np.zeros(0, np.float32), []
    length = max(len(x) for x, _ in seqs)
    X = np.zeros((len(seqs), length, N_INPUTS), np.float32)
    M = np.zeros_like(X)
    for i, (x, m) in enumerate(seqs):
        X[i, : len(x)], M[i, : len(m)] = x, m
    return X, M, np.asarray(labels, np.float32), ids


def main_track_windows(windows: list[WindowFeatures]) -> list[WindowFeatures]:
    """The windows of the track with the most seconds with a face (one student per clip)."""
    by_track: dict[int, list[WindowFeatures]] = {}
    for w in windows:
        by_track.setdefault(w.track_id, []).append(w)
    if not by_track:
        return []
    best = max(by_track, key=lambda t: sum(w.n_face > 0 for w in by_track[t]))
    return by_track[best]
