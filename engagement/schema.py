"""The database schema of the analysis results (SQLAlchemy Core, portable SQLite/PostgreSQL).

Privacy tables (consent, audit, receipts) are declared in `privacy.tables` on the same
`metadata`. No table has a binary column: the store never holds image bytes, and a test
checks every column type to keep it so.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

from engagement.records import BLENDSHAPE_NAMES, EXPRESSION_LABELS, FEATURE_NAMES

# Bump when a table changes; `engagement.store` refuses a database from a newer version
# and migrates older ones (`engagement.migration`: new tables, new nullable columns, new
# indexes, after a backup of an SQLite file).
#   1: first release
#   2: runs.writer_pid / runs.writer_host (dead writers are detected and their runs reaped);
#      attention columns of window_features and class_timeline; runs.source_sha256
#   3: per-second blendshape means of window_features (bs_<name>, MediaPipe Face Landmarker)
SCHEMA_VERSION = 3

metadata = MetaData()

meta = Table(
    "meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("cohort", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("started_at", DateTime(timezone=True)),  # wall-clock start of the recording if known
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", Integer, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    # running -> complete | failed | interrupted. Only `complete` (and `running` for a live
    # view) runs are read by exports and the dashboard; others keep no per-second rows.
    Column("status", String(16), nullable=False),
    Column("mode", String(16), nullable=False),  # file | live
    Column("source", String(300), nullable=False),  # file name or camera/screen spec, never a path
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("heartbeat_at", DateTime(timezone=True)),
    Column("software_version", String(40), nullable=False),
    Column("profile", String(32), nullable=False),
    Column("config_json", Text, nullable=False),
    Column("config_hash", String(64), nullable=False),
    Column("models_json", Text, nullable=False),  # {"name": {"version", "sha256"}}
    Column("frames_read", Integer, nullable=False, default=0),
    Column("frames_analysed", Integer, nullable=False, default=0),
    Column("seconds", Integer, nullable=False, default=0),
    Column("error", Text),
    # Which process writes the run: its pid and a hash of its host name (the name itself can
    # name a person's laptop). A `running` run whose writer is gone is reaped (engagement.reaper).
    Column("writer_pid", Integer),
    Column("writer_host", String(64)),
    # sha256 of the analysed file's bytes (file runs only): `engagement batch` skips a recording
    # already analysed with the same content and settings, and an export names the data it came from.
    Column("source_sha256", String(64)),
)

tracks = Table(
    "tracks",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("label", String(32), nullable=False),  # anonymous, e.g. "T1"; stable within a run
    Column("participant", String(64)),  # consented participant's pseudonym, if tied
    Column("first_second", Integer, nullable=False),
    Column("last_second", Integer, nullable=False),
    # When the face was first/last seen, in ms from the start of the source (finer than seconds).
    Column("first_seen_ms", Float),
    Column("last_seen_ms", Float),
    Column("present_seconds", Integer, nullable=False, default=0),
    Index("ix_tracks_run", "run_id"),
)

window_columns = [
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("track_id", Integer, ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True),
    Column("second", Integer, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),  # for retention
    Column("n_frames", Integer, nullable=False),
    Column("n_face", Integer, nullable=False),
    Column("present_ratio", Float, nullable=False),
    Column("blinks", Integer, nullable=False),
]
for _name in FEATURE_NAMES:
    window_columns.append(Column(f"{_name}_mean", Float))
    window_columns.append(Column(f"{_name}_std", Float))
for _label in EXPRESSION_LABELS:
    window_columns.append(Column(f"expr_{_label}", Float))
# Attention signals (docs/attention.md). Nullable, so an older database gains them by
# ALTER TABLE ADD COLUMN; the ratios are NULL when no frame of the second could be judged.
window_columns += [
    Column("on_screen_ratio", Float),
    Column("eyes_closed_ratio", Float),
    Column("attention", String(16)),  # on_screen | looking_away | eyes_closed | absent | unknown
]
# Per-second mean of each Face Landmarker blendshape score (0-1). Nullable like the above; the
# expression ones (brow, cheek, jaw, mouth, nose) stay NULL where the profile forbids expressions.
window_columns += [Column(f"bs_{_name}", Float) for _name in BLENDSHAPE_NAMES]

window_features = Table(
    "window_features",
    metadata,
    *window_columns,
    Index("ix_window_run_second", "run_id", "second"),
)

# Output of the temporal model per track and window. state: engaged levels come with a
# score; `absent` (no face) and `unknown` (face but too little signal) have NULL scores.
engagement_estimates = Table(
    "engagement_estimates",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("track_id", Integer, ForeignKey("tracks.id", ondelete="CASCADE"), primary_key=True),
    Column("second", Integer, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),  # present | absent | unknown
    Column("score", Float),
    Column("level", Integer),
    Column("p_level0", Float),
    Column("p_level1", Float),
    Column("p_level2", Float),
    Column("p_level3", Float),
    Column("uncertainty", Float),
    Index("ix_estimates_run_second", "run_id", "second"),
)

# Class-level timeline: mean over present consenting participants, NULL score when fewer than
# k were present (suppressed, so a single person cannot be singled out).
class_timeline = Table(
    "class_timeline",
    metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("second", Integer, primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("n_present", Integer, nullable=False),
    Column("n_tracked", Integer, nullable=False),
    Column("score", Float),
    Column("suppressed", Integer, nullable=False, default=0),
    # Attention (docs/attention.md), nullable so older databases gain them by ALTER TABLE:
    # participants whose attention could be judged, the mean share of them on screen, and the
    # count of cameras off / faces lost; the last two NULL when fewer than k stand behind them.
    Column("n_judged", Integer),
    Column("on_screen_share", Float),
    Column("n_absent", Integer),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),  # attention_drop | on_screen_drop | cameras_off_rise
    Column("start_second", Integer, nullable=False),
    Column("end_second", Integer, nullable=False),
    Column("magnitude", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

agenda_items = Table(
    "agenda_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", Integer, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("start_second", Integer, nullable=False),
    Column("title", String(300), nullable=False),
)
