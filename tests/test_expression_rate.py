"""The expression CNN runs on each face at most `expression_hz` times a second (per-second means
are what is stored), and per-second expression means still come out for every present second."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_face import Pose, ScriptedLandmarker, textured_image

from engagement.core.config import AnalysisOptions
from engagement.core.errors import ConfigError
from engagement.core.records import EXPRESSION_LABELS, Frame
from engagement.temporal.run_config import run_settings_hash
from engagement.temporal.windows import WindowAggregator
from engagement.vision.stage import VisionStage


class CountingModel:
    """Stands in for the CNN: counts the faces it is asked about, answers a fixed distribution."""

    name, version, sha256 = "counting", "0", "0" * 64

    def __init__(self) -> None:
        self.faces = 0

    def predict(self, crops: np.ndarray) -> np.ndarray:
        self.faces += len(crops)
        p = np.full((len(crops), len(EXPRESSION_LABELS)), 0.05, dtype=np.float32)
        p[:, 3] = 1 - 0.05 * (len(EXPRESSION_LABELS) - 1)
        return p


def run(expression_hz, fps: int = 30, seconds: int = 4, faces: int = 2):
    model = CountingModel()
    poses = [Pose(offset_mm=(-150.0 + 300.0 * k, 0.0)) for k in range(faces)]
    stage = VisionStage(AnalysisOptions(expression_hz=expression_hz), ScriptedLandmarker(lambda i: poses), model)
    aggregator, windows, image = WindowAggregator(1000), [], textured_image()
    for i in range(fps * seconds):
        frame = Frame(i * 1000.0 / fps, i, image)
        windows += aggregator.add(frame.t_ms, stage.measure(frame, stage.observe(frame)))
    return model.faces, windows + aggregator.flush()


def test_cnn_runs_five_times_a_second_per_face_not_on_every_frame():
    every_frame, _ = run(None)
    five_hz, windows = run(5.0)
    assert every_frame == 2 * 30 * 4
    assert five_hz == 2 * 5 * 4
    present = [w for w in windows if w.present]
    assert len(present) == 2 * 4  # both faces in each of the 4 seconds: the check below has cases
    assert all(w.expression is not None for w in present)


def test_the_rate_is_part_of_the_run_configuration_and_checked():
    assert run_settings_hash(AnalysisOptions(expression_hz=5.0)) != run_settings_hash(AnalysisOptions(expression_hz=None))
    with pytest.raises(ConfigError, match="expression rate"):
        AnalysisOptions(expression_hz=0)
