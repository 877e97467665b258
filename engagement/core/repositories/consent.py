"""Consent records: every SQL write, and the reads those writes decide on.

A record is inserted once and afterwards only ever gets its `withdrawn_at` set, so the table is
itself the evidence of who consented to what and when. A subject is either a participant
(`{"participant": pseudonym}`) or a session's attestation (`{"session_name": name}`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Row

from engagement.core import schema
from engagement.core.schema import consent_records
from engagement.core.time import utcnow

PARTICIPANT = "participant"
ATTESTATION = "attestation"


def _subject_filter(kind: str, subject: Mapping[str, str]) -> list:
    c = consent_records.c
    return [c.kind == kind, *(c[column] == value for column, value in subject.items())]


def active_ids(conn: Connection, kind: str, subject: Mapping[str, str], scope: str | None = None) -> list[int]:
    """Ids of the subject's records that are not withdrawn (of one scope, or of any)."""
    c = consent_records.c
    q = select(c.id).where(*_subject_filter(kind, subject), c.withdrawn_at.is_(None))
    if scope is not None:
        q = q.where(c.scope == scope)
    return [int(r[0]) for r in conn.execute(q)]


def add_consents(
    conn: Connection,
    kind: str,
    subject: Mapping[str, str],
    scopes: Iterable[str],
    *,
    cohort: str,
    notice_version: str,
    language: str,
    evidence: str,
    granted_at: datetime,
    attested_by: str | None = None,
) -> list[int]:
    """One active record per scope; the ids, in scope order. A consent already active for a scope
    stays the record: granting it again adds nothing."""
    ids = []
    for scope in scopes:
        existing = active_ids(conn, kind, subject, scope)
        if existing:
            ids.append(existing[0])
            continue
        result = conn.execute(
            insert(consent_records).values(
                kind=kind, cohort=cohort, scope=scope, attested_by=attested_by, notice_version=notice_version,
                language=language, evidence=evidence, granted_at=granted_at, created_at=utcnow(), **subject,
            )
        )
        ids.append(int(result.inserted_primary_key[0]))
    return ids


def withdraw_consents(
    conn: Connection, kind: str, subject: Mapping[str, str], at: datetime, scopes: Iterable[str] | None = None
) -> list[Row]:
    """Mark the subject's active records (of `scopes`, or all) withdrawn from `at`; returns them
    as they were before."""
    c = consent_records.c
    q = select(consent_records).where(*_subject_filter(kind, subject), c.withdrawn_at.is_(None))
    if scopes is not None:
        q = q.where(c.scope.in_(list(scopes)))
    rows = conn.execute(q).all()
    if rows:
        conn.execute(update(consent_records).where(c.id.in_([r.id for r in rows])).values(withdrawn_at=at))
    return rows


def records_by_id(conn: Connection, ids: Iterable[int]) -> list[Row]:
    return conn.execute(select(consent_records).where(consent_records.c.id.in_(list(ids))).order_by(consent_records.c.id)).all()


def session_cohort(conn: Connection, session_name: str) -> str | None:
    """The cohort an existing session belongs to (None: no such session)."""
    row = conn.execute(select(schema.sessions.c.cohort).where(schema.sessions.c.name == session_name)).first()
    return row[0] if row else None
