"""Keyed pseudonyms: HMAC-SHA256 of a participant's identity under a per-cohort secret key.

The key lives in a file under data_dir()/keys/<cohort>.key (mode 0600), apart from the database:
someone holding only the database cannot turn an identity into its pseudonym, or back.
Destroying a cohort key (crypto-shredding) makes every pseudonym of that cohort unlinkable for
good; a later use of the cohort makes a fresh key, so the same identity maps to a new pseudonym.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from pathlib import Path

from sqlalchemy.engine import Connection

from engagement.core.config import data_dir
from engagement.core.errors import ConfigError
from engagement.core.repositories import retention as retention_rows
from privacy.audit import AuditAction, AuditLog, resolve_actor
from privacy.errors import CohortKeyError

DEFAULT_COHORT = "default"
_COHORT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
# Prefixes tell a consenting participant's pseudonym from a session-attested track's.
PARTICIPANT_PREFIX = "p-"
ATTESTED_PREFIX = "a-"


def check_cohort(cohort: str | None) -> str:
    """A cohort name safe to use as a file name (no path separators, no leading dot)."""
    name = DEFAULT_COHORT if cohort in (None, "") else str(cohort)
    if not _COHORT_RE.match(name):
        raise ConfigError(
            f"cohort name {name!r} is not valid: use 1-64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def normalise_identity(identity: str) -> str:
    """The same person written with different case or stray spaces maps to one pseudonym."""
    text = " ".join(str(identity).split()).casefold()
    if not text:
        raise ConfigError("participant identity is empty")
    if len(text) > 320:
        raise ConfigError("participant identity is longer than 320 characters")
    return text


def keys_dir() -> Path:
    return data_dir() / "keys"


def key_path(cohort: str) -> Path:
    return keys_dir() / f"{check_cohort(cohort)}.key"


def fingerprint(key: bytes) -> str:
    """A short public name for a key generation (not enough to recover the key)."""
    return hashlib.sha256(b"engagement-key-fingerprint\0" + key).hexdigest()[:16]


class KeyRing:
    """Loads (and on first use creates) cohort keys. `store` is optional; with it, creation and
    destruction are recorded in `cohort_key_events` and the audit log."""

    def __init__(self, store=None, *, directory: Path | None = None):
        self.store = store
        self.directory = directory or keys_dir()
        self._cache: dict[str, bytes] = {}

    def path(self, cohort: str) -> Path:
        return self.directory / f"{check_cohort(cohort)}.key"

    def key(self, cohort: str | None, *, create: bool = True) -> bytes:
        cohort = check_cohort(cohort)
        if cohort in self._cache:
            return self._cache[cohort]
        path = self.path(cohort)
        if path.exists():
            key = _read_key(path)
        elif not create:
            raise CohortKeyError(
                f"cohort {cohort!r} has no key (never used, or destroyed): its pseudonyms cannot be "
                "recomputed"
            )
        else:
            key = self._create(cohort, path)
        self._cache[cohort] = key
        return key

    def _create(self, cohort: str, path: Path) -> bytes:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
        except OSError as exc:
            raise CohortKeyError(f"cannot create the key directory {self.directory}: {exc.strerror}") from None
        key = secrets.token_bytes(32)
        if not _publish_key(path, key):
            return _read_key(path)  # another process (a batch worker) created it first: theirs holds
        if self.store is not None:
            with self.store.transaction() as conn:
                _key_event(conn, cohort, "created", fingerprint(key))
                AuditLog(self.store).record(
                    AuditAction.KEY_CREATED, resolve_actor(), {"cohort": cohort, "fingerprint": fingerprint(key)},
                    conn=conn,
                )
        return key

    def pseudonym(self, identity: str, cohort: str | None) -> str:
        """The participant's pseudonym in this cohort (creates the cohort key on first use)."""
        key = self.key(cohort)
        digest = hmac.new(key, normalise_identity(identity).encode("utf-8"), hashlib.sha256).hexdigest()
        return PARTICIPANT_PREFIX + digest[:40]

    def lookup(self, identity: str, cohort: str | None) -> str:
        """Like `pseudonym` but never creates a key: for access/erasure of existing data."""
        key = self.key(cohort, create=False)
        digest = hmac.new(key, normalise_identity(identity).encode("utf-8"), hashlib.sha256).hexdigest()
        return PARTICIPANT_PREFIX + digest[:40]

    def attested_pseudonym(self, cohort: str | None, session_name: str, track_label: str) -> str:
        """Pseudonym of an anonymous track in a session covered by a facilitator's attestation.

        Scoped to session + track: nobody's identity is known, and the same person in another
        session gets an unrelated pseudonym."""
        key = self.key(cohort)
        msg = f"attested\0{session_name}\0{track_label}".encode("utf-8")
        return ATTESTED_PREFIX + hmac.new(key, msg, hashlib.sha256).hexdigest()[:40]

    def destroy(self, cohort: str, *, actor: str | None = None) -> str:
        """Record the destruction, then overwrite and delete the cohort key. Returns the destroyed
        key's fingerprint.

        Recorded first, in one transaction (key event + audit entry), the file destroyed only
        after that commit: a database that cannot be written (locked, full, read-only) leaves the
        key in place and nothing changed, never a key gone without a trace."""
        cohort = check_cohort(cohort)
        path = self.path(cohort)
        if not path.exists():
            raise CohortKeyError(f"cohort {cohort!r} has no key to destroy (already destroyed or never used)")
        fp = fingerprint(_read_key(path))
        # Checked before recording, so a key that could not be removed is not recorded as destroyed.
        if not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)):
            raise CohortKeyError(f"cannot destroy the cohort key {path}: the file or its directory is not writable")
        if self.store is not None:
            with self.store.transaction() as conn:
                _key_event(conn, cohort, "destroyed", fp)
                AuditLog(self.store).record(
                    AuditAction.KEY_DESTROYED, actor or resolve_actor(), {"cohort": cohort, "fingerprint": fp}, conn=conn
                )
        self._cache.pop(cohort, None)
        try:
            # Overwrite before unlinking: on ordinary file systems this removes the bytes rather
            # than only the name (copy-on-write file systems and backups are the operator's
            # concern, see docs/privacy.md).
            size = path.stat().st_size
            with open(path, "r+b") as fh:
                fh.write(secrets.token_bytes(size))
                fh.flush()
                os.fsync(fh.fileno())
            path.unlink()
        except OSError as exc:
            raise CohortKeyError(
                f"the destruction of cohort key {cohort!r} is recorded, but {path} could not be removed "
                f"({exc.strerror}); delete that file by hand"
            ) from None
        return fp


