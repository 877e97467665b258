"""Tidy per-second exports (one row per track and second) with a schema and a manifest.

An export is research use: it keeps only participants with an active `research` consent at the
moment of export (their own consent, or for an attested track its session's attestation),
filtered in the query; the manifest says how many were left out and why (docs/privacy.md).

The manifest makes an export reproducible: software version, the run's configuration and its
hash, the models (version, sha256) that produced the numbers, and the sha256 of the data file.
It describes the run only from the run's row (`runs.source` holds no file name), never from
the recording itself. CSV text cells are neutralised against spreadsheet formula injection.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select

from engagement import __version__
from engagement.core import schema
from engagement.core.errors import ConfigError, StoreError
from engagement.core.records import BLENDSHAPE_NAMES, EXPRESSION_LABELS, EYE_BLENDSHAPES, FEATURE_NAMES
from engagement.core.registry import sha256_file
from engagement.core.repositories import runs as run_rows
from engagement.core.store import Store
from engagement.core.time import utcnow
from privacy.consent import track_consented

if TYPE_CHECKING:  # pandas is imported where a table is built: `engagement analyze` never needs it
    import pandas as pd

FORMATS = ("csv", "parquet")
RESEARCH_SCOPE = "research"
# OWASP "CSV injection": a cell starting with one of these is read as a formula by spreadsheets.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

_UNITS = {
    "head_yaw": "rad", "head_pitch": "rad", "head_roll": "rad", "head_tz": "mm",
    "gaze_yaw": "rad", "gaze_pitch": "rad", "eye_open_left": "ratio", "eye_open_right": "ratio",
    "face_size": "px", "blur": "laplacian variance", "brightness": "grey level 0-255",
}  # fmt: skip


# Fatigue (docs/attention.md, "Fatigue"): physical states under every profile, but `smile`.
FATIGUE_SCHEMA = [
    ("yawn", "int", "0/1",
     "1 when a yawn was in progress this second (mouth held wide open for 1.5 s or more with the eyes "
     "narrowing; flagged from 1.5 s into it); 0 when not; empty when absent"),
    ("perclos", "float", "ratio 0-1",
     "share of the last minute's frames with readable eyes in which the eyes were below the closed level "
     "(40 % of the participant's own open-eye openness); empty with under 15 s of readable eyes"),
    ("long_closures", "int", "count",
     "eye closures of 0.5-3 s that ended this second (shorter is a blink, longer is eyes closed)"),
    ("blink_rate", "float", "per minute",
     "eye closures under 0.5 s in the last minute, per minute of face present; empty with under 15 s "
     "of readable eyes"),
    ("blink_ms", "float", "ms",
     "mean duration of those blinks (first closed frame to first open frame: at 30 fps +-33 ms); empty "
     "when none"),
    ("smile", "int", "0/1",
     "1 when the expression CNN's mean 'happy' and the mean mouthSmile blendshape of the second are both "
     "0.5 or more; an expression, not a physical state: empty under eu-ai-act"),
]  # fmt: skip


def column_schema() -> list[dict[str, str]]:
    """Name, type, unit and meaning of every exported column, in order."""
    cols = [
        ("session", "string", "", "session name"),
        ("run_id", "int", "", "analysis run that produced the row"),
        ("track", "string", "", "anonymous track label within the run (T1, T2, ...)"),
        ("participant", "string", "", "pseudonym of the consenting participant (keyed HMAC), never a name"),
        ("second", "int", "s", "window index from the start of the recording (window = [second, second+1))"),
        ("n_frames", "int", "frames", "frames analysed in the window"),
        ("n_face", "int", "frames", "frames in which this participant's face was found"),
        ("present_ratio", "float", "ratio", "n_face / n_frames"),
        ("blinks", "int", "count", "blinks completed in the window"),
    ]
    for name in FEATURE_NAMES:
        unit = _UNITS.get(name, "ratio of inter-ocular distance" if name.startswith("lid_") else "")
        cols.append((f"{name}_mean", "float", unit, f"mean of {name} over the window's face frames; empty when absent"))
        cols.append((f"{name}_std", "float", unit, f"population std of {name} over the window; empty when absent"))
    for label in EXPRESSION_LABELS:
        cols.append((f"expr_{label}", "float", "probability", f"mean probability of '{label}'; empty when not computed"))
    cols += [
        ("on_screen_ratio", "float", "ratio 0-1",
         "share of the second's judged frames whose gaze (head pose + eyes) lies inside the participant's "
         "screen cone; empty when no frame could be judged (absent, unmeasurable face, screen direction "
         "still being learned)"),
        ("eyes_closed_ratio", "float", "ratio 0-1",
         "share of judged frames with the eyes closed longer than a blink (openness below a fraction of the "
         "participant's own open-eye level); empty when no frame could be judged"),
        ("attention", "string", "",
         "state of the second: on_screen | looking_away | eyes_closed | absent (no face) | unknown (face "
         "seen but not measurable); a physical state, not an emotion (docs/attention.md)"),
    ]
    for name in BLENDSHAPE_NAMES:
        kind = "eye state (every profile)" if name in EYE_BLENDSHAPES else "expression (empty under eu-ai-act)"
        cols.append((f"bs_{name}", "float", "score 0-1",
                     f"mean over the second's face frames of MediaPipe Face Landmarker's '{name}' blendshape; "
                     f"{kind}; empty when absent or not measured"))  # fmt: skip
    cols += FATIGUE_SCHEMA
    cols += [
        ("state", "string", "", "present | absent | unknown (absent/unknown are never low engagement)"),
        ("score", "float", "0-1", "engagement score from the temporal model; empty unless present"),
        ("level", "int", "0-3", "most likely engagement level (0 disengaged ... 3 highly engaged)"),
        ("uncertainty", "float", "", "model uncertainty of the score"),
    ]
    return [{"name": n, "type": t, "unit": u, "description": d} for n, t, u, d in cols]


@dataclass(frozen=True)
class ExportResult:
    data: Path
    manifest: Path
    schema: Path
    rows: int
    excluded: int = 0  # participants left out for want of research consent


def excluded_participants(store: Store, run_id: int, at: datetime) -> dict[str, int]:
    """How many of the run's participants a research export leaves out, by reason."""
    return {k: v for k, v in research_consent_counts(store, run_id, at).items() if k != "research"}


