"""Fault injection for `engagement batch`: `python -m benchmarks.fault_injection --target batch`.

Each round runs a batch of the same recordings (`--force`, two workers) and, at a random moment,
kills either the batch's driver (SIGTERM or SIGKILL) or one of its running analyses (SIGKILL, as
a worker lost to memory would). Then the batch is started again without `--force` and finishes
what is not complete. The report has the five counts of `benchmarks.fault_injection`, plus where
the kills landed and how many of Ray's processes a SIGKILLed driver left behind (the benchmark
ends those itself, by process id, before the next round).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGETS = ("driver", "worker")
RAY_NAMES = ("gcs_server", "raylet", "ray::", "default_worker.py", "dashboard/agent.py", "runtime_env/agent")


def _children(pid: int) -> list[int]:
    """Every descendant of `pid` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _cmdline(pid: int) -> str:
    try:
        return (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")).decode("utf-8", "replace")
    except OSError:
        return ""


def _ray_processes(work: Path) -> list[int]:
    """Ray processes of this benchmark's runtimes (their command lines name its temp folder)."""
    mine = str(work / "ray")
    return [int(e.name) for e in Path("/proc").iterdir()
            if e.name.isdigit() and mine in _cmdline(int(e.name)) and any(n in _cmdline(int(e.name)) for n in RAY_NAMES)]


def prepare(bench, copies: int = 2) -> Path:
    """A folder of `copies` recordings of the clip, their sessions attested under the names the
    batch gives them."""
    from engagement.app.batch import default_session

    folder = bench.work / "archive"
    folder.mkdir(exist_ok=True)
    for i in range(copies):
        target = folder / f"kelas-{i}{bench.clip.suffix}"
        shutil.copy(bench.clip, target)
        done = bench.run("privacy", "consent", "attest", default_session(target), "--by", "benchmark",
                         "--notice-version", "bench", "--language", "en", "--evidence", "fault-injection benchmark")
        if done.returncode:
            sys.exit(done.stderr)
    return folder


def start_batch(bench, folder: Path, *, force: bool) -> subprocess.Popen:
    from benchmarks.fault_injection import REPO

    bench.started += 1
    log = open(bench.logs / f"batch-{bench.started}.log", "w")
    args = ["batch", str(folder), "--workers", "2", "--sample-fps", bench.sample_fps] + (["--force"] if force else [])
    env = {**bench.env, "RAY_TMPDIR": str(bench.work / "ray")}
    return subprocess.Popen(bench.command(*args), cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def run_batch_bench(bench, rounds: int, rng: random.Random) -> dict:
    from benchmarks.fault_injection import summarise

    (bench.work / "ray").mkdir(exist_ok=True)
    folder = prepare(bench)
    calibration = start_batch(bench, folder, force=True)
    _wait_for_analysis(calibration)
    t0 = time.monotonic()
    calibration.wait(timeout=900)
    durations = [time.monotonic() - t0]  # from the first analysis starting to the batch's end
    kills = []
    for n in range(rounds):
        kills.append(_round(bench, folder, rng, durations))
        k = kills[-1]
        print(f"round {n + 1}/{rounds}: {k['signal']} to the {k['target']} at {k['at_s']} s ({k['phase']}) -> "
              f"rc {k['victim_rc']}; restart rc {k['restart_rc']}; Ray processes left {k['ray_left']}", file=sys.stderr)
    verify = bench.run("privacy", "audit", "verify")
    report = summarise(bench, kills, durations[0], verify.returncode)
    report["target"] = "batch"
    report["kills"] = {t: {s: sum(k["target"] == t and k["signal"] == s for k in kills) for s in ("SIGTERM", "SIGKILL")}
                       for t in TARGETS}
    report["ray_processes_left_by_a_killed_driver"] = sum(k["ray_left"] for k in kills)
    return report


def _wait_for_analysis(proc: subprocess.Popen, timeout_s: float = 300.0) -> float:
    """Seconds until the batch's first analysis is running (Ray starts first), or the timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s and proc.poll() is None:
        if any(" analyze " in _cmdline(p) for p in _children(proc.pid)):
            break
        time.sleep(0.1)
    return time.monotonic() - t0


def _round(bench, folder: Path, rng: random.Random, durations: list[float]) -> dict:
    """Kill moments fall between the first analysis starting and the end of a batch (measured by
    the calibration batch and every batch that ran to its end since), so they hit the work."""
    t0 = time.monotonic()
    proc = start_batch(bench, folder, force=True)
    target = rng.choice(TARGETS)
    sig = rng.choice((signal.SIGTERM, signal.SIGKILL)) if target == "driver" else signal.SIGKILL
    started = _wait_for_analysis(proc)
    moment = rng.uniform(0.0, 0.9 * max(1.0, statistics.median(durations)))
    time.sleep(moment)
    victim = proc.pid if proc.poll() is None else None
    if target == "worker":
        analyses = [p for p in _children(proc.pid) if " analyze " in _cmdline(p)]
        victim = rng.choice(analyses) if analyses else None
    phase = ("no analysis running" if target == "worker" else "after it ended") if victim is None else "running"
    if victim is not None:
        try:
            os.kill(victim, sig)
        except ProcessLookupError:
            phase = "after it ended"
    rc = proc.wait(timeout=900)
    if target == "worker" or phase == "after it ended":
        durations.append(time.monotonic() - t0 - started)  # this batch ran to its end
    ray_left = _ray_processes(bench.work) if target == "driver" and sig == signal.SIGKILL else []
    for pid in ray_left:  # a SIGKILLed driver cannot stop its local runtime; we started it, we end it
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    restart = start_batch(bench, folder, force=False)
    restart_rc = restart.wait(timeout=900)
    return {"target": target, "signal": sig.name, "at_s": round(started + moment, 2), "phase": phase,
            "victim_rc": rc, "others_rc": [], "restart_rc": restart_rc, "restart_reaped": 0,
            "ray_left": len(ray_left)}
