"""Fill an SQLite results database with synthetic sessions for the dashboard benchmark.

Default size: 100 sessions x 40 participants x 2 h of per-second data, i.e. 720,000
class_timeline rows and 28.8 M engagement_estimates and window_features rows (the tables the
dashboard reads), plus sessions, runs, tracks, agenda items and alerts. window_features gets
only the columns the dashboard reads (counts and the attention signals); the model's 50-odd
feature columns stay NULL, since filling them would only measure the disk. The numbers are
synthetic but shaped like a class (slow drift, drops, absences, a break with cameras off), so
the charts look plausible; the class figures and alerts are computed by the product's own
`class_point` / `class_alerts` rules (minimum group size k = 5).

Speed: the schema is created through `Store.open` (so the tables match the product exactly),
then rows go in through the sqlite3 module's executemany in one transaction per session with
the journal off; numpy draws every participant-second of a session at once. This bypasses the
product's one write path (`engagement.core.repositories`) on purpose: it makes a benchmark fixture,
not data of people, so it writes no audit entries and no consent evidence worth the name.

    python benchmarks/generate_dashboard_data.py --out dash.db [--sessions 100]
        [--participants 40] [--seconds 7200] [--no-estimates]
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import sys
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

# Valid cohort names for the privacy module (they name key files): no spaces.
COHORTS = ("Angkatan-I", "Angkatan-II", "Angkatan-III", "Angkatan-IV")
AGENDA = (
    (0, "Pembukaan"),
    (600, "Materi inti"),
    (2400, "Diskusi kelompok"),
    (3600, "Istirahat"),
    (4200, "Studi kasus"),
    (6600, "Penutup"),
)
K_MIN = 5  # minimum group size: fewer participants behind a class figure -> it is suppressed
STATES = ("on_screen", "looking_away", "eyes_closed", "absent", "unknown")


def _ts(dt: datetime) -> str:
    # SQLAlchemy's SQLite DateTime storage format, so the product reads these back as datetimes.
    return dt.strftime("%Y-%m-%d %H:%M:%S.%f")


def _class_curve(rng: np.random.Generator, seconds: int, agenda_scale: float) -> np.ndarray:
    """A class-level attention curve with a few drops."""
    t = np.arange(seconds)
    curve = 0.62 + 0.08 * np.sin(t / 900.0 + rng.uniform(0, 6)) - 0.08 * (t / max(seconds, 1))
    for _ in range(rng.integers(2, 6)):
        start = int(rng.integers(0, max(seconds - 300, 1)))
        length = int(rng.integers(60, 300))
        depth = float(rng.uniform(0.15, 0.3))
        curve[start : start + length] -= depth
    for start, _title in AGENDA:  # attention sags just before each new agenda item
        s = int(start * agenda_scale)
        curve[max(s - 120, 0) : s] -= 0.05
    return np.clip(curve, 0.05, 0.95)


def generate(out: Path, sessions: int, participants: int, seconds: int, estimates: bool, seed: int) -> dict:
    # Create the schema with the product's own code: same tables, types and indexes.
    from dashboard.queries import open_store
    from engagement.temporal.outputs import ClassPoint
    from engagement.temporal.timeline import class_alerts

    url = f"sqlite:///{out}"
    store = open_store(url)
    store.close()

    rng = np.random.default_rng(seed)
    con = sqlite3.connect(out)
    con.execute("PRAGMA journal_mode=OFF")  # a benchmark file: speed over crash safety
    con.execute("PRAGMA synchronous=OFF")
    con.execute("PRAGMA cache_size=-200000")
    counts = {"consent_records": 0, "sessions": 0, "runs": 0, "tracks": 0, "class_timeline": 0, "engagement_estimates": 0,
              "window_features": 0, "alerts": 0, "agenda_items": 0}
    # Recent dates, so the default retention policy (per-participant data 90 days) that
    # `engagement dashboard` applies at start-up keeps them: 100 sessions span the last 60 days.
    last_start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=seconds + 3600)
    agenda_scale = seconds / 7200.0
    secs = np.arange(seconds, dtype=np.int64)
    t_start = time.perf_counter()
    for i in range(sessions):
        started = last_start - timedelta(days=0.6 * (sessions - 1 - i))
        now = _ts(started + timedelta(seconds=seconds))
        with con:
            cur = con.cursor()
            cur.execute(
                "INSERT INTO sessions (name, cohort, created_at, started_at) VALUES (?, ?, ?, ?)",
                (f"sesi-{i + 1:03d}", COHORTS[i % len(COHORTS)], _ts(started), _ts(started)),
            )
            session_id = cur.lastrowid
            cur.execute(
                "INSERT INTO runs (session_id, status, mode, source, started_at, finished_at, heartbeat_at,"
                " software_version, profile, config_json, config_hash, models_json, frames_read,"
                " frames_analysed, seconds) VALUES (?, 'complete', 'file', ?, ?, ?, ?, 'bench', ?, '{}', ?, '{}', ?, ?, ?)",
                (session_id, f"sesi-{i + 1:03d}.mp4", now, now, now, "eu-ai-act" if i % 2 else "id-pdp",
                 "0" * 64, seconds * 25, seconds * 5, seconds),
            )
            run_id = cur.lastrowid
            # Consent: the facilitator attested that everyone present consented (one record per
            # session); tracks carry session-scoped attested pseudonyms. Without it the start-up
            # purge would (rightly) delete every unconsented track.
            cur.execute(
                "INSERT INTO consent_records (kind, cohort, participant, session_name, attested_by, scope,"
                " notice_version, language, evidence, granted_at, withdrawn_at, created_at)"
                " VALUES ('attestation', ?, NULL, ?, ?, 'facilitator_feedback', 'bench-1', 'id',"
                " 'synthetic benchmark data', ?, NULL, ?)",
                (COHORTS[i % len(COHORTS)], f"sesi-{i + 1:03d}", "p-" + "0" * 40, _ts(started), _ts(started)),
            )
            cur.executemany(
                "INSERT INTO agenda_items (session_id, start_second, title) VALUES (?, ?, ?)",
                [(session_id, int(s * agenda_scale), title) for s, title in AGENDA],
            )
            counts["agenda_items"] += len(AGENDA)

            curve = _class_curve(rng, seconds, agenda_scale)
            # participant x second: individual offset + noise around the class curve
            offset = rng.normal(0, 0.08, size=(participants, 1))
            score = np.clip(curve[None, :] + offset + rng.normal(0, 0.1, size=(participants, seconds)), 0, 1)
            # absences: each participant has a few off-camera stretches
            present = np.ones((participants, seconds), dtype=bool)
            for p in range(participants):
                for _ in range(rng.integers(0, 4)):
                    a = int(rng.integers(0, seconds))
                    present[p, a : a + int(rng.integers(30, 600))] = False
            # everyone leaves the camera during the break
            brk = int(3600 * agenda_scale), int(4200 * agenda_scale)
            present[: int(participants * 0.9), brk[0] : brk[1]] = False

            track_rows = []
            for p in range(participants):
                row = present[p]
                idx = np.flatnonzero(row)
                first = int(idx[0]) if idx.size else 0
                last = int(idx[-1]) if idx.size else 0
                pseudonym = "a-" + hashlib.sha256(f"{seed}:{i}:{p}".encode()).hexdigest()[:40]
                track_rows.append((run_id, f"T{p + 1}", pseudonym, first, last, int(row.sum())))
            cur.executemany(
                "INSERT INTO tracks (run_id, label, participant, first_second, last_second, present_seconds)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                track_rows,
            )
            first_track = cur.execute("SELECT min(id) FROM tracks WHERE run_id = ?", (run_id,)).fetchone()[0]
            counts["tracks"] += participants

            # attention per participant-second: on screen more often when the class curve is
            # high; eyes closed and unmeasurable seconds now and then; absent = camera off.
            draw = rng.random((participants, seconds))
            p_on = np.clip(0.15 + score, 0.0, 0.97)
            state = np.where(draw < p_on, 0, np.where(draw < p_on + 0.04, 2, 1))  # 0 on, 1 away, 2 eyes closed
            state = np.where(rng.random((participants, seconds)) < 0.02, 4, state)  # unknown
            state = np.where(present, state, 3)  # absent
            judged = (state != 3) & (state != 4)

            n_present = present.sum(axis=0)
            masked = np.where(present, score, np.nan)
            with warnings.catch_warnings():  # seconds nobody is present: NaN, suppressed below
                warnings.simplefilter("ignore", RuntimeWarning)
                class_score = np.nanmean(masked, axis=0)
                on_share = np.nanmean(np.where(judged, state == 0, np.nan), axis=0)
            suppressed = n_present < K_MIN
            class_score = np.where(suppressed, np.nan, class_score)
            n_judged = judged.sum(axis=0)
            on_share = np.where(n_judged < K_MIN, np.nan, on_share)
            n_absent = (state == 3).sum(axis=0)
            points = [
                ClassPoint(s, int(n_present[s]), participants, None if np.isnan(class_score[s]) else float(class_score[s]),
                           bool(suppressed[s]), int(n_judged[s]), None if np.isnan(on_share[s]) else float(on_share[s]),
                           int(n_absent[s]) if participants >= K_MIN else None)
                for s in range(seconds)
            ]
            cur.executemany(
                "INSERT INTO class_timeline (run_id, second, created_at, n_present, n_tracked, score, suppressed,"
                " n_judged, on_screen_share, n_absent) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run_id, p.second, now, p.n_present, p.n_tracked, p.score, int(p.suppressed), p.n_judged,
                  p.on_screen_share, p.n_absent) for p in points],
            )
            counts["class_timeline"] += seconds

            found = class_alerts(points)
            cur.executemany(
                "INSERT INTO alerts (run_id, kind, start_second, end_second, magnitude, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, a.kind, a.start_second, a.end_second, a.magnitude, now) for a in found],
            )
            counts["alerts"] += len(found)

            if estimates:
                level = np.minimum((score * 4).astype(np.int64), 3)
                # soft level probabilities centred on the drawn level (sum to 1)
                centres = np.array([0.125, 0.375, 0.625, 0.875])
                logits = -((score[..., None] - centres) ** 2) / 0.02
                probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
                probs /= probs.sum(axis=-1, keepdims=True)
                unc = 1.0 - probs.max(axis=-1)
                for p in range(participants):
                    pres = present[p]
                    sc = score[p].tolist()
                    lv = level[p].tolist()
                    pr = probs[p].tolist()
                    un = unc[p].tolist()
                    pl = pres.tolist()
                    st = state[p].tolist()
                    cur.executemany(
                        "INSERT INTO window_features (run_id, track_id, second, created_at, n_frames, n_face,"
                        " present_ratio, blinks, on_screen_ratio, eyes_closed_ratio, attention)"
                        " VALUES (?, ?, ?, ?, 5, ?, ?, 0, ?, ?, ?)",
                        [
                            (run_id, first_track + p, s, now, 5 if pl[s] else 0, 1.0 if pl[s] else 0.0,
                             (1.0 if st[s] == 0 else 0.0) if st[s] in (0, 1, 2) else None,
                             (1.0 if st[s] == 2 else 0.0) if st[s] in (0, 1, 2) else None, STATES[st[s]])
                            for s in range(seconds)
                        ],
                    )
                    cur.executemany(
                        "INSERT INTO engagement_estimates (run_id, track_id, second, created_at, state, score,"
                        " level, p_level0, p_level1, p_level2, p_level3, uncertainty)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (run_id, first_track + p, s, now, "present", sc[s], lv[s], *pr[s], un[s])
                            if pl[s]
                            else (run_id, first_track + p, s, now, "absent", None, None, None, None, None, None, None)
                            for s in range(seconds)
                        ],
                    )
                counts["engagement_estimates"] += participants * seconds
                counts["window_features"] += participants * seconds
        counts["sessions"] += 1
        counts["consent_records"] += 1
        counts["runs"] += 1
        if (i + 1) % 10 == 0 or i + 1 == sessions:
            print(f"  {i + 1}/{sessions} sessions, {time.perf_counter() - t_start:.0f} s", flush=True)
    con.execute("ANALYZE")  # planner statistics, as a long-lived database would have
    con.close()
    # The consents were written around the product's API, so audit them as the product does:
    # consent records without any audit entry are what `audit verify` reports as a wiped log.
    from privacy.audit import AuditAction, AuditLog

    store = open_store(url)
    AuditLog(store).record(AuditAction.CONSENT_ATTESTED, "system:generator",
                           {"generated": True, "consent_records": counts["consent_records"]})
    store.close()
    counts["wall_s"] = round(time.perf_counter() - t_start, 1)
    counts["size_mb"] = round(out.stat().st_size / 1e6, 1)
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="SQLite file to create (must not exist)")
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--participants", type=int, default=40)
    ap.add_argument("--seconds", type=int, default=7200)
    ap.add_argument("--no-estimates", action="store_true", help="skip the per-participant table")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    if args.out.exists():
        print(f"error: {args.out} exists; pick a new file", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    counts = generate(args.out, args.sessions, args.participants, args.seconds, not args.no_estimates, args.seed)
    for key, value in counts.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
