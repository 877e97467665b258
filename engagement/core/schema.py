"""Every table of the database (SQLAlchemy Core, portable SQLite/PostgreSQL), in one place.

Analysis results, the privacy tables (consent, audit, receipts, keys) and the dashboard's
accounts, with every index the readers lean on. Nothing else declares a table or runs DDL: a
change here comes with a revision under `engagement/core/migrations/versions/`.

No table has a binary column: the store never holds image bytes, and a test checks every
column type to keep it so. No table holds a participant's identity (name, e-mail, NIP): only
keyed pseudonyms, which become unlinkable when their cohort key is destroyed.

Every time column is `UtcDateTime`: whatever is bound is stored as aware UTC (PostgreSQL would
read a naive value in its session time zone, e.g. Asia/Jakarta, 7 h off) and whatever is read
comes back aware UTC (SQLite returns naive text, PostgreSQL the session's zone).
"""

from __future__ import annotations

from datetime import datetime

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
    TypeDecorator,
)

from engagement.core.records import BLENDSHAPE_NAMES, EXPRESSION_LABELS, FEATURE_NAMES
from engagement.core.time import as_utc

# Bump with a new revision `v<N>` in engagement/core/migrations/versions/ when a table changes;
# `engagement.core.store` refuses a database from a newer version and upgrades older ones.
#   1: first release
#   2: runs.writer_pid / runs.writer_host (dead writers are detected and their runs reaped);
#      attention columns of window_features and class_timeline; runs.source_sha256;
#      the dashboard's covering indexes
#   3: per-second blendshape means of window_features (bs_<name>, MediaPipe Face Landmarker)
#   4: fatigue signals: window_features yawn, perclos, long_closures, blink_rate, blink_ms, smile;
#      class_timeline n_seen, n_yawns, perclos_share, smile_share
SCHEMA_VERSION = 6


