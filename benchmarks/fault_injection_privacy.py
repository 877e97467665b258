"""Fault injection for the dashboard's privacy forms: `python -m benchmarks.fault_injection
--target privacy`.

The forms call `dashboard.services` (consent grant, attestation, withdrawal, erasure, purge). Each
round a child process runs those calls one after another, as privacy officers would, and is
killed at a random moment (SIGTERM or SIGKILL). Before the first round one analysis stores the
data of a participant whose consent no form touches; after the last round her rows must all be
there. The report has the five counts of `benchmarks.fault_injection`, plus consent records
without the audit entry that records them, and her rows lost.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time

KEEPER = "tetap@bench.id"
COHORT = "bench"
NOTICE = dict(notice_version="bench", language="en", evidence="fault-injection benchmark")
ACTOR = "dashboard:bench"
STEPS = 30  # form sequences per round (6 calls each): the calls last a few seconds


def child(round_no: int, steps: int) -> None:
    """The forms' calls of one round, in the order officers would make them."""
    from dashboard import services
    from engagement.core.config import default_db_url
    from engagement.core.store import Store

    store = Store.open(default_db_url())
    print("ready", flush=True)  # modules loaded: kills are timed from here, into the calls
    for i in range(steps):
        who = f"p{round_no}-{i}@bench.id"
        session = f"bench-{round_no}-{i}"
        calls = (
            lambda: services.consent_grant(store, who, COHORT, ["facilitator_feedback"], reason="form", actor=ACTOR,
                                           **NOTICE),
            lambda: services.consent_attest(store, session, "wi@bench.id", COHORT, ["facilitator_feedback"],
                                            reason="form", actor=ACTOR, **NOTICE),
            lambda: services.consent_withdraw(store, who, COHORT, None, "withdrawn by form", ACTOR),
            lambda: services.consent_withdraw_attestation(store, session, "withdrawn by form", ACTOR),
            lambda: services.subject_erasure(store, who, COHORT, ACTOR),
            lambda: services.purge(store, dry_run=False, actor=ACTOR),
        )
        for call in calls:
            call()
            print("done", flush=True)  # the parent counts the calls made before its kill
    store.close()


def _keeper_rows(bench) -> tuple[int, int]:
    rows = bench.query("SELECT (SELECT count(*) FROM tracks WHERE participant LIKE 'p-%'),"
                       " (SELECT count(*) FROM window_features)")
    return rows[0]


def run_privacy_bench(bench, rounds: int, rng: random.Random) -> dict:
    from benchmarks.fault_injection import summarise

    for args in (["privacy", "consent", "grant", KEEPER, "--cohort", COHORT, "--notice-version", "bench",
                  "--language", "en", "--evidence", "fault-injection benchmark"],
                 ["analyze", str(bench.clip), "--session", "keeper", "--cohort", COHORT, "--participant", KEEPER,
                  "--no-progress", "--sample-fps", bench.sample_fps]):
        done = bench.run(*args)
        if done.returncode:
            sys.exit(done.stderr)
    before = _keeper_rows(bench)
    calibration = _start(0, bench.env)
    calibration.stdout.readline()
    t0 = time.monotonic()
    calibration.communicate(timeout=600)
    if calibration.returncode:
        sys.exit(f"the forms' calls failed (rc {calibration.returncode})")
    duration = time.monotonic() - t0
    kills = [_round(bench, n + 1, rng, duration) for n in range(rounds)]
    verify = bench.run("privacy", "audit", "verify")
    report = summarise(bench, kills, duration, verify.returncode)
    report["target"] = "privacy"
    report["kills"] = {"during the forms' calls": sum(k["phase"] != "after it ended" for k in kills),
                       "after it ended": sum(k["phase"] == "after it ended" for k in kills)}
    report["calls_per_round"] = 6 * STEPS
    recorded = set()
    for (details,) in bench.query("SELECT details FROM audit_log WHERE action IN ('consent_granted', 'consent_attested')"):
        recorded.update(json.loads(details).get("consent_ids", []))
    ids = [r[0] for r in bench.query("SELECT id FROM consent_records")]
    report["consent_records_without_audit_entry"] = sum(i not in recorded for i in ids)
    after = _keeper_rows(bench)
    report["consented_rows_lost"] = max(0, before[0] - after[0]) + max(0, before[1] - after[1])
    report["consented_rows"] = {"tracks": after[0], "window_rows": after[1]}
    return report


def _start(n: int, env: dict[str, str]) -> subprocess.Popen:
    from benchmarks.fault_injection import REPO

    return subprocess.Popen([sys.executable, "-m", "benchmarks.fault_injection_privacy", str(n), str(STEPS)], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _round(bench, n: int, rng: random.Random, duration: float) -> dict:
    proc = _start(n, bench.env)
    sig = rng.choice((signal.SIGTERM, signal.SIGKILL))
    moment = rng.uniform(0.0, 0.95 * duration)
    proc.stdout.readline()  # "ready": the forms' calls start now
    time.sleep(moment)
    phase = "after it ended" if proc.poll() is not None else "running"
    if phase == "running":
        proc.send_signal(sig)
    out, err = proc.communicate(timeout=600)
    calls = out.count("done")
    if phase == "running":
        phase = f"after {calls} of {6 * STEPS} calls"
    print(f"round {n}: {sig.name} at {moment:.2f} s into the calls ({phase}) -> rc {proc.returncode}", file=sys.stderr)
    return {"signal": sig.name, "at_s": round(moment, 2), "phase": phase, "calls_before_kill": calls,
            "victim_rc": proc.returncode, "others_rc": [], "restart_rc": 0, "restart_reaped": 0,
            "error": err.strip().splitlines()[-1:]}


if __name__ == "__main__":
    child(int(sys.argv[1]), int(sys.argv[2]))
