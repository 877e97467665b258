"""Score the expression model on a folder of labelled face images, through the product's path.

    engagement evaluate images DIR [--labels CSV] [--model NAME]

This is how an institute audits the model on its own people: each image goes through what the
pipeline does to a video frame (MediaPipe Face Landmarker in IMAGE mode, the FER2013 framing of
`align_face`, the CNN), so the figures are those the product would reach on such faces. The CSV
(default DIR/labels.csv) has a header with columns `path` (relative to the CSV's folder) and
`label` (one of the model's labels, any case), separated by commas, semicolons or tabs.

Bad rows never stop the run: a missing or unreadable file and an unknown label are counted,
listed and left out of the scores; an image in which no usable face is found counts as a wrong
answer in `accuracy` (the product would have no expression for that person either) and is left
out of `accuracy_detected`.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import cv2
import numpy as np

from engagement.core.errors import EngagementError
from engagement.vision.expression import DEFAULT_MODEL, ExpressionModel, InputError, align_face
from engagement.vision.expression_eval import class_scores, confusion, figures, model_line, scores_lines
from engagement.vision.landmarks import FaceLandmarker, LandmarkerOptions

LABELS_CSV = "labels.csv"
MISSED = "none"  # confusion column: no usable face found in the image
_DELIMITERS = (",", ";", "\t")  # a spreadsheet in an Indonesian locale saves CSV with ';'
_LISTED = 5  # problem files named per kind in the report


def read_labels_csv(path: Path) -> list[tuple[str, str]]:
    """(path, label) per non-blank data row, both stripped; EngagementError if unusable."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")  # -sig: spreadsheets write a BOM
    except FileNotFoundError:
        raise EngagementError(f"labels CSV not found: {path}") from None
    except UnicodeDecodeError:
        raise EngagementError(f"labels CSV {path} is not UTF-8 text") from None
    except OSError as e:
        raise EngagementError(f"cannot read labels CSV {path}: {e.strerror or e}") from None
    first = text.splitlines()[0] if text.strip() else ""
    for delimiter in _DELIMITERS:
        header = [h.strip().lower() for h in next(csv.reader([first], delimiter=delimiter), [])]
        if "path" in header and "label" in header:
            break
    else:
        raise EngagementError(
            f"labels CSV {path} needs a header row with columns path and label (first line: {first[:80]!r})"
        )
    i_path, i_label = header.index("path"), header.index("label")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    rows = []
    try:
        next(reader)
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue
            cell = lambda i: fields[i].strip() if i < len(fields) else ""  # noqa: E731  (short rows)
            rows.append((cell(i_path), cell(i_label)))
    except csv.Error as e:
        raise EngagementError(f"labels CSV {path} is malformed at line {reader.line_num}: {e}") from None
    if not rows:
        raise EngagementError(f"labels CSV {path} has a header but no rows")
    return rows


def read_image(path: Path) -> np.ndarray | None:
    """BGR uint8 image (EXIF orientation applied), or None if the file is not a readable image."""
    try:
        # np.fromfile + imdecode rather than imread: imread fails silently on non-ASCII paths
        # on Windows and cannot tell a missing file from a broken one.
        buf = np.fromfile(path, dtype=np.uint8)
        return cv2.imdecode(buf, cv2.IMREAD_COLOR) if buf.size else None
    except (OSError, ValueError, cv2.error):
        return None


def largest_face_crop(landmarker: FaceLandmarker, image: np.ndarray) -> tuple[np.ndarray | None, int]:
    """The CNN's crop (`align_face`) of the largest face the landmarker finds in a still, or None
    where there is no usable face; and how many faces it found."""
    faces = landmarker.detect(image)
    if not faces:
        return None, 0
    face = max(faces, key=lambda lm: np.ptp(lm[:, 0]) * np.ptp(lm[:, 1]))
    try:
        return align_face(image, face), len(faces)
    except InputError:  # e.g. the face lies outside the frame: no usable face
        return None, len(faces)


