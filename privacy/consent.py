"""Consent records: grant, withdraw, attest, list, ask.

Default deny starts here: the pipeline computes nothing for a face that cannot be tied to an
active record (see `privacy.gate`). Only pseudonyms are stored, never an identity. A participant
consents per scope; a facilitator may instead attest that everyone present in a session
consented. Withdrawal takes effect from its time and, once no scope of the participant remains,
purges everything stored for them (with a receipt). The SQL lives in
`engagement.core.repositories.consent`; the rules (what is valid, what a withdrawal purges, what is
audited) live here, and so does the one rule "is this consent active at t for this scope?", in
its Python form (`is_active`, for records in memory: the gate, `has_consent`) and its SQL form
(`active_condition`, `track_consented`: exports and the retention purge).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql import ColumnElement

from engagement.core import schema
from engagement.core.repositories import consent as repo
from engagement.core.time import as_utc, iso, parse_when, utcnow
from privacy.audit import AuditAction, AuditLog, resolve_actor
from privacy.data import add_receipt, delete_participant_data, delete_tracks, write_receipt_file
from privacy.errors import ConsentError
from privacy.pseudonym import ATTESTED_PREFIX, KeyRing, check_cohort

SCOPES = ("facilitator_feedback", "research")
# The scope the analysis pipeline needs; research exports additionally need "research".
ANALYSIS_SCOPE = "facilitator_feedback"
LANGUAGES = ("id", "en")


# -- the rule: is this consent active at t (for this scope)? --------------------------------------


def is_active(granted_at: datetime, withdrawn_at: datetime | None, when: datetime) -> bool:
    """A consent counts from the moment it was granted up to, not including, its withdrawal."""
    return granted_at <= when and (withdrawn_at is None or when < withdrawn_at)


def active_condition(when: datetime, scope: str | None = None) -> ColumnElement[bool]:
    """`is_active` as SQL on `consent_records`, for `scope` (None: any scope)."""
    c = schema.consent_records.c
    rule = and_(c.granted_at <= when, or_(c.withdrawn_at.is_(None), c.withdrawn_at > when))
    return rule if scope is None else and_(c.scope == scope, rule)


def track_consented(scope: str | None, when: datetime) -> ColumnElement[bool]:
    """SQL condition on `tracks`: the track's participant has a consent for `scope` (None: any)
    active at `when`; an attested track (`a-...`), an attestation of its own run's session.

    Both subqueries are correlated with the outer track row explicitly: left to automatic
    correlation, a subquery that names `tracks` two levels down gets its own FROM tracks and
    checks every track against one arbitrary session."""
    t, r, s = schema.tracks, schema.runs, schema.sessions
    c = schema.consent_records.c
    active = active_condition(when, scope)
    personal = exists().where(active, c.kind == repo.PARTICIPANT, c.participant == t.c.participant).correlate(t)
    attested = (
        exists()
        .where(active, c.kind == repo.ATTESTATION, c.session_name == s.c.name, s.c.id == r.c.session_id,
               r.c.id == t.c.run_id)
        .correlate(t)
    )
    is_attested = t.c.participant.startswith(ATTESTED_PREFIX)
    return and_(t.c.participant.is_not(None), or_(and_(~is_attested, personal), and_(is_attested, attested)))


@dataclass(frozen=True)
class ConsentRecord:
    id: int
    kind: str
    cohort: str
    participant: str | None
    session_name: str | None
    attested_by: str | None
    scope: str
    notice_version: str
    language: str
    evidence: str
    granted_at: datetime
    withdrawn_at: datetime | None

    @classmethod
    def from_row(cls, row) -> "ConsentRecord":
        return cls(
            id=int(row.id), kind=row.kind, cohort=row.cohort, participant=row.participant,
            session_name=row.session_name, attested_by=row.attested_by, scope=row.scope,
            notice_version=row.notice_version, language=row.language, evidence=row.evidence,
            granted_at=as_utc(row.granted_at),
            withdrawn_at=as_utc(row.withdrawn_at) if row.withdrawn_at is not None else None,
        )

    def active_at(self, when: datetime, scope: str | None = None) -> bool:
        """`is_active` for this record, for `scope` (None: any scope)."""
        return (scope is None or self.scope == scope) and is_active(self.granted_at, self.withdrawn_at, when)

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "kind": self.kind,
            "cohort": self.cohort,
            "participant": self.participant,
            "session": self.session_name,
            "attested_by": self.attested_by,
            "scope": self.scope,
            "notice_version": self.notice_version,
            "language": self.language,
            "evidence": self.evidence,
            "granted_at": iso(self.granted_at),
            "withdrawn_at": iso(self.withdrawn_at),
        }


# -- checking what a person typed -----------------------------------------------------------------


def check_scopes(scopes: Iterable[str] | str | None, *, where: str = "") -> tuple[str, ...]:
    if scopes is None or scopes == "":
        return (ANALYSIS_SCOPE,)
    if isinstance(scopes, str):
        scopes = [s for s in scopes.replace(";", ",").split(",")]
    out = []
    for s in scopes:
        name = str(s).strip().lower().replace("-", "_")
        if not name:
            continue
        if name not in SCOPES:
            raise ConsentError(f"{where}unknown consent scope {s!r}; choose from: {', '.join(SCOPES)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ConsentError(f"{where}no consent scope given; choose from: {', '.join(SCOPES)}")
    return tuple(out)


def check_text(value, what: str, where: str = "", limit: int = 300) -> str:
    text = "" if value is None else str(value).strip()
    if not text:
        raise ConsentError(f"{where}{what} is missing")
    if len(text) > limit:
        raise ConsentError(f"{where}{what} is longer than {limit} characters")
    return text


def check_language(value, where: str = "") -> str:
    lang = check_text(value, "notice language", where, 8).lower()
    if lang not in LANGUAGES:
        raise ConsentError(f"{where}notice language {value!r} is not supported; use one of: {', '.join(LANGUAGES)}")
    return lang


def check_time(value, what: str, where: str = "") -> datetime:
    """A time given as a datetime or ISO text; empty means now."""
    if value is None or value == "":
        return utcnow()
    if isinstance(value, datetime):
        return as_utc(value)
    try:
        return parse_when(str(value), what=what)
    except Exception as exc:  # noqa: BLE001 - re-raised with the row it came from
        raise ConsentError(f"{where}{exc}") from None


@dataclass(frozen=True)
class Notice:
    """What a consent was given on: the notice's version and language, and where the evidence is."""

    version: str
    language: str
    evidence: str

    @classmethod
    def check(cls, version, language, evidence, where: str = "", *, hint: bool = False) -> "Notice":
        """`hint`: the messages name the command-line option and the roster field to give."""
        return cls(
            check_text(version, "notice version" + (" (give --notice-version or notice_version)" if hint else ""),
                       where, 64),
            check_language(language or "", where),
            check_text(evidence, "evidence reference" + (" (give --evidence or evidence)" if hint else ""), where),
        )


