"""ONNX Runtime sends no telemetry: loading both shipped models leaves nothing under ~/.cache."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LOAD_BOTH = """
from engagement.temporal.model import TemporalModel
from engagement.vision.expression import ExpressionModel
ExpressionModel.load()
TemporalModel.load()
"""


def test_model_loaders_leave_no_telemetry_store(tmp_path):
    # A fresh process: ORT's telemetry client starts when the library is first imported.
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORT_")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    subprocess.run([sys.executable, "-c", LOAD_BOTH], env=env, cwd=ROOT, check=True, timeout=300)
    left = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())
    assert not [p for p in left if "Microsoft" in p or "onnxruntime" in p], left


def test_factory_session_runs_single_threaded_cpu():
    from engagement.core.registry import onnx_session, resolve_model

    session = onnx_session(resolve_model("engagement-gru.v1"))
    assert session.get_providers() == ["CPUExecutionProvider"]
    assert session.get_session_options().intra_op_num_threads == 1
