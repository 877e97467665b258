"""`engagement batch` on a real multi-node Ray cluster: a head and a worker node, each its own
raylet process on loopback, analysing recordings into one PostgreSQL database.

The worker node runs as on a worker machine: started with `ray start` from a fresh virtual
environment holding the built wheel (tests/installed_wheel.py), where the source tree is not
importable, and the batch is started from that environment's `engagement` command. The head node
is Ray's cluster utility in the test's own interpreter. Each node has its own operating-system
user name in its environment, so the audit log's actor of each analysis (`cli:<user>`, written by
the analysis itself) says which node ran it. With one CPU a node and two recordings submitted at
once, both nodes must take one. A probe task on each node says where its `engagement` came from.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from engagement.core import schema
from engagement.core.config import REPO_ROOT
from engagement.core.store import Store
from installed_wheel import FreshEnv, clean_env
from privacy.audit import AuditLog

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.postgres]

# Run on every live node of the cluster at argv[1]: which user, interpreter and `engagement` the
# node's Ray workers run, and which `engagement` the analysis command they start imports.
PROBE = """
import json, os, subprocess, sys
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

def where():
    import engagement
    from engagement.app.batch import engagement_command
    command = engagement_command()
    child = subprocess.run([command[0], "-c", "import engagement; print(engagement.__file__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    return {"user": os.environ.get("USER"), "python": sys.executable, "package": engagement.__file__,
            "command": command, "child_package": child, "sys_path": sys.path}

ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False)
probe = ray.remote(num_cpus=1)(where)
nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
found = ray.get([probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)).remote()
                 for n in nodes])
print(json.dumps({f["user"]: f for f in found}))
"""


def _node(user: str) -> dict:
    return {"num_cpus": 1, "include_dashboard": False, "env_vars": {"USER": user, "LOGNAME": user}}


def _start_worker_node(env: FreshEnv, address: str, cwd: Path) -> subprocess.Popen:
    """`ray start` from the wheel's environment, as on a worker machine (its own session, so the
    test ends it and its raylet by its process group)."""
    log = (cwd / "worker-node.log").open("w")
    return subprocess.Popen(
        [str(env.python), "-m", "ray.scripts.scripts", "start", "--address", address, "--num-cpus", "1",
         "--object-store-memory", str(100 * 1024 * 1024), "--disable-usage-stats", "--block"],
        cwd=cwd, env=clean_env(USER="node-worker", LOGNAME="node-worker", RAY_USAGE_STATS_ENABLED="0"),
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )


def _wait_for_two_nodes(env: FreshEnv, address: str, cwd: Path) -> None:
    count = "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); print(sum(n['Alive'] for n in ray.nodes()))"
    for _ in range(120):
        out = subprocess.run([str(env.python), "-c", count, address], cwd=cwd, env=clean_env(), capture_output=True,
                             text=True, timeout=120)
        if out.stdout.strip() == "2":
            return
        time.sleep(1)
    pytest.fail(f"the worker node did not join: {(cwd / 'worker-node.log').read_text()[-2000:]}")


def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGTERM)  # `ray start --block` takes its raylet down with it
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def _batch_and_probe(env: FreshEnv, address: str, folder: Path, pg_url: str, cwd: Path) -> tuple:
    run_env = clean_env(ENGAGEMENT_DATA_DIR=str(cwd / "shared-data"))
    batch = subprocess.run(
        [str(env.engagement), "batch", str(folder), "--workers", "2", "--db", pg_url, "--ray-address", address,
         "--sample-fps", "10"],
        cwd=cwd, env=run_env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )
    probe = subprocess.run([str(env.python), "-c", PROBE, address], cwd=cwd, env=run_env, capture_output=True,
                           text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]
    return batch, json.loads(probe.stdout.strip().splitlines()[-1])


def test_a_head_and_a_wheel_installed_worker_node_analyse_into_postgres(tmp_path, videos_dir, pg_url, wheel_env):
    pytest.importorskip("ray", reason="the [cluster] extra is not installed")  # third-party, optional
    from ray.cluster_utils import Cluster

    folder = tmp_path / "archive"
    folder.mkdir()
    for name in ("lbax4n", "brbk7n"):
        shutil.copy(videos_dir / "grid" / f"{name}.mpg", folder / f"{name}.mpg")
    cluster = Cluster(initialize_head=True, head_node_args=_node("node-head"))
    worker = None
    try:
        worker = _start_worker_node(wheel_env, cluster.address, tmp_path)
        _wait_for_two_nodes(wheel_env, cluster.address, tmp_path)
        batch, nodes = _batch_and_probe(wheel_env, cluster.address, folder, pg_url, tmp_path)
    finally:
        if worker is not None:
            _stop(worker)
        cluster.shutdown()
    assert batch.returncode == 0, batch.stderr[-3000:]
    on_worker = nodes["node-worker"]
    assert Path(on_worker["python"]) == wheel_env.python
    for package in (on_worker["package"], on_worker["child_package"]):
        assert Path(package).is_relative_to(wheel_env.site_packages), package
    assert on_worker["command"][0] == on_worker["python"]
    # The source tree is not importable there (its dependencies may live beside it, in .venv).
    assert REPO_ROOT not in {Path(p).resolve() for p in on_worker["sys_path"] if p}, on_worker["sys_path"]
    # The head runs the test's interpreter: the probe tells the two apart.
    assert not Path(nodes["node-head"]["package"]).is_relative_to(wheel_env.root)
    store = Store.open(pg_url)
    try:
        with store.transaction() as conn:
            statuses = conn.execute(select(schema.runs.c.status)).scalars().all()
        actors = {entry.actor for entry in AuditLog(store).entries(action="analysis_run")}
    finally:
        store.close()
    assert sorted(statuses) == ["complete", "complete"]
    assert actors == {"cli:node-head", "cli:node-worker"}, actors
