"""Private files stay private: everything the program writes is owner-only (0600 files, 0700
directories), whatever the user's umask, because it is personal data or protects it."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path


def _engagement(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "engagement.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )


def test_database_keys_receipts_and_dpia_are_owner_only(tmp_path, isolated_data_dir):
    env = {**os.environ, "ENGAGEMENT_DATA_DIR": str(isolated_data_dir)}
    # A permissive umask, as on most desktops: the program must not inherit it.
    old = os.umask(0o022)
    try:
        steps = [
            ("privacy", "consent", "attest", "Kelas A", "--by", "Fasilitator", "--notice-version", "2026-1",
             "--language", "id", "--evidence", "form 1"),
            ("privacy", "purge", "--yes"),
            ("privacy", "dpia", "--format", "html", "--out", str(tmp_path / "dpia.html")),
        ]
        for step in filter(None, steps):
            result = _engagement(*step, env=env)
            assert result.returncode == 0, (step, result.stderr)
    finally:
        os.umask(old)

    written = [isolated_data_dir, *isolated_data_dir.rglob("*"), tmp_path / "dpia.html"]
    assert any(p.name.endswith(".db") for p in written)
    assert any(p.parent.name == "receipts" for p in written if p.is_file())
    loose = {
        str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in written
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    }
    assert loose == {}
