"""A throw-away PostgreSQL server for the test suite: Debian's `postgresql` binaries, a cluster
in a temporary directory, listening only on a Unix socket in that directory (no TCP port, no
system service, nothing left behind).

Tests that need it use the `pg_url` fixture (tests/conftest.py). Where the server binaries are
absent the tests skip, except with ENGAGEMENT_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path


def find_bin(name: str) -> str | None:
    # Debian keeps the server binaries out of PATH, under /usr/lib/postgresql/<major>/bin.
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


class PostgresServer:
    """`start()` -> a running cluster; `url(db)` -> an SQLAlchemy URL; `stop()` removes it all."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="engagement-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.user = "engagement"
        self._as_user: list[str] = []

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self._as_user, *cmd], check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> "PostgresServer":
        initdb, pg_ctl = find_bin("initdb"), find_bin("pg_ctl")
        if not initdb or not pg_ctl:
            raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found; apt-get install postgresql")
        self.socket_dir.mkdir(parents=True)
        if os.geteuid() == 0:
            # initdb refuses to run as root: run the cluster as Debian's `postgres` account.
            shutil.chown(self.root, "postgres")
            shutil.chown(self.socket_dir, "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._run(initdb, "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8")
        options = f"-c listen_addresses='' -c unix_socket_directories={self.socket_dir} -c fsync=off -c max_connections=60"
        self._run(pg_ctl, "-D", str(self.data), "-o", options, "-w", "-t", "60", "-l", str(self.root / "log"), "start")
        return self

    def create_database(self) -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        createdb = find_bin("createdb")
        self._run(createdb, "-h", str(self.socket_dir), "-U", self.user, name)
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.socket_dir}"

    def stop(self) -> None:
        pg_ctl = find_bin("pg_ctl")
        if pg_ctl and self.data.exists():
            subprocess.run([*self._as_user, pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"],
                           capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)
