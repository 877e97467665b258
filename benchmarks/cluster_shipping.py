"""How the package reaches a Ray worker node, and what each way costs.

    python benchmarks/cluster_shipping.py [--rounds 3]

Builds the wheel and a fresh virtual environment holding it (tests/installed_wheel.py), starts a
head node (Ray's cluster utility) and a worker node with `ray start` from that environment, on
loopback, then runs --rounds fresh drivers (each a new Ray job, so new worker processes) per way:

- installed: the wheel installed on every machine; nothing travels at run time.
- py_modules: the driver ships its installed `engagement`, `privacy` and `dashboard` folders
  through Ray's runtime environment (zipped, pushed to the head, unpacked on each node).

For each it prints the driver's ray.init seconds, the first task's seconds on the worker node (a
task importing the batch module, as `engagement batch` does) and the bytes shipped, and the ratio
against `installed`, measured in the same run. Round 1 of py_modules is the cold case (upload and
unpack); later rounds reuse Ray's cached copy. It also shows why a wheel in py_modules is no option
offline: Ray installs it with `pip install <wheel> --target`, which wants every dependency from an
index; here with --no-index, as on a machine without one.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from installed_wheel import build_wheel, clean_env, fresh_env  # noqa: E402

PACKAGES = ("engagement", "privacy", "dashboard")
DRIVER = """
import json, os, sys, time
t0 = time.monotonic()
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
kwargs = {"runtime_env": {"py_modules": [os.path.join(sys.argv[3], p) for p in sys.argv[4].split(",")]}} \\
    if sys.argv[2] == "py_modules" else {}
ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False, logging_level="error", **kwargs)
t1 = time.monotonic()
def task():
    import engagement.app.batch as b
    return os.environ.get("USER"), b.__file__
worker = [n["NodeID"] for n in ray.nodes() if n["Alive"] and "node:__internal_head__" not in n["Resources"]]
if not worker:
    print(json.dumps({"user": None}))
    sys.exit(0)
ref = ray.remote(num_cpus=1)(task).options(
    scheduling_strategy=NodeAffinitySchedulingStrategy(worker[0], soft=False)).remote()
user, where = ray.get(ref)
print(json.dumps({"init_s": t1 - t0, "first_task_s": time.monotonic() - t1, "user": user, "from": where}))
"""


def zipped_size(folder: Path) -> int:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # stored, not deflated: as Ray zips a module
        for path in folder.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                zf.write(path, path.relative_to(folder.parent))
    return buf.tell()


def start_worker(env, address: str, cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(env.python), "-m", "ray.scripts.scripts", "start", "--address", address, "--num-cpus", "1",
         "--object-store-memory", str(100 * 1024 * 1024), "--disable-usage-stats", "--block"],
        cwd=cwd, env=clean_env(USER="node-worker", RAY_USAGE_STATS_ENABLED="0"), stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def drive(env, address: str, way: str, cwd: Path) -> dict:
    out = subprocess.run([str(env.python), "-c", DRIVER, address, way, str(env.site_packages), ",".join(PACKAGES)],
                         cwd=cwd, env=clean_env(RAY_USAGE_STATS_ENABLED="0"), capture_output=True, text=True,
                         timeout=600)
    if out.returncode != 0:
        raise SystemExit(f"{way}: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def wheel_in_py_modules(env, wheel: Path, work: Path) -> str:
    out = subprocess.run([str(env.python), "-m", "pip", "install", "-q", "--no-index", str(wheel),
                          f"--target={work / 'target'}"], env=clean_env(), capture_output=True, text=True)
    lines = [ln for ln in out.stderr.splitlines() if ln.startswith("ERROR")]
    return lines[0] if out.returncode else "installed (an index was reachable)"


def measure(env, address: str, rounds: int, cwd: Path) -> dict[str, list[dict]]:
    results: dict[str, list[dict]] = {"installed": [], "py_modules": []}
    while not drive(env, address, "installed", cwd)["user"] == "node-worker":
        time.sleep(1)  # the worker node has joined
    for _ in range(rounds):
        for way in results:
            results[way].append(drive(env, address, way, cwd))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    from ray.cluster_utils import Cluster

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wheel = build_wheel(work / "wheel")
        env = fresh_env(wheel, work / "venv")
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        worker = start_worker(env, cluster.address, work)
        try:
            results = measure(env, cluster.address, args.rounds, work)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=60)
            cluster.shutdown()
        shipped = sum(zipped_size(env.site_packages / p) for p in PACKAGES)
        print(f"wheel {wheel.stat().st_size / 2**20:.1f} MiB (copied once to each machine and installed)")
        print(f"py_modules pushes {shipped / 2**20:.1f} MiB per new package content (zip, stored) (engagement with its models, privacy, dashboard)")
        floor = results["installed"][0]["first_task_s"]
        for way, rows in results.items():
            for i, row in enumerate(rows, 1):
                where = "wheel" if "site-packages" in row["from"] else "runtime_resources" if "runtime_resources" in row["from"] else row["from"]
                print(f"{way:10s} round {i}: ray.init {row['init_s']:.2f} s, first task on the worker node "
                      f"{row['first_task_s']:.2f} s ({row['first_task_s'] / floor:.2f}x installed round 1), from {where}")
        print("a wheel in py_modules (pip install <wheel> --target, no index):", wheel_in_py_modules(env, wheel, work))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