def _reason(reason: str | None) -> dict:
    """The audit detail of an optional reason (whitespace folded, at most 500 characters)."""
    text = " ".join(str(reason or "").split())
    return {"reason": text[:500]} if text else {}


def audit(store, conn: Connection, action: AuditAction, actor: str | None, details: dict) -> None:
    """Audit a consent change in the transaction that makes it (no change goes unrecorded)."""
    AuditLog(store).record(action, actor or resolve_actor(), details, conn=conn)


def add_participant_consents(conn: Connection, pseudonym: str, cohort: str, scopes, notice: Notice,
                             when: datetime) -> list[int]:
    return repo.add_consents(
        conn, repo.PARTICIPANT, {"participant": pseudonym}, scopes, cohort=cohort, notice_version=notice.version,
        language=notice.language, evidence=notice.evidence, granted_at=when,
    )


# -- granting and withdrawing ---------------------------------------------------------------------


def grant(store, identity: str, *, cohort: str | None, scopes: Iterable[str] | str | None = None,
          notice_version: str, language: str, evidence: str, at: datetime | None = None, actor: str | None = None,
          ring: KeyRing | None = None, reason: str | None = None) -> list[ConsentRecord]:
    """Record a participant's consent for each scope. Only the pseudonym is stored. `reason`
    (free text from the person recording it, e.g. in the dashboard) goes into the audit entry."""
    cohort = check_cohort(cohort)
    scopes = check_scopes(scopes)
    notice = Notice.check(notice_version, language, evidence)
    when = check_time(at, "granted time")
    ring = ring or KeyRing(store)
    pseudonym = ring.pseudonym(identity, cohort)  # before the transaction: may create the key
    with store.transaction() as conn:
        ids = add_participant_consents(conn, pseudonym, cohort, scopes, notice, when)
        audit(store, conn, AuditAction.CONSENT_GRANTED, actor,
              {"participant": pseudonym, "cohort": cohort, "scopes": list(scopes), "notice_version": notice.version,
               "language": notice.language, "granted_at": iso(when), "consent_ids": ids, **_reason(reason)})
        rows = repo.records_by_id(conn, ids)
    return [ConsentRecord.from_row(r) for r in rows]


