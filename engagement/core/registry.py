"""The shipped models' registry: models/models.json, one typed record per versioned model name.

Each entry says what the model is (kind, format, version), where it is (file, sha256, card), what
it takes and gives (input spec, labels) and what it learned from (data citation), like the weight
records of timm and torchvision. Models are loaded by name, and a file whose sha256 differs from
its entry (corrupt, truncated, or swapped) is refused with a clear error before ONNX Runtime or
MediaPipe ever parses it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from engagement.core import config
from engagement.core.errors import ModelError

__all__ = [
    "FORMATS", "KINDS", "InputSpec", "ModelRecord", "load_registry", "model_record", "onnx_session",
    "register", "resolve_model", "sha256_file",
]

# ONNX Runtime's Linux wheels start a telemetry client when the library loads (it writes a device
# id and an event store under ~/.cache/Microsoft). The variable only works if it is set before the
# first import of onnxruntime, so it is set here, where every model loader comes through.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

KINDS: tuple[str, ...] = ("expression", "temporal", "landmarker")
FORMATS: tuple[str, ...] = ("onnx", "mediapipe-task")
REGISTRY_FILE = "models.json"


@dataclass(frozen=True)
class InputSpec:
    """What one call of the model takes. `shape` names dynamic axes by a string ("batch", "time")."""

    shape: tuple[int | str, ...]
    dtype: str  # numpy spelling: float32, uint8
    layout: str  # in words: "NCHW grey 0-255, FER2013-aligned face", "HWC RGB frame"
    features: tuple[str, ...] = ()  # the last axis's columns, in order, where they have names

    @classmethod
    def from_dict(cls, name: str, d: object) -> "InputSpec":
        if not isinstance(d, dict):
            raise ModelError(f"model {name!r}: 'input' must be an object with shape, dtype and layout")
        shape = d.get("shape")
        if not isinstance(shape, list) or not shape or not all(
            isinstance(a, str) or (isinstance(a, int) and not isinstance(a, bool) and a > 0) for a in shape
        ):
            raise ModelError(f"model {name!r}: input shape must be a list of positive sizes or axis names")
        features = d.get("features", [])
        if not _is_str_list(features):
            raise ModelError(f"model {name!r}: input features must be a list of names")
        for key in ("dtype", "layout"):
            if not isinstance(d.get(key), str) or not d[key]:
                raise ModelError(f"model {name!r}: input {key} must be a non-empty string")
        return cls(tuple(shape), d["dtype"], d["layout"], tuple(features))


@dataclass(frozen=True)
class ModelRecord:
    """One entry of models.json. Labels are the output classes in output order (empty where the
    output is not a classification)."""

    name: str
    version: str
    kind: str
    format: str
    file: str
    sha256: str
    card: str
    labels: tuple[str, ...]
    input: InputSpec
    data_citation: tuple[str, ...]  # one item per cited work; the card repeats each

    @classmethod
    def from_entry(cls, name: str, entry: object) -> "ModelRecord":
        """The record of `name`, or ModelError naming the first missing or mistyped field."""
        if not isinstance(entry, dict):
            raise ModelError(f"model {name!r}: its entry must be an object")
        for key in ("version", "kind", "format", "file", "sha256", "card"):
            if not isinstance(entry.get(key), str) or not entry[key]:
                raise ModelError(f"model {name!r}: field {key!r} must be a non-empty string")
        if entry["kind"] not in KINDS:
            raise ModelError(f"model {name!r}: kind must be one of {', '.join(KINDS)}, got {entry['kind']!r}")
        if entry["format"] not in FORMATS:
            raise ModelError(f"model {name!r}: format must be one of {', '.join(FORMATS)}, got {entry['format']!r}")
        if len(entry["sha256"]) != 64 or any(c not in "0123456789abcdef" for c in entry["sha256"]):
            raise ModelError(f"model {name!r}: sha256 must be 64 lowercase hex digits")
        for key in ("labels", "data_citation"):
            if not _is_str_list(entry.get(key)):
                raise ModelError(f"model {name!r}: field {key!r} must be a list of strings")
        if not entry["data_citation"]:
            raise ModelError(f"model {name!r}: data_citation must cite at least one source")
        return cls(
            name=name,
            version=entry["version"],
            kind=entry["kind"],
            format=entry["format"],
            file=entry["file"],
            sha256=entry["sha256"],
            card=entry["card"],
            labels=tuple(entry["labels"]),
            input=InputSpec.from_dict(name, entry.get("input")),
            data_citation=tuple(entry["data_citation"]),
        )

    def to_entry(self) -> dict:
        """The JSON object of this record in models.json (the name is its key)."""
        entry = asdict(self)
        del entry["name"]
        return entry


def _is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) and v for v in value)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _registry_path(models_dir: Path | None) -> Path:
    return (Path(models_dir) if models_dir is not None else config.models_dir()) / REGISTRY_FILE


def _load_json(reg_path: Path) -> object:
    try:
        return json.loads(reg_path.read_text())
    except FileNotFoundError:
        raise ModelError(f"model registry not found: {reg_path}") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"model registry {reg_path} is unreadable: {e}") from None


def _read(reg_path: Path) -> dict:
    registry = _load_json(reg_path)
    if not isinstance(registry, dict):
        raise ModelError(f"model registry {reg_path} is unreadable: not a JSON object")
    return registry


def load_registry(models_dir: Path | None = None) -> dict[str, ModelRecord]:
    """Every entry of models.json as a typed record; ModelError on the first malformed one."""
    return {name: ModelRecord.from_entry(name, entry) for name, entry in _read(_registry_path(models_dir)).items()}


def model_record(name: str, models_dir: Path | None = None) -> ModelRecord:
    """The typed record of the registered model `name` (no file check: see `resolve_model`)."""
    reg_path = _registry_path(models_dir)
    registry = _read(reg_path)
    if name not in registry:
        raise ModelError(f"model {name!r} is not registered in {reg_path} (known: {', '.join(sorted(registry)) or 'none'})")
    return ModelRecord.from_entry(name, registry[name])


def resolve_model(name: str, models_dir: Path | None = None) -> Path:
    """Path of the registered model `name` after checking its sha256; ModelError otherwise.

    Needs only the entry's file and sha256, so a registry written by an older release still loads.
    """
    models_dir = Path(models_dir) if models_dir is not None else config.models_dir()
    reg_path = models_dir / REGISTRY_FILE
    registry = _load_json(reg_path)
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


def register(models_dir: Path, record: ModelRecord) -> None:
    """Add or replace `record` in models_dir/models.json, keeping every other entry as it is; the
    file is replaced atomically so a crash never leaves half a registry."""
    reg_path = Path(models_dir) / REGISTRY_FILE
    data = _read(reg_path) if reg_path.exists() and reg_path.read_text().strip() else {}
    data[record.name] = record.to_entry()
    tmp = reg_path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(reg_path)


def onnx_session(path: Path, *, threads: int = 1, denormal_as_zero: bool = False):
    """An ONNX Runtime CPU session for `path` with telemetry off; raises what ORT raises."""
    # Imported here: onnxruntime is heavy, and the registry is read by commands that load no model.
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
