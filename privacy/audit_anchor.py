"""The audit log's anchor outside the database: DATA_DIR/audit/anchor-<database id>.json names
the newest entry (seq, hash), so deleting the newest entries, which leaves no broken link inside
the database, still fails `AuditLog.verify`. It also records the checkpoint the chain starts
from (seq, hash) once a purge of the audit tier has removed the oldest entries, so a checkpoint
written into the database by hand is not recorded here and fails `verify`.

Every transaction that appended entries writes the anchor in its commit event, i.e. after its
last statement and just before the database commits; a commit that then fails puts the old
anchor back. So no entry is ever committed unanchored.
"""

from __future__ import annotations

import json
import os
import threading
import weakref
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from engagement.core.config import data_dir
from privacy.errors import AuditError

def anchor_path(database_id: str) -> Path:
    return data_dir() / "audit" / f"anchor-{database_id}.json"


def _anchor_text(database_id: str, seq: int, h: str, checkpoint: tuple[int, str] | None) -> str:
    doc = {"database_id": database_id, "seq": seq, "hash": h}
    if checkpoint is not None:
        doc["checkpoint"] = {"seq": checkpoint[0], "hash": checkpoint[1]}
    return json.dumps(doc)


def _replace_file(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# The newest entry appended on a connection and not yet committed, with the checkpoint the chain
# then starts from: (database id, seq, hash, checkpoint or None).
_pending: weakref.WeakKeyDictionary[Connection, tuple[str, int, str, tuple[int, str] | None]] = weakref.WeakKeyDictionary()
# A connection whose commit is under way: (anchor path, the anchor's text before, the text written).
_committing: weakref.WeakKeyDictionary[Connection, tuple[Path, str | None, str]] = weakref.WeakKeyDictionary()


def install_commit_hooks(engine: Engine) -> None:
    """Anchor, on every commit of `engine`, the newest entry its transaction appended."""
    if event.contains(engine, "commit", _anchor_before_commit):
        return
    event.listen(engine, "begin", _forget)
    event.listen(engine, "rollback", _forget)
    event.listen(engine, "commit", _anchor_before_commit)
    event.listen(engine, "handle_error", _restore_after_failed_commit)


def _forget(conn: Connection) -> None:
    _pending.pop(conn, None)
    _committing.pop(conn, None)


def _anchor_before_commit(conn: Connection) -> None:
    """Runs after the transaction's last statement, before the database commits. Anchoring here
    rather than after the commit means a crash can leave the anchor ahead of the log (verify then
    reports it) but never an entry committed without its anchor. An anchor that cannot be
    written stops the commit: the caller's work is rolled back with one clear error."""
    pending = _pending.pop(conn, None)
    if pending is None:
        return
    db_id, seq, h, checkpoint = pending
    path = anchor_path(db_id)
    text = _anchor_text(db_id, seq, h, checkpoint)
    before = None
    try:
        before = path.read_text(encoding="utf-8") if path.exists() else None
        _replace_file(path, text)
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(
            f"cannot write the audit anchor {path}: {getattr(exc, 'strerror', None) or exc}; nothing was changed"
        ) from None
    except BaseException:
        # Ctrl-C or SIGTERM (a KeyboardInterrupt) here stops the commit: put the anchor back if
        # it was already replaced (only then does the file hold this entry's text).
        _put_back(path, before, text)
        raise
    _committing[conn] = (path, before, text)


def _restore_after_failed_commit(context) -> None:
    """The commit failed (or was interrupted) after the anchor moved on: put the old one back."""
    conn = context.connection
    state = _committing.pop(conn, None) if conn is not None else None
    if state is not None:
        _put_back(*state)


def _put_back(path: Path, before: str | None, written: str) -> None:
    try:
        if not path.exists() or path.read_text(encoding="utf-8") != written:
            return  # not written yet, or another writer has anchored since
        if before is None:
            path.unlink()
        else:
            _replace_file(path, before)
    except (OSError, UnicodeDecodeError):
        # verify will report the anchor ahead of the log; the commit's own error is reported now.
        pass


def anchor_at_commit(conn: Connection, database_id: str, seq: int, h: str,
                     checkpoint: tuple[int, str] | None = None) -> None:
    """`conn`'s transaction appended entry `seq` (to a chain starting after `checkpoint`): anchor
    both when that transaction commits."""
    _pending[conn] = (database_id, seq, h, checkpoint)
