"""Where things live and the options of an analysis run.

Every location can be overridden: `ENGAGEMENT_DATA_DIR` (database, keys, receipts),
`ENGAGEMENT_DB` (an SQLAlchemy URL, e.g. postgresql://...), `ENGAGEMENT_MODELS_DIR`,
`ENGAGEMENT_SHARED_DATA` (the public training/test data, read by path, never copied).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
from importlib import resources
from dataclasses import asdict, dataclass, field
from pathlib import Path

from engagement.core.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """The user's data directory (SQLite database, cohort keys, purge receipts, policy)."""
    env = os.environ.get("ENGAGEMENT_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "engagement"


def has_display() -> bool:
    """Whether this machine shows windows to its user: Windows and macOS always do for a signed-in
    user; Linux only inside a graphical session (X11 or Wayland)."""
    if not sys.platform.startswith("linux"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def default_db_url() -> str:
    env = os.environ.get("ENGAGEMENT_DB")
    if env:
        return env
    return f"sqlite:///{data_dir() / 'engagement.db'}"


def models_dir() -> Path:
    """Where the shipped models are: ENGAGEMENT_MODELS_DIR if set (a site's own copy), else the
    package data `engagement.models` of an installed wheel or an editable install, else the
    models/ folder of a source checkout run without installing."""
    env = os.environ.get("ENGAGEMENT_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    return _packaged_models() or REPO_ROOT / "models"


def _packaged_models() -> Path | None:
    # engagement.models is a data-only namespace package (setup.py maps models/ onto it); on a
    # source tree that is only on sys.path it does not exist, hence the fallback above.
    try:
        registry = resources.files("engagement.models") / "models.json"
    except ModuleNotFoundError:
        return None
    return Path(str(registry)).parent if registry.is_file() else None


def shared_data_dir() -> Path:
    env = os.environ.get("ENGAGEMENT_SHARED_DATA")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class AttentionOptions:
    """How attention is judged. Defaults describe a participant at a laptop.

    The screen cone: a 15.6-inch 16:9 laptop screen is about 34 x 19 cm; seen from 60 cm it spans
    +-15.8 deg across and +-9.0 deg up/down around its centre. `margin_deg` widens both for the
    estimate's own noise (docs/attention.md: 95 % of a still participant's frames lie within
    about 5 deg of their median gaze).
    """

    screen_width_cm: float = 34.0
    screen_height_cm: float = 19.0
    viewing_distance_cm: float = 60.0
    margin_deg: float = 3.0
    # Screen direction: median over the last `history_s` of samples taken every `sample_ms`; not
    # judged (state unknown) until `warmup_s` of samples exist. 5 minutes means a look away must
    # last over 2.5 minutes before it could be taken for the screen.
    history_s: float = 300.0
    sample_ms: float = 200.0
    warmup_s: float = 3.0
    # Eyes closed: openness (EAR) below `closed_fraction` of the participant's own open level (the
    # `open_percentile` of their recent openness) for at least `min_closed_ms`; shorter is a blink.
    # The open level is trusted only once it reaches `min_open_ear` (eyes seen open at all: open
    # eyes on the shared clips read 0.2-0.38, closed ones under 0.12).
    closed_fraction: float = 0.4
    open_percentile: float = 90.0
    min_open_ear: float = 0.15
    min_closed_ms: float = 400.0
    # Measurable face: inter-ocular distance, sharpness (variance of the Laplacian of the face
    # resized to 96 px) and mean brightness (0-255) at least these (docs/attention.md).
    min_face_px: float = 20.0
    min_sharpness: float = 40.0
    min_brightness: float = 30.0
    # Camera or seat moved: for `move_confirm_s`, the head (its turning point, which a head turn
    # leaves in place) is seen more than `move_deg` off its earlier median direction from the
    # camera, or more than `move_scale` nearer or farther; then the screen direction is learned
    # again from the frames since the move. A camera tilted by less than `move_deg` shifts the
    # screen by less than that, mostly still inside the cone.
    move_deg: float = 8.0
    move_scale: float = 0.25
    move_confirm_s: float = 5.0

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ConfigError(f"attention option {name} must be a number, got {value!r}")
        positive = ("screen_width_cm", "screen_height_cm", "viewing_distance_cm", "history_s", "sample_ms",
                    "move_deg", "move_scale", "move_confirm_s")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"attention option {name} must be positive, got {getattr(self, name)}")
        for name in ("margin_deg", "warmup_s", "min_open_ear", "min_closed_ms", "min_face_px", "min_sharpness",
                     "min_brightness"):
            if getattr(self, name) < 0:
                raise ConfigError(f"attention option {name} cannot be negative, got {getattr(self, name)}")
        if not 0 < self.closed_fraction < 1:
            raise ConfigError(f"closed_fraction must be between 0 and 1, got {self.closed_fraction}")
        if not 50 <= self.open_percentile <= 100:
            raise ConfigError(f"open_percentile must be between 50 and 100, got {self.open_percentile}")
        if self.warmup_s >= self.history_s:
            raise ConfigError("the warm-up must be shorter than the history the screen direction is learned from")

    @property
    def half_width(self) -> float:
        """Horizontal half-angle of the screen cone, radians."""
        return math.atan(self.screen_width_cm / 2 / self.viewing_distance_cm) + math.radians(self.margin_deg)

    @property
    def half_height(self) -> float:
        """Vertical half-angle of the screen cone, radians."""
        return math.atan(self.screen_height_cm / 2 / self.viewing_distance_cm) + math.radians(self.margin_deg)


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


def settings_hash(settings: dict) -> str:
    """sha256 of a JSON-able settings record, independent of key order."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def parse_sample_fps(text: str) -> float:
    """Parse the --sample-fps flag: a positive number of frames per second."""
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"--sample-fps must be a number of frames per second, got {text!r}") from None
    if not (0 < value <= 240) or value != value:
        raise ConfigError(f"--sample-fps must be between 0 and 240, got {text!r}")
    return value
