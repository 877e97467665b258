"""Append-only, hash-chained audit log with an anchor outside the database.

Each entry stores the SHA-256 of its own content and the hash of the entry before it, so an
edited entry no longer matches its hash, a deleted one leaves a link pointing at nothing, and a
reordered one points at the wrong predecessor. `verify()` walks the chain and names the entry.

Deleting the newest entries leaves no broken link inside the database, so the head (seq, hash)
is also kept in an anchor file, DATA_DIR/audit/anchor-<database id>.json, outside the database
(`privacy.audit_anchor`).
Every transaction that appended entries writes the anchor in its commit event, i.e. after its
last statement and just before the database commits; a commit that then fails puts the old
anchor back. So no entry is ever committed unanchored, whether it was written in a transaction
of its own or inside a caller's (consent, purge, key destruction, erasure). `verify` requires the
anchor to name exactly the newest entry: a missing, unreadable, older or different anchor is a
failure. The database id lives in the `meta` table, so the anchor is found again after the
database file is moved or restored; `reanchor` (audited, with a reason) is the deliberate way to
accept a new state after a restore.

Details carry pseudonyms, counts and ids only: `record` refuses keys that name identities and
any binary value.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import random
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DatabaseError, IntegrityError, OperationalError

from engagement.core import schema
from engagement.core.errors import StoreError
from engagement.core.repositories import audit as audit_rows
from engagement.core.repositories.audit import database_id
from engagement.core.store import describe_db_error, take_write_turn
from engagement.core.time import as_utc, iso, utcnow
from privacy.audit_anchor import anchor_at_commit, anchor_path, install_commit_hooks
from privacy.errors import AuditError

GENESIS = "0" * 64
_DATABASE_ID_RE = re.compile(r"^[0-9a-f]{32}$")
_HASH_RE = re.compile(r"^[0-9a-f]{64}$")


class AuditAction(str, enum.Enum):
    ANALYSIS_RUN = "analysis_run"
    CONSENT_GRANTED = "consent_granted"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    CONSENT_ATTESTED = "consent_attested"
    CONSENT_IMPORTED = "consent_imported"
    EXPORT = "export"
    INDIVIDUAL_VIEW = "individual_view"
    POLICY_CHANGE = "policy_change"
    PURGE = "purge"
    SUBJECT_ACCESS = "subject_access"
    SUBJECT_ERASURE = "subject_erasure"
    KEY_CREATED = "key_created"
    KEY_DESTROYED = "key_destroyed"
    DPIA_GENERATED = "dpia_generated"
    # Dashboard events: who signed in and what they changed is part of the processing trail.
    SIGN_IN = "sign_in"
    SIGN_IN_FAILED = "sign_in_failed"
    SIGN_OUT = "sign_out"
    USER_CREATED = "user_created"
    USER_CHANGED = "user_changed"
    AGENDA_CHANGED = "agenda_changed"
    REPORT_DOWNLOAD = "report_download"
    # `engagement serve` refused a participant's request that matters (a foreign or replayed
    # token, a second stream, a flood): who (pseudonym) and why, never what was sent.
    PARTICIPANT_REFUSED = "participant_refused"
    # The anchor outside the database was reset on purpose (database moved or restored).
    AUDIT_REANCHORED = "audit_reanchored"


# Keys that would put an identity (rather than a pseudonym) into the log.
_FORBIDDEN_KEYS = {"identity", "name", "full_name", "email", "e-mail", "nip", "nik", "phone", "image", "pixels", "frame"}


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: datetime
    action: str
    actor: str
    details: dict
    correlation_id: str | None
    prev_hash: str
    hash: str

    def to_dict(self) -> dict:
        return {
            "seq": self.seq,
            "at": iso(self.at),
            "action": self.action,
            "actor": self.actor,
            "details": self.details,
            "correlation_id": self.correlation_id,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: str  # edited | deleted | reordered | broken | truncated | unanchored | anchor | checkpoint
    message: str


@dataclass
class VerifyResult:
    entries: int
    problems: list[Problem] = field(default_factory=list)
    first_seq: int | None = None
    last_seq: int | None = None
    anchored_seq: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def __bool__(self) -> bool:
        return self.ok

    def summary(self) -> str:
        if self.ok:
            span = f" (entries {self.first_seq}..{self.last_seq})" if self.entries else ""
            return f"audit log intact: {self.entries} entries{span}"
        return f"audit log TAMPERED: {len(self.problems)} problem(s); first at entry {self.problems[0].seq}"


def canonical_details(details: dict) -> str:
    _check_details(details, "details")
    try:
        return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AuditError(f"audit details must be plain JSON values: {exc}") from None


def _check_details(value, where: str) -> None:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raise AuditError(f"audit {where} holds binary data; the audit log never stores bytes")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditError(f"audit {where} has a non-text key {key!r}")
            if key.casefold() in _FORBIDDEN_KEYS:
                raise AuditError(
                    f"audit {where} has the key {key!r}: the audit log holds pseudonyms only, never identities"
                )
            _check_details(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_details(item, where)
    elif hasattr(value, "shape") and hasattr(value, "dtype"):
        raise AuditError(f"audit {where} holds an array; the audit log never stores pixels")


def entry_hash(prev_hash: str, at: datetime, action: str, actor: str, details_text: str, correlation_id: str | None) -> str:
    # seq is deliberately not hashed: order is carried by the prev_hash links, so a swap shows up
    # as "out of order" rather than as two "edited" entries.
    payload = json.dumps(
        [prev_hash, iso(at), action, actor, details_text, correlation_id],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class AuditLog:
    def __init__(self, store):
        self.store = store
        install_commit_hooks(store.engine)

    # -- writing -----------------------------------------------------------------------------

    def record(
        self,
        action: AuditAction,
        actor: str,
        details: dict,
        correlation_id: str | None = None,
        *,
        conn: Connection | None = None,
        at: datetime | None = None,
    ) -> AuditEntry:
        """Append one entry. With `conn`, inside the caller's transaction (it commits or rolls
        back with the caller's work); without, in a transaction of its own. Either way the entry
        is anchored when its transaction commits."""
        if not isinstance(action, AuditAction):
            raise AuditError(f"audit action {action!r} is not an AuditAction member")
        action_value = action.value
        actor = str(actor or "unknown")[:100]
        details_text = canonical_details(dict(details or {}))
        if correlation_id is not None:
            correlation_id = str(correlation_id)[:64]
        when = as_utc(at) if at else utcnow()
        # Microseconds survive both SQLite and PostgreSQL, so the hash recomputes exactly.
        if conn is not None:
            return self._append(conn, when, action_value, actor, details_text, correlation_id)
        for attempt in range(8):
            try:
                # engine.begin(), not store.transaction(): the latter turns the collision below into
                # a StoreError before it could be retried.
                with self.store.engine.begin() as own:
                    entry = self._append(own, when, action_value, actor, details_text, correlation_id)
            except (IntegrityError, OperationalError) as exc:
                text = str(getattr(exc, "orig", exc)).lower()
                retry = isinstance(exc, IntegrityError) or "locked" in text or "busy" in text
                if not retry:
                    raise StoreError(describe_db_error(exc, self.store.url)) from None
                # Another writer took this seq (or the write lock) first: re-read the head, retry.
                time.sleep(0.02 * (attempt + 1) + random.random() * 0.02)
                continue
            except DatabaseError as exc:
                raise StoreError(describe_db_error(exc, self.store.url)) from None
            return entry
        raise AuditError("could not append to the audit log: too many concurrent writers; try again")

    def _append(self, conn: Connection, when, action, actor, details_text, correlation_id) -> AuditEntry:
        take_write_turn(conn)  # the head read below must still be the head when this entry lands
        last = audit_rows.head(conn)
        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
        h = entry_hash(prev, when, action, actor, details_text, correlation_id)
        db_id = database_id(conn, create=True)
        audit_rows.append(
            conn, seq=seq, at=when, action=action, actor=actor, details=details_text,
            correlation_id=correlation_id, prev_hash=prev, hash=h,
        )
        cp = audit_rows.checkpoint(conn)
        anchor_at_commit(conn, db_id, seq, h, (int(cp.seq), cp.hash) if cp else None)
        return AuditEntry(seq, when, action, actor, json.loads(details_text), correlation_id, prev, h)

    def reanchor(self, reason: str, actor: str) -> tuple[AuditEntry, VerifyResult]:
        """Accept the log as it stands (after a deliberate move or restore): record why, with
        what verify found before, and anchor that entry. Problems inside the chain (edited,
        deleted, reordered entries) stay visible to verify; only the outside witness is reset."""
        reason = " ".join(str(reason or "").split())
        if not reason:
            raise AuditError("give the reason for re-anchoring (--reason), e.g. \"database restored from the 1 May backup\"")
        if len(reason) > 500:
            raise AuditError("the reason is longer than 500 characters")
        before = self.verify()
        entry = self.record(
            AuditAction.AUDIT_REANCHORED, actor,
            {"reason": reason, "last_seq": before.last_seq, "anchored_seq": before.anchored_seq,
             "problems": [{"seq": p.seq, "kind": p.kind} for p in before.problems[:50]]},
        )
        return entry, before

    # -- reading -----------------------------------------------------------------------------

    def entries(self, *, action: str | None = None, limit: int | None = None, conn: Connection | None = None) -> list[AuditEntry]:
        t = schema.audit_log
        q = select(t).order_by(t.c.seq)
        if action:
            q = q.where(t.c.action == AuditAction(action).value)
        if limit:
            q = select(t).order_by(t.c.seq.desc()).limit(limit)
            if action:
                q = q.where(t.c.action == AuditAction(action).value)
        if conn is None:
            with self.store.transaction() as own:
                rows = own.execute(q).all()
        else:
            rows = conn.execute(q).all()
        out = [_row_entry(r) for r in rows]
        return sorted(out, key=lambda e: e.seq)

    def verify(self) -> VerifyResult:
        t = schema.audit_log
        with self.store.transaction() as conn:
            rows = conn.execute(select(t).order_by(t.c.seq)).all()
            cp = conn.execute(select(schema.audit_checkpoint.c.seq, schema.audit_checkpoint.c.hash)).first()
            db_id = database_id(conn)
            m = schema.meta
            versioned = conn.execute(select(m.c.value).where(m.c.key == "schema_version")).first() is not None
            # Rows that are only ever written together with an audit entry: with any of them the
            # log cannot legitimately be empty and unanchored.
            audited = any(
                conn.execute(select(table).limit(1)).first() is not None
                for table in (schema.consent_records, schema.cohort_key_events, schema.purge_receipts)
            )
            backing = _checkpoint_entry(rows, cp) if cp is not None else None
            receipt = _receipt(conn, backing[1].get("receipt_id")) if backing is not None else None
        result = VerifyResult(entries=len(rows))
        if rows:
            result.first_seq, result.last_seq = int(rows[0].seq), int(rows[-1].seq)
        seq_by_hash = {r.hash: int(r.seq) for r in rows}
        prev_hash, prev_seq = (cp.hash, int(cp.seq)) if cp else (GENESIS, 0)
        prev_intact = True
        for r in rows:
            seq = int(r.seq)
            recomputed = entry_hash(r.prev_hash, as_utc(r.at), r.action, r.actor, r.details, r.correlation_id)
            intact = recomputed == r.hash
            if not intact:
                result.problems.append(
                    Problem(seq, "edited", f"entry {seq} was edited: its content no longer matches its hash")
                )
            if r.prev_hash != prev_hash:
                after = seq_by_hash.get(r.prev_hash)
                if after is not None and after != prev_seq:
                    result.problems.append(
                        Problem(seq, "reordered", f"entry {seq} is out of order: it was written right after entry {after}, not {prev_seq}")
                    )
                elif seq > prev_seq + 1:
                    missing = f"entry {prev_seq + 1}" if seq == prev_seq + 2 else f"entries {prev_seq + 1}..{seq - 1}"
                    result.problems.append(Problem(prev_seq + 1, "deleted", f"{missing} deleted (entry {seq} points at a missing predecessor)"))
                elif prev_intact:
                    # The predecessor's own hash checks out but is not what this entry saw: the
                    # predecessor was replaced wholesale (content and hash rewritten).
                    result.problems.append(
                        Problem(prev_seq, "edited", f"entry {prev_seq} was replaced: entry {seq} was chained to a different entry {prev_seq}")
                    )
            elif seq != prev_seq + 1:
                result.problems.append(
                    Problem(seq, "broken", f"entry numbers jump from {prev_seq} to {seq} although the chain is linked")
                )
            prev_hash, prev_seq, prev_intact = r.hash, seq, intact
        if not versioned:
            # Every database this software makes records its schema version at once.
            result.problems.append(Problem(1, "truncated", (
                "the meta table was emptied (the schema version and the database id are gone), which only "
                "happens by hand: the audit log and its anchor's link were removed with it")))
        if cp is not None:
            _check_checkpoint(result, cp, backing, receipt)
        self._check_anchor(result, rows, cp, db_id, audited)
        return result

    def _check_anchor(self, result: VerifyResult, rows, cp, db_id: str | None, audited: bool) -> None:
        """The anchor must name exactly the newest entry (or the checkpoint, if none is left).
        A database id exists from the first entry on, so with an id the anchor must exist too."""
        head_seq = int(rows[-1].seq) if rows else (int(cp.seq) if cp else 0)
        fix = "if the database was moved or restored on purpose, run `engagement privacy audit re-anchor --reason ...`"
        if db_id is None:
            if head_seq:
                result.problems.append(Problem(head_seq, "anchor", (
                    "the log has no anchor outside the database (no database id: written by an older "
                    f"version, or the id was removed), so deletions at its end cannot be detected; {fix}")))
            elif audited:
                result.problems.append(Problem(1, "truncated", (
                    "the log is empty and has no database id, yet the database holds consent records, key "
                    "events or receipts, each written with an audit entry: the log and its id were removed")))
            return
        if not _DATABASE_ID_RE.match(db_id):
            result.problems.append(Problem(head_seq, "anchor", f"the database id {db_id[:40]!r} in the meta table is malformed"))
            return
        path = anchor_path(db_id)
        if not path.exists():
            result.problems.append(Problem(head_seq, "anchor", (
                f"the anchor file {path} is missing, so deletions at the end of the log cannot be ruled out; {fix}")))
            return
        try:
            anchor = json.loads(path.read_text(encoding="utf-8"))
            a_id, a_seq, a_hash = str(anchor["database_id"]), int(anchor["seq"]), str(anchor["hash"])
            if a_seq < 1 or not _HASH_RE.match(a_hash):
                raise ValueError("bad seq or hash")
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            result.problems.append(Problem(head_seq, "anchor", f"the anchor file {path} is unreadable or malformed ({exc}); {fix}"))
            return
        if a_id != db_id:
            result.problems.append(Problem(head_seq, "anchor", f"the anchor file {path} belongs to another database ({a_id[:40]})"))
            return
        result.anchored_seq = a_seq
        if a_seq > head_seq:
            missing = f"entry {a_seq}" if a_seq == head_seq + 1 else f"entries {head_seq + 1}..{a_seq}"
            result.problems.append(Problem(head_seq + 1, "truncated", (
                f"{missing} deleted from the end of the log (the anchor file records entry {a_seq}; "
                "a writer killed during its commit leaves the same trace)")))
            return
        anchored = {int(r.seq): r.hash for r in rows}
        if cp is not None:
            anchored.setdefault(int(cp.seq), cp.hash)
        a_cp = anchor.get("checkpoint")
        if cp is not None and (not isinstance(a_cp, dict) or (a_cp.get("seq"), a_cp.get("hash")) != (int(cp.seq), cp.hash)):
            result.problems.append(Problem(int(cp.seq), "checkpoint", (
                f"the checkpoint at entry {int(cp.seq)} is not the one recorded by the anchor file {path}: "
                "it was written outside a purge of the audit tier")))
        if a_seq in anchored and anchored[a_seq] != a_hash:
            result.problems.append(Problem(a_seq, "edited", f"entry {a_seq} differs from the copy anchored outside the database"))
        if a_seq < head_seq:
            span = f"entry {head_seq}" if head_seq == a_seq + 1 else f"entries {a_seq + 1}..{head_seq}"
            result.problems.append(Problem(a_seq + 1, "unanchored", (
                f"{span} not anchored: the anchor file records entry {a_seq} (an older copy of the "
                f"anchor, or entries written around this software); {fix}")))


def _checkpoint_entry(rows, cp) -> tuple[datetime, dict] | None:
    """(time, details) of the purge entry that wrote checkpoint `cp`: every purge of the audit
    tier records the checkpoint it leaves in its own, chained and anchored, entry."""
    for r in rows:
        if r.action != AuditAction.PURGE.value:
            continue
        try:
            details = json.loads(r.details)
        except ValueError:
            continue
        mark = details.get("checkpoint") if isinstance(details, dict) else None
        if isinstance(mark, dict) and (mark.get("seq"), mark.get("hash")) == (int(cp.seq), cp.hash):
            return as_utc(r.at), details
    return None


def _receipt(conn: Connection, receipt_id) -> dict | None:
    """The counts of purge receipt `receipt_id`, or None when there is no such purge receipt."""
    if not isinstance(receipt_id, int) or isinstance(receipt_id, bool):
        return None
    pr = schema.purge_receipts
    row = conn.execute(select(pr.c.kind, pr.c.counts_json).where(pr.c.id == receipt_id)).first()
    if row is None or row.kind != "purge":
        return None
    try:
        counts = json.loads(row.counts_json)
    except ValueError:
        return None
    return counts if isinstance(counts, dict) else None


def _check_checkpoint(result: VerifyResult, cp, backing, receipt: dict | None) -> None:
    """A checkpoint is proven by the purge that wrote it: that purge's entry (chained, anchored)
    names it, its receipt counts the entries removed, and the newest of them was older than the
    audit tier's retention period when it was removed."""
    seq = int(cp.seq)
    if backing is None:
        result.problems.append(Problem(seq, "checkpoint", (
            f"the log starts after a checkpoint at entry {seq} that no purge entry records: entries 1..{seq} "
            "were deleted outside a purge of the audit tier")))
        return
    at, details = backing
    mark = details["checkpoint"]
    removed = (details.get("counts") or {}).get("audit_log")
    if receipt is None or receipt.get("audit_log") != removed or not removed:
        result.problems.append(Problem(seq, "checkpoint", (
            f"the purge that wrote the checkpoint at entry {seq} has no matching receipt "
            f"(receipt {details.get('receipt_id')!r} is missing or counts other deletions)")))
    try:
        newest = as_utc(datetime.fromisoformat(str(mark["newest_removed_at"])))
        kept = timedelta(seconds=int(mark["retention_s"]))
    except (KeyError, TypeError, ValueError):
        result.problems.append(Problem(seq, "checkpoint", f"the checkpoint at entry {seq} does not say how old the removed entries were"))
        return
    if newest >= at - kept:
        result.problems.append(Problem(seq, "checkpoint", (
            f"the checkpoint at entry {seq} removed entries younger than the audit tier's retention "
            f"period ({kept.days} days)")))


def _row_entry(r) -> AuditEntry:
    try:
        details = json.loads(r.details)
    except ValueError:
        details = {"_unreadable": True}
    return AuditEntry(int(r.seq), as_utc(r.at), r.action, r.actor, details, r.correlation_id, r.prev_hash, r.hash)


def resolve_actor() -> str:
    """The one actor name for command-line actions: "cli:<operating-system account>" (a staff
    account, never a participant). Dashboard actions use "dashboard:<account>" instead."""
    import getpass

    try:
        return "cli:" + getpass.getuser()
    except Exception:  # noqa: BLE001 - containers may have no user name; the uid still names the account
        return f"cli:uid{os.getuid()}" if hasattr(os, "getuid") else "cli:unknown"  # no uid on Windows
