"""Tidy per-second exports (one row per track and second) with a schema and a manifest.

The manifest makes an export reproducible: software version, the run's configuration and its
hash, the models (version, sha256) that produced the numbers, and the sha256 of the data file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from engagement import __version__, schema
from engagement.errors import ConfigError, StoreError
from engagement.registry import sha256_file
from engagement.records import EXPRESSION_LABELS, FEATURE_NAMES
from engagement.store import Store, utcnow

FORMATS = ("csv", "parquet")

_UNITS = {
    "head_yaw": "rad", "head_pitch": "rad", "head_roll": "rad", "head_tz": "mm",
    "gaze_yaw": "rad", "gaze_pitch": "rad", "eye_open_left": "ratio", "eye_open_right": "ratio",
    "face_size": "px", "blur": "laplacian variance", "brightness": "grey level 0-255",
}  # fmt: skip


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


def session_frame(store: Store, session: str) -> tuple[pd.DataFrame, dict]:
    """The tidy table of a session's newest complete run, and that run's row."""
    run = store.latest_run(session)
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
        .where(w.c.run_id == run["id"])
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


def export_session(store: Store, session: str, fmt: str, out_dir: Path) -> ExportResult:
    if fmt not in FORMATS:
        raise ConfigError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    frame, run = session_frame(store, session)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the export directory {out_dir}: {exc.strerror}") from None
    stem = safe_stem(session)
    data_path = out_dir / f"{stem}.{fmt}"
    tmp = data_path.with_suffix(data_path.suffix + ".part")
    try:
        # Write to a temporary name and rename, so an interrupted export never leaves a file
        # that looks complete.
        if fmt == "csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)
        tmp.replace(data_path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write {data_path}: {exc.strerror}") from None
    schema_path = out_dir / f"{stem}.schema.json"
    schema_path.write_text(json.dumps({"columns": column_schema()}, indent=2))
    manifest = {
        "software": {"name": "engagement", "version": __version__},
        "exported_at": utcnow().isoformat(),
        "session": session,
        "run": {
            "id": run["id"],
            "status": run["status"],
            "source": run["source"],
            "started_at": str(run["started_at"]),
            "profile": run["profile"],
            "software_version": run["software_version"],
        },
        "config": json.loads(run["config_json"]),
        "config_hash": run["config_hash"],
        "models": json.loads(run["models_json"]),
        "data": {"file": data_path.name, "format": fmt, "rows": int(len(frame)), "sha256": sha256_file(data_path)},
        "schema": {"file": schema_path.name, "sha256": sha256_file(schema_path)},
    }
    manifest_path = out_dir / f"{stem}.manifest.json"
    manifest_path.write_text(json.dumps(manifest, indent=2, default=str))
    return ExportResult(data_path, manifest_path, schema_path, int(len(frame)))