@dataclass
class WithdrawalResult:
    pseudonym: str | None
    withdrawn: list[int]
    purged: dict[str, int]
    receipt: dict | None
    receipt_file: Path | None = None


def withdraw(
    store,
    identity: str | None = None,
    *,
    cohort: str | None = None,
    pseudonym: str | None = None,
    scopes: Iterable[str] | str | None = "all",
    at: datetime | None = None,
    actor: str | None = None,
    ring: KeyRing | None = None,
    reason: str | None = None,
) -> WithdrawalResult:
    """Withdraw consent from `at` (default now). When no scope remains active, every stored row
    of the participant is purged at once (a receipt records the counts)."""
    if pseudonym is None:
        if identity is None:
            raise ConsentError("give the participant whose consent is withdrawn")
        ring = ring or KeyRing(store)
        pseudonym = ring.lookup(identity, check_cohort(cohort))
    scope_list = SCOPES if scopes in (None, "all") else check_scopes(scopes)
    when = check_time(at, "withdrawal time")
    subject = {"participant": pseudonym}
    with store.transaction() as conn:
        rows = repo.withdraw_consents(conn, repo.PARTICIPANT, subject, when, scope_list)
        if not rows:
            raise ConsentError("no active consent of that participant for the given scope(s); nothing changed")
        ids = [int(r.id) for r in rows]
        purged: dict[str, int] = {}
        receipt = None
        if not repo.active_ids(conn, repo.PARTICIPANT, subject):
            purged = delete_participant_data(conn, [pseudonym])
            receipt = add_receipt(conn, kind="withdrawal", trigger="consent", counts=purged, subject=pseudonym)
        audit(store, conn, AuditAction.CONSENT_WITHDRAWN, actor,
              {"participant": pseudonym, "scopes": sorted({r.scope for r in rows}), "withdrawn_at": iso(when),
               "consent_ids": ids, "purged": purged, **_reason(reason)})
    path = write_receipt_file(receipt) if receipt else None
    return WithdrawalResult(pseudonym, ids, purged, receipt, path)


def attest(store, session_name: str, *, facilitator: str, cohort: str | None = None,
           scopes: Iterable[str] | str | None = None, notice_version: str, language: str, evidence: str,
           at: datetime | None = None, actor: str | None = None, ring: KeyRing | None = None,
           reason: str | None = None) -> list[ConsentRecord]:
    """Record a facilitator's attestation that everyone present in `session_name` consented."""
    session_name = check_text(session_name, "session name", limit=200)
    scopes = check_scopes(scopes)
    notice = Notice.check(notice_version, language, evidence)
    when = check_time(at, "attestation time")
    with store.transaction() as conn:
        session_cohort = repo.session_cohort(conn, session_name)
    if cohort and session_cohort and check_cohort(cohort) != session_cohort:
        raise ConsentError(f"session {session_name!r} belongs to cohort {session_cohort!r}, not {cohort!r}")
    cohort = check_cohort(cohort or session_cohort)
    ring = ring or KeyRing(store)
    by = ring.pseudonym(check_text(facilitator, "facilitator"), cohort)
    with store.transaction() as conn:
        ids = repo.add_consents(
            conn, repo.ATTESTATION, {"session_name": session_name}, scopes, cohort=cohort, attested_by=by,
            notice_version=notice.version, language=notice.language, evidence=notice.evidence, granted_at=when,
        )
        audit(store, conn, AuditAction.CONSENT_ATTESTED, actor,
              {"session": session_name, "cohort": cohort, "attested_by": by, "scopes": list(scopes),
               "notice_version": notice.version, "granted_at": iso(when), "consent_ids": ids, **_reason(reason)})
        rows = repo.records_by_id(conn, ids)
    return [ConsentRecord.from_row(r) for r in rows]


