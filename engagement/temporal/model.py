"""The temporal engagement model on ONNX Runtime (numpy only, never torch).

Streaming signature of the ONNX graph: inputs x, mask (batch, time, features) and h0
(members, batch, hidden); outputs score (batch, time) in [0, 1], levels (batch, time, 4)
probabilities of the ordinal levels 0-3, uncertainty (batch, time) = std of the level
distribution on the score scale, and hN. Feeding a sequence in pieces with hN -> h0 gives the
same outputs as feeding it whole. Inputs are raw segment statistics (features.py); the
normalisation is part of the graph and documented in its metadata. No model here reads the
expression CNN's output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engagement.core.errors import ModelError
from engagement.core.registry import onnx_session, resolve_model, sha256_file
from engagement.temporal.features import INPUT_NAMES, N_INPUTS

DEFAULT_MODEL = "engagement-linear.v2"
# The ordinal levels of the `levels` output, in order (the registry's labels of a temporal model).
LEVEL_LABELS: tuple[str, ...] = ("disengaged", "barely engaged", "engaged", "highly engaged")
_REQUIRED = ("version", "input_names", "normalisation", "level_values", "members", "hidden")


@dataclass(frozen=True)
class StepOutput:
    score: np.ndarray  # (batch, time)
    levels: np.ndarray  # (batch, time, 4)
    uncertainty: np.ndarray  # (batch, time)
    state: np.ndarray  # (members, batch, hidden)


class TemporalModel:
    """ONNX Runtime session plus the model's inputs and transform as recorded in its metadata.

    `run` takes every input features.py computes (N_INPUTS columns, INPUT_NAMES order) and feeds
    the graph the columns it was trained on. An input of the graph that the model was *not*
    trained on (`trained_inputs` metadata; engagement-gru.v1's untrained expression channel) is
    fed as missing, never as a value.
    """

    def __init__(self, session, path: Path, metadata: dict[str, str]) -> None:
        self._session = session
        self.path = path
        self.metadata = metadata
        self.name = metadata.get("name", DEFAULT_MODEL)
        self.version = metadata["version"]
        self.sha256 = sha256_file(path)
        self.input_names = tuple(json.loads(metadata["input_names"]))
        trained = set(json.loads(metadata.get("trained_inputs", metadata["input_names"])))
        unknown = sorted(n for n in trained if n not in INPUT_NAMES)
        if unknown:
            raise ModelError(f"model {path} was trained on inputs this code does not compute: {unknown}")
        # Graph column -> column of the computed inputs, or -1 for an untrained (always missing) one.
        self._columns = np.array([INPUT_NAMES.index(n) if n in trained else -1 for n in self.input_names])
        # Normalisation is inside the graph (per ensemble member); the metadata documents it.
        self.normalisation = json.loads(metadata["normalisation"])
        if not self.normalisation.get("in_graph"):
            raise ModelError(f"model {path} expects normalised inputs; this runtime feeds raw statistics")
        self.members = int(metadata["members"])
        self.hidden = int(metadata["hidden"])
        self.level_values = np.asarray(json.loads(metadata["level_values"]), dtype=np.float64)
        # The screen cone (yaw, pitch half-angles) the engagewild on-screen share was computed with.
        cone = metadata.get("screen_cone_rad")
        self.screen_cone: tuple[float, ...] | None = tuple(json.loads(cone)) if cone else None

    @classmethod
    def load(cls, name: str = DEFAULT_MODEL, models_dir: Path | None = None) -> "TemporalModel":
        return cls.from_file(resolve_model(name, models_dir))

    @classmethod
    def from_file(cls, path: Path) -> "TemporalModel":
        """Load without the registry check (tests, experiments); prefer `load`."""
        try:
            session = onnx_session(path)
        except Exception as e:  # ORT raises its own types, one per failure kind
            raise ModelError(f"cannot load temporal model {path}: {str(e).strip()[:200]}") from None
        meta = dict(session.get_modelmeta().custom_metadata_map)
        missing = [k for k in _REQUIRED if k not in meta]
        if missing:
            raise ModelError(f"model {path} lacks metadata {missing}; not a temporal engagement model")
        return cls(session, Path(path), meta)

    def initial_state(self, batch: int = 1) -> np.ndarray:
        return np.zeros((self.members, batch, self.hidden), dtype=np.float32)

    def observes(self, mask: np.ndarray) -> bool:
        """Whether any input this model was trained on is measured in `mask` (N_INPUTS,)."""
        used = self._columns[self._columns >= 0]
        return bool(np.asarray(mask)[used].any())

    def run(self, x: np.ndarray, mask: np.ndarray, state: np.ndarray | None = None) -> StepOutput:
        """Run (batch, time, N_INPUTS) raw segment statistics and masks (features.py) from `state`
        (None: start)."""
        x = np.asarray(x, dtype=np.float32)
        mask = np.asarray(mask, dtype=np.float32)
        if x.ndim != 3 or x.shape[-1] != N_INPUTS or mask.shape != x.shape:
            raise ValueError(f"x and mask must both be (batch, time, {N_INPUTS}), got {x.shape} and {mask.shape}")
        if state is None:
            state = self.initial_state(x.shape[0])
        used = self._columns >= 0
        cols = np.where(used, self._columns, 0)
        x, mask = x[..., cols], mask[..., cols] * used
        # Masked or non-finite entries become 0 with mask 0: the graph ignores them either way,
        # but a NaN times 0 is still NaN.
        mask = np.where(np.isfinite(x), mask, 0.0).astype(np.float32)
        z = np.where(mask > 0, x, 0.0).astype(np.float32)
        score, levels, unc, hn = self._session.run(
            None, {"x": z, "mask": mask, "h0": np.asarray(state, dtype=np.float32)}
        )
        return StepOutput(score, levels, unc, hn)