class UtcDateTime(TypeDecorator):
    """A timezone-aware column that only ever binds and returns aware UTC (a naive value is
    taken to be UTC already, which is how every writer of this software produced them)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return as_utc(value) if isinstance(value, datetime) else value

    def process_result_value(self, value, dialect):
        return as_utc(value) if isinstance(value, datetime) else value


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
    Column("created_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime()),  # wall-clock start of the recording if known
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
    Column("started_at", UtcDateTime(), nullable=False),
    Column("finished_at", UtcDateTime()),
    Column("heartbeat_at", UtcDateTime()),
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
    # name a person's laptop). A `running` run whose writer is gone is reaped (engagement.app.reaper).
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
    Column("created_at", UtcDateTime(), nullable=False),  # for retention
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
# Fatigue (docs/attention.md, records.WindowFeatures), nullable: NULL where not measured, and
# `smile` always NULL where the profile forbids expressions.
window_columns += [
    Column("yawn", Integer),
    Column("perclos", Float),
    Column("long_closures", Integer),
    Column("blink_rate", Float),
    Column("blink_ms", Float),
    Column("smile", Integer),
]

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
    Column("created_at", UtcDateTime(), nullable=False),
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
    Column("created_at", UtcDateTime(), nullable=False),
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
    # Fatigue (timeline.py): participants with a face this second, yawns that began this second,
    # share of those with a PERCLOS figure whose PERCLOS is raised, share smiling; NULL below k.
    Column("n_seen", Integer),
    Column("n_yawns", Integer),
    Column("perclos_share", Float),
    Column("smile_share", Float),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(32), nullable=False),  # attention_drop | on_screen_drop | cameras_off_rise | fatigue_rising
    Column("start_second", Integer, nullable=False),
    Column("end_second", Integer, nullable=False),
    Column("magnitude", Float, nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

agenda_items = Table(
    "agenda_items",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", Integer, ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
    Column("start_second", Integer, nullable=False),
    Column("title", String(300), nullable=False),
)

# Agenda titles a researcher counts as one item across a cohort's sessions ("Studi kasus" and
# "Studi kasus pelayanan publik"): title -> the item it counts as. Per cohort (one cohort's
# "Diskusi" may be another's "Studi kasus"); "" stands for sessions without a cohort. Each change
# is audited (agenda_changed).
agenda_title_map = Table(
    "agenda_title_map",
    metadata,
    Column("cohort", String(100), primary_key=True),
    Column("title", String(300), primary_key=True),
    Column("mapped_to", String(300), nullable=False),
)


# -- dashboard ------------------------------------------------------------------------------------

# Sign-in accounts. Passwords are never stored: `password_hash` holds a self-describing scrypt
# string ("scrypt$n$r$p$salt_hex$hash_hex"), text so the no-binary-columns rule holds.
dashboard_users = Table(
    "dashboard_users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(32), nullable=False),  # facilitator | researcher | privacy_officer | admin
    Column("password_hash", String(300), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("disabled", Integer, nullable=False, default=0),
)

# Indexes the dashboard's queries lean on:
#  - class_timeline covering index: trends across 100 sessions read 720k seconds; with every
#    column they need in the index SQLite never touches the table (benchmarks/dashboard_load.py).
#  - window_features covering index: the attention distribution, the lanes and the sampled
#    per-person on-screen ratios read only these columns.
#  - engagement_estimates covering index: the sampled per-person scores behind the researcher's
#    intervals; without it each of 160k samples was a table row on a page of its own (rows are
#    written person by person) and the page took 2-3 s on 100 sessions.
#  - agenda by session: the facilitator page and every agenda-filtered trend look it up.
#  - alerts by run: the alerts of one session.
#  - runs by session/status: "latest visible run of each session" for the session list.
DASHBOARD_INDEXES = (
    Index(
        "ix_dash_timeline_cover2",
        class_timeline.c.run_id, class_timeline.c.second, class_timeline.c.score, class_timeline.c.n_present,
        class_timeline.c.n_tracked, class_timeline.c.suppressed, class_timeline.c.n_judged,
        class_timeline.c.on_screen_share, class_timeline.c.n_absent,
    ),
    Index(
        "ix_dash_window_attention",
        window_features.c.run_id, window_features.c.second, window_features.c.track_id,
        window_features.c.attention, window_features.c.on_screen_ratio,
    ),
    Index(
        "ix_dash_estimates_score",
        engagement_estimates.c.run_id, engagement_estimates.c.second, engagement_estimates.c.track_id,
        engagement_estimates.c.score,
    ),
    Index("ix_dash_agenda_session", agenda_items.c.session_id, agenda_items.c.start_second),
    Index("ix_dash_alerts_run", alerts.c.run_id, alerts.c.start_second),
    Index("ix_dash_runs_session", runs.c.session_id, runs.c.status, runs.c.id),
)

# -- privacy --------------------------------------------------------------------------------------

# One row per consent given by a participant for one scope, or per attestation by a facilitator
# that everyone present in a session consented. Rows are never updated except to set
# `withdrawn_at`, so the table is itself the evidence of who consented to what and when.
consent_records = Table(
    "consent_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # participant | attestation
    Column("cohort", String(64), nullable=False),
    # participant: the participant's pseudonym; attestation: NULL (the attestation covers
    # whoever was present; their tracks get session-scoped pseudonyms).
    Column("participant", String(64)),
    Column("session_name", String(200)),  # attestation only
    Column("attested_by", String(64)),  # attestation only: the facilitator's pseudonym
    Column("scope", String(32), nullable=False),  # facilitator_feedback | research
    Column("notice_version", String(64), nullable=False),
    Column("language", String(8), nullable=False),
    Column("evidence", String(300), nullable=False),  # where the signed form / click log lives
    Column("granted_at", UtcDateTime(), nullable=False),
    Column("withdrawn_at", UtcDateTime()),
    Column("created_at", UtcDateTime(), nullable=False),
    Index("ix_consent_participant", "participant"),
    Index("ix_consent_session", "session_name"),
)

# Append-only, hash-chained. `seq` is assigned by the writer (last + 1) rather than by the
# database so that two concurrent writers collide on the primary key instead of forking the chain.
audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("action", String(32), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("details", Text, nullable=False),  # canonical JSON; pseudonyms only
    Column("correlation_id", String(64)),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

# Where the chain starts after the audit tier's retention removed its oldest entries: the seq
# and hash of the last removed entry, so `audit verify` can still check the first remaining link.
audit_checkpoint = Table(
    "audit_checkpoint",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # always 1
    Column("seq", Integer, nullable=False),
    Column("hash", String(64), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
)

# Receipts of purges, erasures and withdrawals: what was deleted (counts only), when, under which
# policy. The same JSON also goes to a file under data_dir()/receipts/.
purge_receipts = Table(
    "purge_receipts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # purge | erasure | withdrawal
    Column("at", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("trigger", String(32), nullable=False),  # cli | analyze | dashboard | api
    Column("policy_hash", String(64)),
    Column("subject", String(64)),  # pseudonym for erasure/withdrawal, NULL for purges
    Column("counts_json", Text, nullable=False),
    Column("cutoffs_json", Text),
)

# Lifecycle of cohort keys: created / destroyed, with a fingerprint (never the key itself), so an
# auditor can see which key generation a pseudonym came from and that a destruction happened.
cohort_key_events = Table(
    "cohort_key_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("cohort", String(64), nullable=False),
    Column("event", String(16), nullable=False),  # created | destroyed
    Column("fingerprint", String(16), nullable=False),
    Column("at", UtcDateTime(), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

# The policy hash last seen, so a changed retention/compliance policy is audited once.
privacy_state = Table(
    "privacy_state",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)