def research_consent_counts(store: Store, run_id: int, at: datetime | None = None) -> dict[str, int]:
    """The run's participants by what a research export does with them: kept ("research"), or
    left out for want of a research consent, or of any active consent. What the dashboard says
    per session before a download (a file with a header only otherwise surprised researchers)."""
    at = at or utcnow()
    t = schema.tracks
    query = (
        select(t.c.participant, track_consented(RESEARCH_SCOPE, at).label("research"),
               track_consented(None, at).label("other"))
        .where(t.c.run_id == run_id)
        .distinct()
    )
    with store.transaction() as conn:
        people: dict[str | None, tuple[bool, bool]] = {}
        for row in conn.execute(query):
            seen = people.get(row.participant, (False, False))
            people[row.participant] = (seen[0] or bool(row.research), seen[1] or bool(row.other))
    out = {"research": 0, "no_research_consent": 0, "no_active_consent": 0}
    for research, other in people.values():
        out["research" if research else "no_research_consent" if other else "no_active_consent"] += 1
    return out


def research_preview(store: Store, session: str, at: datetime | None = None) -> dict[str, int]:
    """`research_consent_counts` of the run a session's export would use (its newest complete run)."""
    return research_consent_counts(store, int(run_rows.latest_run(store, session)["id"]), at)


