"""`engagement batch` on a real multi-node Ray cluster: a head and a worker node, each its own
raylet process (Ray's own cluster test utility, on loopback), analysing recordings into one
PostgreSQL database.

Each node runs with its own operating-system user name in its environment, so the audit log's
actor of each analysis (`cli:<user>`, written by the analysis itself) says which node ran it.
With one CPU a node and two recordings submitted at once, both nodes must take one.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from sqlalchemy import select

from engagement.core import schema
from engagement.core.store import Store
from privacy.audit import AuditLog

pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.postgres]


def _node(user: str) -> dict:
    return {"num_cpus": 1, "include_dashboard": False, "env_vars": {"USER": user, "LOGNAME": user}}


def test_a_head_and_a_worker_node_each_analyse_a_recording_into_postgres(tmp_path, videos_dir, pg_url):
    pytest.importorskip("ray", reason="the [cluster] extra is not installed")  # third-party, optional
    from ray.cluster_utils import Cluster

    folder = tmp_path / "archive"
    folder.mkdir()
    for name in ("lbax4n", "brbk7n"):
        shutil.copy(videos_dir / "grid" / f"{name}.mpg", folder / f"{name}.mpg")
    cluster = Cluster(initialize_head=True, head_node_args=_node("node-head"))
    try:
        cluster.add_node(**_node("node-worker"))
        cluster.wait_for_nodes()
        result = subprocess.run(
            [sys.executable, "-m", "engagement.cli.main", "batch", str(folder), "--workers", "2", "--db", pg_url,
             "--ray-address", cluster.address, "--sample-fps", "10"],
            capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
        )
    finally:
        cluster.shutdown()
    assert result.returncode == 0, result.stderr[-3000:]
    store = Store.open(pg_url)
    try:
        with store.transaction() as conn:
            statuses = conn.execute(select(schema.runs.c.status)).scalars().all()
        actors = {entry.actor for entry in AuditLog(store).entries(action="analysis_run")}
    finally:
        store.close()
    assert sorted(statuses) == ["complete", "complete"]
    assert actors == {"cli:node-head", "cli:node-worker"}, actors
