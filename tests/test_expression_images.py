"""`engagement evaluate images`: auditing the expression model on a folder of labelled faces."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from engagement.core.errors import EngagementError
from engagement.vision.expression import ExpressionModel, align_face
from engagement.vision.expression_eval import class_scores
from engagement.vision.expression_images import evaluate_images, read_labels_csv
from engagement.vision.landmarks import FaceLandmarker, LandmarkerOptions

LABELS = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engagement.cli.main", "evaluate", "images", *args],
        capture_output=True, text=True, timeout=300,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, pattern: str) -> None:
    assert result.returncode == 2, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert pattern in lines[0], lines[0]


def _count(report: str, title: str) -> int:
    return int(re.search(rf"^{title}: (\d+)", report, re.M).group(1))


@pytest.fixture(scope="module")
def face_folder(tmp_path_factory) -> Path:
    """Faces cut from scikit-image's astronaut photo (crops, a mirror, resizes, formats), plus
    bad rows: an unreadable file, an unknown label, a missing file and a face-less grey image."""
    skimage_data = pytest.importorskip("skimage.data")
    d = tmp_path_factory.mktemp("faces")
    photo = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    face = photo[20:260, 110:300]
    (d / "people").mkdir()
    cv2.imwrite(str(d / "people" / "loose.png"), face)
    cv2.imwrite(str(d / "people" / "mirror.jpg"), face[:, ::-1])
    cv2.imwrite(str(d / "tight.png"), photo[60:220, 150:270])
    cv2.imwrite(str(d / "small.bmp"), cv2.resize(face, (95, 120), interpolation=cv2.INTER_AREA))
    cv2.imwrite(str(d / "whole.jpg"), photo)
    cv2.imwrite(str(d / "grey.png"), np.full((240, 190, 3), 128, np.uint8))
    (d / "broken.jpg").write_bytes(b"this is not a JPEG")
    rows = [
        ("people/loose.png", "happy"),
        ("people/mirror.jpg", "HAPPY"),  # labels are case-insensitive
        ("tight.png", " Sad "),
        ("small.bmp", "Neutral"),
        ("whole.jpg", "Happy"),
        ("grey.png", "Surprise"),  # no face in it
        ("broken.jpg", "Happy"),  # unreadable
        ("nowhere.png", "Happy"),  # missing
        ("x" * 300 + ".png", "Happy"),  # a name too long for the file system: missing too
        ("tight.png", "smiling"),  # not one of the model's labels
    ]
    (d / "labels.csv").write_text("path,label\n" + "".join(f"{p},{lab}\n" for p, lab in rows) + "\n")
    return d


def test_cli_counts_every_kind_of_row_and_ends_with_accuracy(face_folder):
    result = run_cli(str(face_folder))
    assert result.returncode == 0, result.stderr
    report = result.stdout
    assert _count(report, "images") == 10
    assert _count(report, "missing files") == 2 and "nowhere.png" in report
    assert _count(report, "unreadable files") == 1 and "broken.jpg" in report
    assert _count(report, "unknown labels") == 1 and "'smiling'" in report
    assert _count(report, "scored") == 6
    assert _count(report, "faces missed") == 1 and "grey.png" in report
    assert _count(report, "faces found") == 5
    last = report.rstrip("\n").splitlines()[-1]
    assert re.fullmatch(r"accuracy=\d\.\d{4}", last), last
    detected = float(re.search(r"^accuracy_detected=(\d\.\d{4})$", report, re.M).group(1))
    # A missed face counts as wrong in `accuracy`: correct answers over 6, not over 5.
    assert float(last.split("=")[1]) == pytest.approx(detected * 5 / 6, abs=1e-4)
    assert re.search(r"^macro_f1=\d\.\d{4}$", report, re.M)
    assert "confusion (rows true, columns predicted)" in report and report.count("\n  Ang ") == 1


def test_scores_match_the_pipeline_path_face_by_face(face_folder):
    result = evaluate_images(face_folder / "labels.csv")
    model = ExpressionModel.load()
    images = ["people/loose.png", "people/mirror.jpg", "tight.png", "small.bmp", "whole.jpg"]
    truth = [3, 3, 4, 6, 3]
    with FaceLandmarker.from_options(LandmarkerOptions(max_faces=1, static_images=True)) as landmarker:
        crops = []
        for rel in images:
            image = cv2.imread(str(face_folder / rel))
            crops.append(align_face(image, landmarker.detect(image)[0]))
    pred = model.predict(np.stack(crops)).argmax(1)
    correct = int((pred == np.array(truth)).sum())
    assert result["detected"] == 5 and result["scored"] == 6
    assert result["accuracy"] == pytest.approx(correct / 6)
    assert result["accuracy_detected"] == pytest.approx(correct / 5)
    cm = np.array(result["confusion"])
    assert cm.shape == (7, 8) and cm.sum() == 6
    assert cm[LABELS.index("Surprise"), 7] == 1  # the grey image: true Surprise, no face
    for t, p in zip(truth, pred):
        cm[t, p] -= 1
    assert cm[:, :7].sum() == 0 and (cm >= 0).all()


def test_malformed_csv_is_one_error_line(tmp_path):
    (tmp_path / "labels.csv").write_text("file,emotion\na.png,happy\n")
    assert_one_line_error(run_cli(str(tmp_path)), "needs a header row with columns path and label")


def test_missing_folder_or_csv_is_one_error_line(tmp_path):
    assert_one_line_error(run_cli(str(tmp_path / "nowhere")), "image folder not found")
    assert_one_line_error(run_cli(str(tmp_path)), "labels CSV not found")


def test_nothing_scorable_is_one_error_line(tmp_path):
    (tmp_path / "broken.jpg").write_bytes(b"")
    (tmp_path / "labels.csv").write_text("path,label\nbroken.jpg,happy\nnowhere.png,sad\nbroken.jpg,bored\n")
    assert_one_line_error(run_cli(str(tmp_path)), "none of the 3 rows")


def test_unknown_model_is_one_error_line(tmp_path):
    (tmp_path / "labels.csv").write_text("path,label\na.png,happy\n")
    assert_one_line_error(run_cli(str(tmp_path), "--model", "expression-cnn.v99"), "not registered")


@pytest.mark.parametrize("sep", [",", ";", "\t"])
def test_labels_csv_separators_bom_and_column_order(tmp_path, sep):
    csv_path = tmp_path / "labels.csv"
    text = sep.join(["Label", "id", "Path"]) + "\n" + sep.join(["happy", "7", "a b.png"]) + "\n\n"
    csv_path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # a spreadsheet's BOM
    assert read_labels_csv(csv_path) == [("a b.png", "happy")]


def test_labels_csv_short_row_and_header_only(tmp_path):
    csv_path = tmp_path / "labels.csv"
    csv_path.write_text("path,label\nonly-a-path.png\n")
    assert read_labels_csv(csv_path) == [("only-a-path.png", "")]
    csv_path.write_text("path,label\n")
    with pytest.raises(EngagementError, match="no rows"):
        read_labels_csv(csv_path)
    csv_path.write_bytes(b"path,label\n\xff\xfe,happy\n")
    with pytest.raises(EngagementError, match="not UTF-8"):
        read_labels_csv(csv_path)


def test_missed_faces_lower_recall_but_not_precision():
    # Two Happy images: one right, one with no face (the extra column); one Sad image called Happy.
    cm = np.zeros((7, 8), np.int64)
    cm[3, 3] = 1
    cm[3, 7] = 1
    cm[4, 3] = 1
    s = class_scores(cm, LABELS)
    assert s["support"]["Happy"] == 2 and s["recall"]["Happy"] == 0.5
    assert s["precision"]["Happy"] == 0.5  # 1 of the 2 Happy predictions; the missed face is none
    assert set(s["recall"]) == {"Happy", "Sad"}
    assert s["macro_f1"] == pytest.approx((0.5 + 0.0) / 2)
