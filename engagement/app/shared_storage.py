"""Does a Ray worker see the same data directory as the machine that started the batch?

On a cluster the data directory's `keys/` (the cohort keys behind every pseudonym) and `audit/`
(the audit log's anchor) must be one shared storage. A worker machine without it would make a
new cohort key of its own and write pseudonyms nobody can link, silently. So the batch writes a
one-off token file into its data directory before the first task, each task looks for that file
in the data directory it sees before its analysis starts (so before any run row), and the batch
removes the file at its end.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

from engagement.core.errors import ConfigError

TOKEN_VAR = "ENGAGEMENT_BATCH_STORAGE_TOKEN"
CHECK_DIR = "batch-check"


@contextlib.contextmanager
def storage_token(data_dir: Path) -> Iterator[str]:
    """A token whose file lies in `data_dir` while the block runs."""
    token = secrets.token_hex(16)
    marker = data_dir / CHECK_DIR / token
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("written by `engagement batch` while it runs; safe to delete afterwards\n")
    except OSError as exc:
        raise ConfigError(f"cannot write the data directory {data_dir}: {exc.strerror or exc}") from None
    try:
        yield token
    finally:
        marker.unlink(missing_ok=True)


def storage_problem(token: str | None, data_dir: Path) -> str:
    """Why this machine cannot take part (its data directory is not the batch's), or ""."""
    if not token or (data_dir / CHECK_DIR / token).is_file():
        return ""
    return (f"worker {socket.gethostname()} cannot see the batch's data directory {data_dir}: its keys/ and "
            "audit/ must be the same shared storage on every machine (mount it there, or set "
            "ENGAGEMENT_DATA_DIR to the shared path); nothing was analysed on this worker")
