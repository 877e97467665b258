"""The shipped models' registry: models/models.json maps a versioned name to its file and sha256.

Models are loaded by name, and a file whose sha256 differs from its entry (corrupt, truncated,
or swapped) is refused with a clear error before ONNX Runtime ever parses it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from engagement.config import models_dir as default_models_dir
from engagement.errors import ModelError

__all__ = ["default_models_dir", "onnx_session", "resolve_model", "sha256_file"]

# ONNX Runtime's Linux wheels start a telemetry client when the library loads (it writes a device
# id and an event store under ~/.cache/Microsoft). The variable only works if it is set before the
# first import of onnxruntime, so it is set here, where every model loader comes through.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_model(name: str, models_dir: Path | None = None) -> Path:
    """Path of the registered model `name` after checking its sha256; ModelError otherwise."""
    models_dir = Path(models_dir) if models_dir is not None else default_models_dir()
    reg_path = models_dir / "models.json"
    try:
        registry = json.loads(reg_path.read_text())
    except FileNotFoundError:
        raise ModelError(f"model registry not found: {reg_path}") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"model registry {reg_path} is unreadable: {e}") from None
    entry = registry.get(name) if isinstance(registry, dict) else None
    if not isinstance(entry, dict) or "file" not in entry or "sha256" not in entry:
        known = ", ".join(sorted(registry)) if isinstance(registry, dict) else ""
        raise ModelError(f"model {name!r} is not registered in {reg_path} (known: {known or 'none'})")
    path = models_dir / entry["file"]
    if not path.is_file():
        raise ModelError(f"model file missing: {path}")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise ModelError(
            f"model file {path} is corrupt or not the registered one "
            f"(sha256 {digest[:12]}..., expected {entry['sha256'][:12]}...)"
        )
    return path


def onnx_session(path: Path, *, threads: int = 1, denormal_as_zero: bool = False):
    """An ONNX Runtime CPU session for `path` with telemetry off; raises what ORT raises."""
    import onnxruntime as ort

    ort.disable_telemetry_events()  # the API switch too, in case onnxruntime was imported first
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if denormal_as_zero:
        # Denormal activations make fp32 convolutions several times slower on x86; flushing
        # them to zero changes outputs by < 1e-30.
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
