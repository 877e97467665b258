"""Where things live and the options of an analysis run.

Every location can be overridden: `ENGAGEMENT_DATA_DIR` (database, keys, receipts),
`ENGAGEMENT_DB` (an SQLAlchemy URL, e.g. postgresql://...), `ENGAGEMENT_MODELS_DIR`,
`ENGAGEMENT_SHARED_DATA` (the public training/test data, read by path, never copied).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engagement.errors import ConfigError
from engagement.vision.attention import AttentionOptions

REPO_ROOT = Path(__file__).resolve().parent.parent


def data_dir() -> Path:
    """The user's data directory (SQLite database, cohort keys, purge receipts, policy)."""
    env = os.environ.get("ENGAGEMENT_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "engagement"


def default_db_url() -> str:
    env = os.environ.get("ENGAGEMENT_DB")
    if env:
        return env
    return f"sqlite:///{data_dir() / 'engagement.db'}"


def models_dir() -> Path:
    env = os.environ.get("ENGAGEMENT_MODELS_DIR")
    return Path(env) if env else REPO_ROOT / "models"


def shared_data_dir() -> Path:
    env = os.environ.get("ENGAGEMENT_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class AnalysisOptions:
    """Knobs of the vision + window stages; their hash is stored with every run."""

    sample_fps: float | None = None  # None: every frame of the source
    max_faces: int = 8
    # 0.6: the Tasks Face Landmarker's detector took a blurred sky for a face at 0.5 on the
    # shared face_noface clip; 0.6 drops it and loses no face frame on the shared clips.
    min_detection_confidence: float = 0.6
    min_tracking_confidence: float = 0.5
    lost_track_s: float = 3.0  # a face gone for less than this keeps its track id
    window_ms: int = 1000
    expression: bool = True  # the compliance profile may switch this off
    # The expression CNN runs on each face at most this often; only per-second means are stored,
    # so every frame would cost CPU for almost no change in them (see the model card). None: every frame.
    expression_hz: float | None = 5.0
    attention: AttentionOptions = field(default_factory=AttentionOptions)  # screen cone, warm-up: docs/attention.md

    def __post_init__(self) -> None:
        if self.sample_fps is not None and not (0 < self.sample_fps <= 240):
            raise ConfigError(f"sample fps must be a number between 0 and 240, got {self.sample_fps}")
        if not 1 <= self.max_faces <= 64:
            raise ConfigError(f"max faces must be between 1 and 64, got {self.max_faces}")
        if self.lost_track_s < 0:
            raise ConfigError("lost track time cannot be negative")
        if self.window_ms < 100:
            raise ConfigError("window must be at least 100 ms")
        if self.expression_hz is not None and not (0 < self.expression_hz <= 240):
            raise ConfigError(f"expression rate must be between 0 and 240 per second, got {self.expression_hz}")

    def to_dict(self) -> dict:
        return asdict(self)

    def config_hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()


def parse_sample_fps(text: str) -> float:
    """Parse the --sample-fps flag: a positive number of frames per second."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--sample-fps must be a number of frames per second, got {text!r}") from None
    if not (0 < value <= 240) or value != value:
        raise ConfigError(f"--sample-fps must be between 0 and 240, got {text!r}")
    return value
