"""The Tasks Face Landmarker behind `engagement.vision.landmarks`: the shipped bundle, its checksum,
running modes and clocks, blendshapes, and no network at run time."""

from __future__ import annotations

import json
import math
import shutil
import socket

import cv2
import numpy as np
import pytest

from engagement.core.config import AnalysisOptions, models_dir
from engagement.core.errors import ModelError
from engagement.core.records import BLENDSHAPE_NAMES, EXPRESSION_BLENDSHAPES, EYE_BLENDSHAPES, Frame
from engagement.vision.geometry import matrix_pose
from engagement.vision.landmarks import N_LANDMARKS, FaceLandmarker, LandmarkerOptions, load_bundle
from engagement.vision.stage import VisionStage


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    """A real frontal face that ships with scikit-image (public domain), so no shared data needed."""
    skimage_data = pytest.importorskip("skimage.data")
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection or resolve a name fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access at run time")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_stage_loads_the_shipped_bundle_and_finds_a_face_with_sockets_blocked(no_network, astronaut):
    stage = VisionStage.from_options(AnalysisOptions(expression=False))
    try:
        faces = stage.observe(Frame(0.0, 0, astronaut))
        assert len(faces) == 1
        face = faces[0]
        assert face.landmarks.shape == (N_LANDMARKS, 3)
        assert face.blendshapes is not None and face.blendshapes.shape == (len(BLENDSHAPE_NAMES),)
        assert face.transform is not None and face.transform.shape == (4, 4)
        versions = stage.model_versions()["face-landmarker"]
        registry = json.loads((models_dir() / "models.json").read_text())
        assert versions["sha256"] == registry["face-landmarker"]["sha256"]
    finally:
        stage.close()


def test_a_corrupt_bundle_is_refused_before_mediapipe_sees_it(tmp_path):
    shutil.copy(models_dir() / "models.json", tmp_path / "models.json")
    data = (models_dir() / "face_landmarker.task").read_bytes()
    (tmp_path / "face_landmarker.task").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="corrupt"):
        load_bundle(tmp_path)
    with pytest.raises(ModelError, match="corrupt"):
        VisionStage.from_options(AnalysisOptions(expression=False), tmp_path)


def test_blendshape_names_are_the_models_own_in_its_order(astronaut):
    import mediapipe as mp  # heavy; the raw API, to read the names the model gives
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_buffer=load_bundle()), output_face_blendshapes=True
    )
    with vision.FaceLandmarker.create_from_options(options) as raw:
        rgb = cv2.cvtColor(astronaut, cv2.COLOR_BGR2RGB)
        result = raw.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb)))
    names = [c.category_name for c in result.face_blendshapes[0]]
    assert tuple(n for n in names if n != "_neutral") == BLENDSHAPE_NAMES
    assert set(EYE_BLENDSHAPES) | set(EXPRESSION_BLENDSHAPES) == set(BLENDSHAPE_NAMES)
    assert all(n.startswith("eye") for n in EYE_BLENDSHAPES) and len(EYE_BLENDSHAPES) == 14


def test_video_mode_clock_never_goes_backwards(astronaut):
    """Repeated or backward frame times (a replayed source) must not reach MediaPipe, which
    refuses a VIDEO-mode timestamp that does not increase."""
    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as landmarker:
        for t_ms in (0.0, 0.0, 40.0, 10.0, None, 40.4):
            assert len(landmarker.detect(astronaut, t_ms)) == 1


def test_image_mode_for_stills_detects_each_image_afresh(astronaut):
    blank = np.full_like(astronaut, 128)
    with FaceLandmarker(LandmarkerOptions(max_faces=1, static_images=True)) as landmarker:
        assert [len(landmarker.detect(img)) for img in (astronaut, blank, astronaut)] == [1, 0, 1]


@pytest.mark.parametrize("expression", [True, False])
def test_expression_blendshapes_follow_the_profile_eye_ones_never_do(astronaut, expression):
    stage = VisionStage.from_options(AnalysisOptions(expression=False))
    stage.options = AnalysisOptions(expression=expression)  # the CNN stays off; only the gate differs
    try:
        frame = Frame(0.0, 0, astronaut)
        (features,) = stage.measure(frame, stage.observe(frame))
    finally:
        stage.close()
    scores = dict(zip(BLENDSHAPE_NAMES, features.blendshapes))
    assert all(scores[n] is not None and 0.0 <= scores[n] <= 1.0 for n in EYE_BLENDSHAPES)
    assert all((scores[n] is not None) == expression for n in EXPRESSION_BLENDSHAPES)
    row = features.to_dict()
    assert row["bs_eyeBlinkLeft"] == scores["eyeBlinkLeft"]
    assert (row["bs_mouthSmileLeft"] is None) != expression


@pytest.mark.parametrize("turn_deg", [-20, 20])
def test_head_roll_from_the_matrix_follows_a_face_turned_in_the_image(astronaut, turn_deg):
    """A constructed case with a known answer: the photo turned in its own plane."""
    h, w = astronaut.shape[:2]
    turned = cv2.warpAffine(
        astronaut, cv2.getRotationMatrix2D((w / 2, h / 2), turn_deg, 1.0), (w, h), borderMode=cv2.BORDER_REPLICATE
    )
    with FaceLandmarker(LandmarkerOptions(max_faces=1, static_images=True)) as landmarker:
        (before,), (after,) = landmarker.detect_faces(astronaut), landmarker.detect_faces(turned)
    # OpenCV turns the image counter-clockwise for a positive angle; roll > 0 is clockwise.
    change = math.degrees(matrix_pose(after.transform)[2] - matrix_pose(before.transform)[2])
    assert abs(change + turn_deg) < 3.0


def test_the_bundle_ships_with_its_licence_and_card():
    entry = json.loads((models_dir() / "models.json").read_text())["face-landmarker"]
    assert (models_dir() / "face_landmarker.LICENSE").read_text().lstrip().startswith("Apache License")
    card = (models_dir() / entry["card"]).read_text()
    assert entry["sha256"] in card and "Model Card" in card.replace("%20", " ")
