"""A Ray worker that cannot see the batch's data directory (cohort keys, audit anchor) stops
before its analysis starts, so before any run row, with one clear reason."""

from __future__ import annotations

import sys

import pytest

from engagement.app.batch import run_analysis
from engagement.app.shared_storage import CHECK_DIR, TOKEN_VAR, storage_problem, storage_token
from engagement.core.errors import ConfigError


def _writes(marker) -> list[str]:
    """An 'analysis' that only leaves a file behind, to show whether it ran."""
    return [sys.executable, "-c", f"open({str(marker)!r}, 'w').write('ran')"]


def test_a_worker_without_the_shared_data_directory_stops_before_analysing(tmp_path):
    batch_dir, worker_dir = tmp_path / "shared", tmp_path / "worker-local"
    worker_dir.mkdir()
    marker = tmp_path / "ran"
    with storage_token(batch_dir) as token:
        rc, detail, _, _ = run_analysis(_writes(marker), {"ENGAGEMENT_DATA_DIR": str(worker_dir), TOKEN_VAR: token})
    assert rc != 0 and "cannot see the batch's data directory" in detail and str(worker_dir) in detail
    assert not marker.exists()


def test_a_worker_that_sees_it_analyses(tmp_path):
    marker = tmp_path / "ran"
    with storage_token(tmp_path / "shared") as token:
        rc, _, _, _ = run_analysis(_writes(marker), {"ENGAGEMENT_DATA_DIR": str(tmp_path / "shared"), TOKEN_VAR: token})
    assert rc == 0 and marker.read_text() == "ran"


def test_the_token_file_lives_only_while_the_batch_runs(tmp_path):
    with storage_token(tmp_path) as token:
        assert (tmp_path / CHECK_DIR / token).is_file() and storage_problem(token, tmp_path) == ""
    assert not (tmp_path / CHECK_DIR / token).exists() and storage_problem(token, tmp_path)


def test_an_unwritable_data_directory_is_a_clear_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(ConfigError, match="cannot write the data directory"):
        with storage_token(tmp_path / "a-file" / "data"):
            pass
