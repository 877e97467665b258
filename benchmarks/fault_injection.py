"""Fault injection: many analyses into one database, one killed at a random moment every round.

Each round starts `--parallel` analyses (default 2) of the same short clip at once, into one
SQLite database, and kills one of them at a random moment (SIGTERM or SIGKILL, chosen at random);
the others run to the end. Then the killed analysis is started again and runs to completion (the
restart, which also reaps what a SIGKILL left behind). After the last round it reports:

- runs left `running`
- orphan rows: per-second rows (windows, estimates, tracks, class timeline, alerts) of runs that are
  not `complete`, or of no run at all
- runs without an audit entry for their outcome, and `engagement privacy audit verify`'s exit code
- tracks lost among complete runs: complete runs whose tracks / window rows / timeline rows
  differ from the first complete run's (every run analyses the same clip)

All must be zero. It also says where each kill landed: before the run row existed, in a running
run before or after its first rows were committed, or after the analysis had ended (kill moments
are drawn from the duration of recent analyses that were not killed). A script, not a test: it
takes minutes.

    python -m benchmarks.fault_injection [--rounds 20] [--parallel 2] [--clip VIDEO] [--seed 0]

`--target batch` kills `engagement batch`'s driver or one of its analyses instead
(`benchmarks/fault_injection_batch.py`), `--target privacy` a process making the dashboard's
privacy forms' calls (`benchmarks/fault_injection_privacy.py`); both report the same five counts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SESSION = "fault-injection"
ROW_TABLES = ("window_features", "engagement_estimates", "tracks", "class_timeline", "alerts")
PHASES = ("before its run row", "running, no rows yet", "running, rows committed", "after its run ended", "after it ended")


def looped_clip(source: Path, target: Path, seconds: float) -> Path:
    """The clip played forwards and backwards until `seconds` long (kills land mid-run)."""
    import cv2

    cap = cv2.VideoCapture(str(source))
    frames = []
    while (item := cap.read())[0]:
        frames.append(item[1])
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    cap.release()
    if not frames:
        sys.exit(f"error: no frames in {source}")
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(target), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for i in range(int(seconds * fps / len(frames)) + 1):
        for frame in frames if i % 2 == 0 else frames[::-1]:
            writer.write(frame)
    writer.release()
    return target


class Bench:
    def __init__(self, work: Path, clip: Path, sample_fps: str):
        self.work, self.clip, self.sample_fps = work, clip, sample_fps
        self.env = {**os.environ, "ENGAGEMENT_DATA_DIR": str(work / "data")}
        self.env.pop("ENGAGEMENT_DB", None)
        self.db = work / "data" / "engagement.db"
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.started = 0

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "engagement.cli.main", *args]

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args), cwd=REPO, env=self.env, capture_output=True, text=True, timeout=600)

    def start_analysis(self) -> subprocess.Popen:
        self.started += 1
        log = open(self.logs / f"analysis-{self.started}.log", "w")
        return subprocess.Popen(
            self.command("analyze", str(self.clip), "--session", SESSION, "--no-progress", "--sample-fps", self.sample_fps),
            cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def query(self, sql: str) -> list[tuple]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds, one killed analysis each (default 20)")
    parser.add_argument("--parallel", type=int, default=2, help="analyses running at once in a round (default 2)")
    parser.add_argument("--clip", type=Path, help="video to analyse (default: a 12 s loop of a shared single-face clip)")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of the default looped clip")
    parser.add_argument("--sample-fps", default="15", help="--sample-fps of every analysis (default 15)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="work directory to keep (default: a temporary one, removed)")
    parser.add_argument("--target", choices=("analyze", "batch", "privacy"), default="analyze",
                        help="what is killed: single analyses (default), engagement batch's driver and workers, "
                             "or the dashboard's privacy forms' calls")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="fault-injection-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clip = args.clip
        if clip is None:
            from engagement.core.config import shared_data_dir

            clip = looped_clip(shared_data_dir() / "videos/pyfeat/single_face.mp4", work / "clip.mp4", args.seconds)
        if args.target == "batch":
            from benchmarks.fault_injection_batch import run_batch_bench

            report = run_batch_bench(Bench(work, clip, args.sample_fps), args.rounds, rng)
        elif args.target == "privacy":
            from benchmarks.fault_injection_privacy import run_privacy_bench

            report = run_privacy_bench(Bench(work, clip, args.sample_fps), args.rounds, rng)
        else:
            report = run_bench(Bench(work, clip, args.sample_fps), args.rounds, args.parallel, rng)
    print(json.dumps(report, indent=2))
    figures = ("runs_left_running", "orphan_rows", "runs_without_audit_entry", "audit_verify_rc", "complete_runs_with_lost_tracks")
    return 0 if all(report[k] == 0 for k in figures) else 1


def run_bench(bench: Bench, rounds: int, parallel: int, rng: random.Random) -> dict:
    setup = bench.run("privacy", "consent", "attest", SESSION, "--by", "benchmark", "--notice-version", "bench",
                      "--language", "en", "--evidence", "fault-injection benchmark")  # fmt: skip
    if setup.returncode:
        sys.exit(setup.stderr)
    # Calibration: a round with nothing killed gives the duration to draw kill moments from; the
    # analyses that are not killed keep it current (the machine's load changes).
    t0 = time.monotonic()
    for proc in [bench.start_analysis() for _ in range(parallel)]:
        proc.wait(timeout=600)
    durations = [time.monotonic() - t0]
    kills = []
    for n in range(rounds):
        t0 = time.monotonic()
        procs = [bench.start_analysis() for _ in range(parallel)]
        victim = rng.randrange(parallel)
        moment = rng.uniform(0.2, 0.95 * statistics.median(durations[-5:]))
        sig = rng.choice((signal.SIGTERM, signal.SIGKILL))
        time.sleep(moment)
        phase = kill_phase(bench, procs[victim])
        if phase != "after it ended":
            procs[victim].send_signal(sig)
        codes = []
        for i, proc in enumerate(procs):
            codes.append(proc.wait(timeout=600))
            if i != victim:
                durations.append(time.monotonic() - t0)
        restart = bench.run("analyze", str(bench.clip), "--session", SESSION, "--no-progress", "--sample-fps", bench.sample_fps)
        kills.append({
            "round": n + 1, "signal": sig.name, "at_s": round(moment, 2), "phase": phase,
            "victim_rc": codes[victim], "others_rc": [c for i, c in enumerate(codes) if i != victim],
            "restart_rc": restart.returncode, "restart_reaped": restart.stderr.count("was left running by a writer"),
        })  # fmt: skip
        print(f"round {n + 1}/{rounds}: {sig.name} at {moment:.1f} s ({phase}) -> rc {codes[victim]}; "
              f"others {kills[-1]['others_rc']}; restart rc {restart.returncode}, reaped {kills[-1]['restart_reaped']}",
              file=sys.stderr)  # fmt: skip
    verify = bench.run("privacy", "audit", "verify")
    return summarise(bench, kills, durations[0], verify.returncode)


def kill_phase(bench: Bench, proc: subprocess.Popen) -> str:
    """Where the analysis about to be killed stands: found by its pid on its run row."""
    if proc.poll() is not None:
        return "after it ended"
    rows = bench.query(
        f"SELECT r.status, (SELECT count(*) FROM window_features w WHERE w.run_id = r.id) FROM runs r"
        f" WHERE r.writer_pid = {int(proc.pid)}"
    )
    if not rows:
        return "before its run row"
    status, windows = rows[-1]
    if status != "running":
        return "after its run ended"
    return "running, rows committed" if windows else "running, no rows yet"


def summarise(bench: Bench, kills: list[dict], duration: float, verify_rc: int) -> dict:
    q = bench.query
    statuses = dict(q("SELECT status, count(*) FROM runs GROUP BY status"))
    orphans = sum(
        q(f"SELECT count(*) FROM {t} WHERE run_id NOT IN (SELECT id FROM runs WHERE status = 'complete')")[0][0]
        for t in ROW_TABLES
    )
    audited = set()
    for (details,) in q("SELECT details FROM audit_log WHERE action = 'analysis_run'"):
        entry = json.loads(details)
        audited.add((entry["run_id"], entry["status"]))
    finished = q("SELECT id, status FROM runs WHERE status != 'running'")
    complete = q(
        "SELECT r.id, (SELECT count(*) FROM tracks t WHERE t.run_id = r.id),"
        " (SELECT count(*) FROM window_features w WHERE w.run_id = r.id),"
        " (SELECT count(*) FROM class_timeline c WHERE c.run_id = r.id)"
        " FROM runs r WHERE r.status = 'complete' ORDER BY r.id"
    )
    reference = complete[0][1:] if complete else None
    return {
        "rounds": len(kills),
        "analyses": bench.started + len(kills),
        "calibration_round_s": round(duration, 1),
        "kills": {
            sig: {phase: sum(k["signal"] == sig and k["phase"] == phase for k in kills) for phase in PHASES}
            for sig in ("SIGTERM", "SIGKILL")
        },
        "runs_by_status": statuses,
        "runs_left_running": statuses.get("running", 0),
        "orphan_rows": orphans,
        "runs_without_audit_entry": sum((run_id, status) not in audited for run_id, status in finished),
        "audit_verify_rc": verify_rc,
        "reference_run": {"tracks": reference[0], "window_rows": reference[1], "timeline_rows": reference[2]} if reference else None,
        "complete_runs_with_lost_tracks": sum(row[1:] != reference for row in complete),
        "other_analyses_failed": sum(any(rc != 0 for rc in k["others_rc"]) for k in kills),
        "restarts_failed": sum(k["restart_rc"] != 0 for k in kills),
        "runs_reaped_by_a_restart": sum(k["restart_reaped"] for k in kills),
        "rounds_detail": kills,
    }


if __name__ == "__main__":
    sys.exit(main())
