"""DAiSEE loader on the shared label files and on tiny generated videos in the data set's layout."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_shared
from engagement.errors import ConfigError
from engagement.records import FEATURE_NAMES, WindowFeatures
from engagement.temporal.daisee import (
    AFFECTS,
    clip_sequence,
    extract_sequences,
    load_split,
    main_track_windows,
    read_frames,
    read_labels,
)
from engagement.temporal.features import INPUT_NAMES

# Inputs that per-second statistics alone give (no attention verdicts in these windows).
VARIABILITY = [INPUT_NAMES.index(n) for n in INPUT_NAMES if n.endswith(("_std", "_cv"))]


def test_shared_label_files_parse():
    labels = require_shared("daisee_labels")
    all_clips = read_labels(labels / "AllLabels.csv")
    train = load_split(labels, "train")
    val = load_split(labels, "validation")
    test = load_split(labels, "test")
    # As shared: the split files do not exactly partition AllLabels.csv, so each is read alone.
    assert len(all_clips) == 8925 and (len(train), len(val), len(test)) == (5358, 1429, 1629)
    assert train[0].clip_id == "1100011002.avi" and train[0].levels == (0, 2, 0, 0)
    assert any(c.clip_id.endswith(".mp4") for c in train)
    assert all(0 <= c.engagement <= 3 for c in all_clips)
    shares = np.bincount([c.engagement for c in test], minlength=4) / len(test)
    assert shares.max() == pytest.approx(0.479, abs=0.01)  # the documented majority-class share


def test_malformed_labels_are_refused(tmp_path):
    bad = tmp_path / "TrainLabels.csv"
    bad.write_text("1100011002.avi,0,7,0,0\n")
    with pytest.raises(ConfigError):
        read_labels(bad)
    bad.write_text("ClipID,Boredom,Engagement,Confusion,Frustration \n1.avi,0,1,2,3\n")
    assert read_labels(bad)[0].levels == (0, 1, 2, 3) and AFFECTS[1] == "Engagement"


def _write_video(path, frames=20, fps=10.0, ext=".avi"):
    cv2 = pytest.importorskip("cv2")
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("MJPG" if ext == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, (32, 24))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((24, 32, 3), i * 10 % 255, np.uint8))
    writer.release()


def test_folder_convention_and_frames(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "TrainLabels.csv").write_text("1100011002.avi,0,2,0,0\n2026140111.mp4,1,3,1,0\n1100011099.avi,0,1,0,0\n")
    root = tmp_path / "DAiSEE" / "DataSet" / "Train"
    _write_video(root / "110001" / "1100011002" / "1100011002.avi")
    _write_video(root / "202614" / "2026140111" / "2026140111.mp4", ext=".mp4")
    clips = load_split(labels, "train", videos_root=tmp_path)
    by_id = {c.clip_id: c for c in clips}
    assert by_id["1100011002.avi"].path.name == "1100011002.avi"
    assert by_id["2026140111.mp4"].path is not None and by_id["1100011099.avi"].path is None
    with pytest.raises(ConfigError, match="not found"):
        load_split(labels, "train", videos_root=tmp_path / "DAiSEE", require_videos=True)
    frames = list(read_frames(by_id["1100011002.avi"].path))
    assert len(frames) == 20 and frames[1][0] == pytest.approx(100.0)
    assert len(list(read_frames(by_id["1100011002.avi"].path, sample_fps=5))) == 10

    def fake_extractor(path):
        n = len(list(read_frames(path)))
        rng = np.random.default_rng(n)
        out = []
        for s in range(n // 10 * 5):  # pretend 5 s of windows
            v = tuple(float(x) for x in np.abs(rng.normal(0.2, 0.05, len(FEATURE_NAMES))) + 0.1)
            out.append(WindowFeatures(1, s, 10, 10, 0, v, tuple(0.01 for _ in v)))
        out.append(WindowFeatures(2, 0, 10, 1, 0, v, v))  # a stray second face, one second
        return main_track_windows(out)

    x, m, y, ids = extract_sequences(clips, fake_extractor)
    assert ids == ["1100011002.avi", "2026140111.mp4"]
    np.testing.assert_allclose(y, [2 / 3, 1.0])
    assert x.shape[0] == 2 and x.shape[1] == 9 and m[:, :, VARIABILITY].all()


def test_clip_sequence_segments_and_gaps():
    v = tuple(0.5 for _ in FEATURE_NAMES)
    ws = [WindowFeatures(1, s, 10, 0 if s in (3, 4) else 10, 0,
                         (None,) * len(v) if s in (3, 4) else v,
                         (None,) * len(v) if s in (3, 4) else tuple(0.1 for _ in v)) for s in range(10)]
    x, m = clip_sequence(ws, segment_s=2, hop_s=1)
    assert x.shape[0] == 9
    assert not m[3].any()  # seconds 3-4: no face -> fully masked segment
    assert m[2, VARIABILITY].all()