def session_frame(store: Store, session: str, at: datetime | None = None) -> tuple[pd.DataFrame, dict]:
    """The tidy table of a session's newest complete run, research-consented participants only
    (consent active at `at`, default now), and that run's row."""
    import pandas as pd

    run = run_rows.latest_run(store, session)
    at = at or utcnow()
    w, t, e = schema.window_features, schema.tracks, schema.engagement_estimates
    window_cols = [c for c in w.c if c.name not in ("run_id", "track_id", "created_at")]
    query = (
        select(
            t.c.label.label("track"),
            t.c.participant,
            *window_cols,
            e.c.state,
            e.c.score,
            e.c.level,
            e.c.uncertainty,
        )
        .join(t, t.c.id == w.c.track_id)
        .outerjoin(e, (e.c.track_id == w.c.track_id) & (e.c.second == w.c.second))
        .where(w.c.run_id == run["id"], track_consented(RESEARCH_SCOPE, at))
        .order_by(t.c.id, w.c.second)
    )
    with store.transaction() as conn:
        frame = pd.DataFrame(conn.execute(query).mappings().all())
    if frame.empty:
        frame = pd.DataFrame(columns=[c["name"] for c in column_schema() if c["name"] not in ("session", "run_id")])
    frame.insert(0, "session", session)
    frame.insert(1, "run_id", run["id"])
    return frame[[c["name"] for c in column_schema()]], run


def safe_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "session"


def neutralise_formula(value):
    """A text cell a spreadsheet would run as a formula gets a leading apostrophe (OWASP), which
    spreadsheets display as text; anything else is returned unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    text = [c["name"] for c in column_schema() if c["type"] == "string" and c["name"] in frame.columns]
    out = frame.copy()
    for name in text:
        out[name] = out[name].map(neutralise_formula)
    return out


def _write_table(frame: pd.DataFrame, fmt: str, data_path: Path) -> None:
    """Write to a temporary name and rename, so an interrupted export never leaves a file that
    looks complete."""
    tmp = data_path.with_suffix(data_path.suffix + ".part")
    try:
        if fmt == "csv":
            _csv_safe(frame).to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        tmp.replace(data_path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {data_path}: {exc.strerror}") from None


def export_session(store: Store, session: str, fmt: str, out_dir: Path) -> ExportResult:
    if fmt not in FORMATS:
        raise ConfigError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    at = utcnow()
    frame, run = session_frame(store, session, at)
    excluded = excluded_participants(store, int(run["id"]), at)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the export directory {out_dir}: {exc.strerror}") from None
    stem = safe_stem(session)
    data_path = out_dir / f"{stem}.{fmt}"
    _write_table(frame, fmt, data_path)
    schema_path = out_dir / f"{stem}.schema.json"
    schema_path.write_text(json.dumps({"columns": column_schema()}, indent=2))
    manifest = {
        "software": {"name": "engagement", "version": __version__},
        "exported_at": at.isoformat(),
        "session": session,
        "consent": {
            "rule": "research use: only participants with an active research consent at export time "
                    "(their own, or their session's attestation for research)",
            "participants_included": int(frame["participant"].nunique()),
            "participants_excluded": sum(excluded.values()),
            "excluded_because": {
                "no_research_consent": excluded["no_research_consent"],  # consented to facilitator feedback only
                "no_active_consent": excluded["no_active_consent"],  # withdrawn, or never tied to a consent
            },
        },
        # Only the run's own row: runs.source is a hash and suffix, never the recording's file name.
        "run": {
            "id": run["id"],
            "status": run["status"],
            "source": run["source"],
            "started_at": str(run["started_at"]),
            "profile": run["profile"],
            "software_version": run["software_version"],
        },
        # Everything that changed the run's results (engagement.temporal.run_config); runs made
        # before that record existed hold their analysis options only.
        "config": json.loads(run["config_json"]),
        "config_hash": run["config_hash"],
        "config_hash_method": "sha256 of `config` as JSON with sorted keys",
        "models": json.loads(run["models_json"]),
        "data": {"file": data_path.name, "format": fmt, "rows": int(len(frame)), "sha256": sha256_file(data_path),
                 **({"text_cells": "formula prefixes = + - @ tab CR neutralised with a leading '"} if fmt == "csv" else {})},
        "schema": {"file": schema_path.name, "sha256": sha256_file(schema_path)},
    }
    manifest_path = out_dir / f"{stem}.manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2, default=str))
    return ExportResult(data_path, manifest_path, schema_path, int(len(frame)), sum(excluded.values()))