def _publish_key(path: Path, key: bytes) -> bool:
    """Write the key under `path` so that it appears whole or not at all; False when another
    process's key got there first. Two batch workers create a cohort's key at the same moment:
    the key is written to a file of its own and then hard-linked into place (atomic, and it fails
    when the name exists). Before, the file was created empty and then written, and a worker
    that read it in between found a "corrupt" key."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        _write_new(tmp, key)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError:
            # A file system without hard links (FAT, some network shares): in place, exclusively.
            try:
                _write_new(path, key)
            except FileExistsError:
                return False
        return True
    except OSError as exc:
        raise CohortKeyError(f"cannot create the cohort key {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _write_new(path: Path, key: bytes) -> None:
    """Create `path` (never an existing one: O_EXCL), readable by this user only, with the key."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.hex() + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _read_key(path: Path) -> bytes:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        # Only POSIX modes say who may read a file. Windows reports 0o666 for every writable file
        # (chmod sets only the read-only flag): the key, in the user's profile, is guarded by the
        # profile's access rules there, and this check refused every key after the first use.
        if os.name == "posix" and mode & 0o077:
            raise CohortKeyError(
                f"cohort key {path} is readable by other users (mode {mode:o}); run `chmod 600 {path}`"
            )
        text = path.read_text().strip()
    except OSError as exc:
        raise CohortKeyError(f"cannot read the cohort key {path}: {exc.strerror}") from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise CohortKeyError(f"cohort key {path} is corrupt (expected 64 hex digits)")
    return key


def _key_event(conn: Connection, cohort: str, event: str, fp: str) -> None:
    retention_rows.add_key_event(conn, cohort, event, fp)