def withdraw_attestation(
    store, session_name: str, *, at: datetime | None = None, actor: str | None = None, reason: str | None = None
) -> WithdrawalResult:
    """Withdraw a session's attestation: processing stops and the session's attested tracks are purged."""
    when = check_time(at, "withdrawal time")
    with store.transaction() as conn:
        rows = repo.withdraw_consents(conn, repo.ATTESTATION, {"session_name": session_name}, when)
        if not rows:
            raise ConsentError(f"session {session_name!r} has no active attestation; nothing changed")
        ids = [int(r.id) for r in rows]
        t, r, s = schema.tracks, schema.runs, schema.sessions
        track_ids = [int(x[0]) for x in conn.execute(
            select(t.c.id).join(r, r.c.id == t.c.run_id).join(s, s.c.id == r.c.session_id)
            .where(s.c.name == session_name, t.c.participant.like(ATTESTED_PREFIX + "%"))
        )]
        purged = delete_tracks(conn, track_ids)
        receipt = add_receipt(conn, kind="withdrawal", trigger="consent", counts=purged, subject=None)
        audit(store, conn, AuditAction.CONSENT_WITHDRAWN, actor,
              {"session": session_name, "kind": "attestation", "withdrawn_at": iso(when), "consent_ids": ids,
               "purged": purged, **_reason(reason)})
    return WithdrawalResult(None, ids, purged, receipt, write_receipt_file(receipt))


# -- reading --------------------------------------------------------------------------------------


def list_consents(store, *, cohort: str | None = None, session_name: str | None = None,
                  participant: str | None = None, active_only: bool = False) -> list[ConsentRecord]:
    CR = schema.consent_records
    c = CR.c
    q = select(CR).order_by(c.id)
    if cohort:
        q = q.where(c.cohort == check_cohort(cohort))
    if session_name:
        q = q.where(c.session_name == session_name)
    if participant:
        q = q.where(c.participant == participant)
    if active_only:
        q = q.where(c.withdrawn_at.is_(None))
    with store.transaction() as conn:
        return [ConsentRecord.from_row(r) for r in conn.execute(q)]


def has_consent(store, pseudonym: str, scope: str = ANALYSIS_SCOPE, at: datetime | None = None) -> bool:
    """Whether `pseudonym` (participant or attested track) has consent for `scope` at `at` (now).
    Exports of research data should filter their rows through this with scope="research"."""
    when = as_utc(at) if at else utcnow()
    CR = schema.consent_records
    c = CR.c
    with store.transaction() as conn:
        if pseudonym.startswith(ATTESTED_PREFIX):
            t, r, s = schema.tracks, schema.runs, schema.sessions
            sessions = [x[0] for x in conn.execute(
                select(s.c.name).join(r, r.c.session_id == s.c.id).join(t, t.c.run_id == r.c.id).where(t.c.participant == pseudonym)
            )]
            rows = conn.execute(select(CR).where(c.kind == "attestation", c.session_name.in_(sessions))).all()
        else:
            rows = conn.execute(select(CR).where(c.kind == "participant", c.participant == pseudonym)).all()
    return any(ConsentRecord.from_row(r).active_at(when, scope) for r in rows)


def describe(records: list[ConsentRecord]) -> str:
    return json.dumps([r.to_dict() for r in records], indent=2)
