"""The shipped models' registry: models/models.json maps a versioned name to its file and sha256.

Models are loaded by name, and a file whose sha256 differs from its entry (corrupt, truncated,
or swapped) is refused with a clear error before ONNX Runtime ever parses it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from engagement.config import models_dir as default_models_dir
from engagement.errors import ModelError

__all__ = ["default_models_dir", "resolve_model", "sha256_file"]


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