def evaluate_images(
    labels_csv: Path,
    name: str = DEFAULT_MODEL,
    models_dir: Path | None = None,
    threads: int = 1,
) -> dict:
    """Counts, per-class scores and confusion of model `name` on the images listed in `labels_csv`."""
    labels_csv = Path(labels_csv)
    rows = read_labels_csv(labels_csv)
    model = ExpressionModel.load(name, models_dir, threads=threads)
    index = {lab.lower(): i for i, lab in enumerate(model.labels)}
    problems: dict[str, list[str]] = {"missing": [], "unreadable": [], "unknown_label": [], "no_face": []}
    truth, missed_truth, crops, several_faces = _face_crops(labels_csv, rows, index, problems)
    scored = len(truth) + len(missed_truth)
    if scored == 0:
        raise EngagementError(
            f"none of the {len(rows)} rows of {labels_csv} could be scored (missing files "
            f"{len(problems['missing'])}, unreadable {len(problems['unreadable'])}, "
            f"unknown labels {len(problems['unknown_label'])})"
        )
    k = len(model.labels)
    pred = model.predict(np.stack(crops)).argmax(1) if crops else np.zeros(0, np.int64)
    y_all = np.array(truth + missed_truth, dtype=np.int64)
    p_all = np.concatenate([pred, np.full(len(missed_truth), k)]).astype(np.int64)
    cm = confusion(y_all, p_all, k, columns=k + 1)
    correct = int(np.trace(cm[:, :k]))
    return {
        "model": name,
        "version": model.version,
        "sha256": model.sha256,
        "labels_csv": str(labels_csv),
        "labels": list(model.labels),
        "rows": len(rows),
        "problems": problems,
        "scored": scored,
        "detected": len(truth),
        "several_faces": several_faces,
        "accuracy": correct / scored,
        "accuracy_detected": correct / len(truth) if truth else float("nan"),
        **class_scores(cm, model.labels),
        "confusion": cm.tolist(),
    }


def _face_crops(labels_csv: Path, rows: list[tuple[str, str]], index: dict[str, int],
                problems: dict[str, list[str]]) -> tuple[list[int], list[int], list[np.ndarray], int]:
    """(labels of the faces found, labels of the images with no face found, the found faces'
    crops, how many images showed several faces); every row that cannot be scored goes into
    `problems` under its reason."""
    several_faces = 0
    truth, missed_truth, crops = [], [], []
    landmarker = None  # started at the first readable image: MediaPipe's start-up chatter on
    # stderr would otherwise precede the one error line of a CSV with nothing to score.
    try:
        for rel, label in rows:
            y = index.get(label.lower())
            if y is None:
                problems["unknown_label"].append(f"{rel} ({label!r})")
                continue
            file = labels_csv.parent / rel
            try:
                present = bool(rel) and file.exists()
            except OSError:  # a name the file system cannot hold (too long): no such file
                present = False
            if not present:
                problems["missing"].append(rel or "(empty path)")
                continue
            image = read_image(file)
            if image is None:
                problems["unreadable"].append(rel)
                continue
            if landmarker is None:
                # A second face turns up only by accident (a poster behind the person): find a
                # few and score the largest.
                landmarker = FaceLandmarker.from_options(LandmarkerOptions(max_faces=4, static_images=True))
            crop, n_faces = largest_face_crop(landmarker, image)
            several_faces += n_faces > 1
            if crop is None:
                problems["no_face"].append(rel)
                missed_truth.append(y)
            else:
                crops.append(crop)
                truth.append(y)
    finally:
        if landmarker is not None:
            landmarker.close()
    return truth, missed_truth, crops, several_faces


def format_images_report(result: dict) -> str:
    """Human-readable report; the LAST line is exactly `accuracy=<value>` for scripts."""
    p = result["problems"]

    def count(title: str, kind: str, note: str) -> list[str]:
        items = p[kind]
        lines = [f"{title}: {len(items)}" + (f"  ({note})" if items else "")]
        lines += [f"    {item}" for item in items[:_LISTED]]
        if len(items) > _LISTED:
            lines.append(f"    ... and {len(items) - _LISTED} more")
        return lines

    lines = [
        model_line(result),
        f"labels {result['labels_csv']}",
        f"images: {result['rows']}",
        *count("missing files", "missing", "not scored"),
        *count("unreadable files", "unreadable", "not scored"),
        *count("unknown labels", "unknown_label", f"not scored; labels are {', '.join(result['labels'])}"),
        f"scored: {result['scored']}",
        *count("faces missed", "no_face", "no usable face found: counted as wrong"),
        f"faces found: {result['detected']}",
        f"images with several faces: {result['several_faces']}"
        + ("  (the largest is scored)" if result["several_faces"] else ""),
        "A missed face counts as wrong in recall, macro_f1 and accuracy (over all scored images);",
        "accuracy_detected counts only the images in which a face was found.",
        *scores_lines(result, extra_columns=(MISSED,), notes=(f"  ({MISSED} = no usable face found)",)),
        *figures(result, "accuracy_detected", "accuracy"),
    ]
    return "\n".join(lines)
