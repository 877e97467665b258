"""The temporal engagement model on ONNX Runtime (numpy only, never torch).

Streaming signature of the ONNX graph: inputs x, mask (batch, time, features) and h0
(members, batch, hidden); outputs score (batch, time) in [0, 1], levels (batch, time, 4)
probabilities of the ordinal levels 0-3, uncertainty (batch, time) = std of the level
distribution on the score scale, and hN. Feeding a sequence in pieces with hN -> h0 gives the
same outputs as feeding it whole. Inputs are raw segment statistics (features.py); the
normalisation is part of the graph and documented in its metadata.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engagement.errors import ModelError
from engagement.registry import default_models_dir, onnx_session, resolve_model, sha256_file  # noqa: F401
from engagement.temporal.features import INPUT_NAMES, N_ATTENTION, N_INPUTS

DEFAULT_MODEL = "engagement-gru.v1"
_REQUIRED = ("version", "input_names", "normalisation", "level_values", "members", "hidden")


@dataclass(frozen=True)
class StepOutput:
    score: np.ndarray  # (batch, time)
    levels: np.ndarray  # (batch, time, 4)
    uncertainty: np.ndarray  # (batch, time)
    state: np.ndarray  # (members, batch, hidden)


class TemporalModel:
    """ONNX Runtime session plus the input transform recorded in the model's metadata."""

    def __init__(self, session, path: Path, metadata: dict[str, str]) -> None:
        self._session = session
        self.path = path
        self.metadata = metadata
        self.name = metadata.get("name", DEFAULT_MODEL)
        self.version = metadata["version"]
        self.sha256 = sha256_file(path)
        names = tuple(json.loads(metadata["input_names"]))
        if names != INPUT_NAMES:
            raise ModelError(f"model {path} expects inputs {names}, this code computes {INPUT_NAMES}")
        # Normalisation is inside the graph (per ensemble member); the metadata documents it.
        self.normalisation = json.loads(metadata["normalisation"])
        if not self.normalisation.get("in_graph"):
            raise ModelError(f"model {path} expects normalised inputs; this runtime feeds raw statistics")
        self.members = int(metadata["members"])
        self.hidden = int(metadata["hidden"])
        self.expression_trained = metadata.get("expression_trained", "false") == "true"
        self.level_values = np.asarray(json.loads(metadata["level_values"]), dtype=np.float64)

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

    def effective_mask(self, mask: np.ndarray, use_expression: bool) -> np.ndarray:
        """Mask the expression channel unless the model learned it and the profile allows it."""
        mask = np.asarray(mask, dtype=np.float32).copy()
        if not (use_expression and self.expression_trained):
            mask[..., N_ATTENTION:] = 0.0
        return mask

    def run(self, x: np.ndarray, mask: np.ndarray, state: np.ndarray | None = None) -> StepOutput:
        """Run (batch, time, N_INPUTS) raw segment statistics and masks from `state` (None: start)."""
        x = np.asarray(x, dtype=np.float32)
        mask = np.asarray(mask, dtype=np.float32)
        if x.ndim != 3 or x.shape[-1] != N_INPUTS or mask.shape != x.shape:
            raise ValueError(f"x and mask must both be (batch, time, {N_INPUTS}), got {x.shape} and {mask.shape}")
        if state is None:
            state = self.initial_state(x.shape[0])
        # Masked or non-finite entries become 0 with mask 0: the graph ignores them either way,
        # but a NaN times 0 is still NaN.
        bad = ~np.isfinite(x)
        mask = np.where(bad, 0.0, mask).astype(np.float32)
        z = np.where(mask > 0, x, 0.0).astype(np.float32)
        score, levels, unc, hn = self._session.run(
            None, {"x": z, "mask": mask, "h0": np.asarray(state, dtype=np.float32)}
        )
        return StepOutput(score, levels, unc, hn)
