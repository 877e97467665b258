"""The yawn-event benchmark's scoring and labels file (benchmarks/yawn_events.py): events from the
per-second `yawn` column, matching against labels made by eye, and clear errors on bad labels."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("yawn_events", ROOT / "benchmarks" / "yawn_events.py")
yawn_events = importlib.util.module_from_spec(_spec)
sys.modules["yawn_events"] = yawn_events  # its dataclass looks its module up by name
_spec.loader.exec_module(yawn_events)


def windows(track: int, yawns: dict[int, int | None]) -> list[SimpleNamespace]:
    return [SimpleNamespace(track_id=track, second=s, yawn=v) for s, v in yawns.items()]


def test_an_event_is_a_run_of_yawn_seconds_per_track():
    ws = windows(1, {3: 1, 4: 1, 5: 1, 6: 0, 7: None, 8: 1}) + windows(2, {4: 1, 5: 1})
    assert yawn_events.yawn_events(ws) == [(3.0, 6.0), (4.0, 6.0), (8.0, 9.0)]
    assert yawn_events.yawn_events(windows(1, {0: 0, 1: None})) == []
    # A second without a yawn between two yawn seconds makes two events.
    assert yawn_events.yawn_events(windows(1, {3: 1, 4: 0, 5: 1})) == [(3.0, 4.0), (5.0, 6.0)]


def test_a_found_event_is_right_only_when_it_overlaps_a_labelled_yawn_once():
    labelled = ((10.0, 14.0), (30.0, 33.0))
    # One event inside the first yawn, one beside it (touching is not overlapping), one elsewhere.
    assert yawn_events.match([(11.0, 13.0), (14.0, 15.0), (20.0, 21.0)], labelled) == (1, 2, 1)
    # Two events within one yawn: the second is not a second right answer.
    assert yawn_events.match([(10.0, 11.0), (12.0, 13.0)], labelled) == (1, 1, 1)
    assert yawn_events.match([], labelled) == (0, 0, 2)
    assert yawn_events.match([(14.0, 15.0)], labelled) == (0, 1, 2)
    assert yawn_events.ratio(0, 0) == "n/a (0/0)" and yawn_events.ratio(1, 4) == "0.25 (1/4)"


def test_the_committed_labels_load():
    labels = yawn_events.load_labels(yawn_events.LABELS)
    assert len(labels) >= 8 and all(entry.clip for entry in labels)
    assert {entry.clip for entry in labels} >= {"pyfeat/WolfgangLanger_Pexels.mp4", "liveportrait/d9.mp4"}


@pytest.mark.parametrize(
    ("entry", "says"),
    [
        ({"yawns": []}, "'clip' path"),
        ({"clip": "a.mp4", "yawns": [[3.0]]}, "[start, end]"),
        ({"clip": "a.mp4", "yawns": [[5.0, 2.0]]}, "start < end"),
        ({"clip": "a.mp4", "loop": -1, "yawns": []}, "'loop' is a count"),
        ({"clip": "a.mp4", "loop": 2, "yawns": [[1.0, 3.0]]}, "cannot loop"),
    ],
)
def test_bad_labels_are_refused_with_where_and_why(tmp_path, entry, says):
    path = tmp_path / "labels.json"
    path.write_text(json.dumps({"clips": [{"clip": "ok.mp4", "yawns": []}, entry]}), encoding="utf-8")
    with pytest.raises(ValueError, match="clip 2") as err:
        yawn_events.load_labels(path)
    assert says in str(err.value)


def test_a_missing_clips_folder_or_unreadable_labels_is_an_error_line(tmp_path, capsys):
    assert yawn_events.main(["--clips", str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.startswith("error: clips folder not found")
    (tmp_path / "bad.json").write_text("{not json", encoding="utf-8")
    assert yawn_events.main(["--clips", str(tmp_path), "--labels", str(tmp_path / "bad.json")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
