"""Consent records and the consent gate the pipeline asks before computing anything for a face.

Default deny: a face that cannot be tied to a consenting participant gets no pseudonym, so the
pipeline computes nothing for it and stores nothing. Three ways to tie a face to a participant:

1. device: one participant on their own device (`device_participant`); the first face seen is
   theirs, and a second face at the same time is denied (someone behind them did not consent).
2. roster: gallery-view tile positions -> participant identity (`Roster`); the face's centre
   picks the tile.
3. attestation: a facilitator's recorded statement that everyone present in a session consented;
   each track gets a pseudonym derived from session + track label (nobody is identified).

Consent is checked at the moment of the frame (run start + t_ms), and the gate re-reads the
records every `refresh_s` seconds of wall-clock, so a withdrawal during a live run stops
processing from that moment. Withdrawal also purges everything stored for that participant.
"""

from __future__ import annotations

import csv
import io
import json
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, insert, or_, select, update
from sqlalchemy.engine import Connection

from engagement import schema
from engagement import schema as tables
from privacy.audit import AuditAction, AuditLog, resolve_actor
from privacy.data import add_receipt, delete_participant_data, delete_tracks, write_receipt_file
from privacy.errors import ConsentError
from privacy.pseudonym import ATTESTED_PREFIX, KeyRing, check_cohort, normalise_identity
from privacy.timeutil import as_utc, for_db, iso, parse_when, utcnow

SCOPES = ("facilitator_feedback", "research")
# The scope the analysis pipeline needs; research exports additionally need "research".
ANALYSIS_SCOPE = "facilitator_feedback"
LANGUAGES = ("id", "en")


# -- records ------------------------------------------------------------------------------------


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

    def active_at(self, when: datetime) -> bool:
        return self.granted_at <= when and (self.withdrawn_at is None or when < self.withdrawn_at)

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


def _record(row) -> ConsentRecord:
    return ConsentRecord(
        id=int(row.id),
        kind=row.kind,
        cohort=row.cohort,
        participant=row.participant,
        session_name=row.session_name,
        attested_by=row.attested_by,
        scope=row.scope,
        notice_version=row.notice_version,
        language=row.language,
        evidence=row.evidence,
        granted_at=as_utc(row.granted_at),
        withdrawn_at=as_utc(row.withdrawn_at) if row.withdrawn_at is not None else None,
    )


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


def _check_text(value, what: str, where: str = "", limit: int = 300) -> str:
    text = "" if value is None else str(value).strip()
    if not text:
        raise ConsentError(f"{where}{what} is missing")
    if len(text) > limit:
        raise ConsentError(f"{where}{what} is longer than {limit} characters")
    return text


def _check_language(value, where: str = "") -> str:
    lang = _check_text(value, "notice language", where, 8).lower()
    if lang not in LANGUAGES:
        raise ConsentError(f"{where}notice language {value!r} is not supported; use one of: {', '.join(LANGUAGES)}")
    return lang


def _when(value, what: str, where: str = "") -> datetime:
    if value is None or value == "":
        return utcnow()
    if isinstance(value, datetime):
        return as_utc(value)
    try:
        return parse_when(str(value), what=what)
    except Exception as exc:  # noqa: BLE001 - re-raised with the row it came from
        raise ConsentError(f"{where}{exc}") from None


def _session_cohort(conn: Connection, session_name: str) -> str | None:
    row = conn.execute(select(schema.sessions.c.cohort).where(schema.sessions.c.name == session_name)).first()
    return row[0] if row else None


# -- granting and withdrawing ---------------------------------------------------------------------


def _reason(reason: str | None) -> dict:
    """The audit detail of an optional reason (whitespace folded, at most 500 characters)."""
    text = " ".join(str(reason or "").split())
    return {"reason": text[:500]} if text else {}


def grant(
    store,
    identity: str,
    *,
    cohort: str | None,
    scopes: Iterable[str] | str | None = None,
    notice_version: str,
    language: str,
    evidence: str,
    at: datetime | None = None,
    actor: str | None = None,
    ring: KeyRing | None = None,
    reason: str | None = None,
) -> list[ConsentRecord]:
    """Record a participant's consent for each scope. Only the pseudonym is stored. `reason`
    (free text from the person recording it, e.g. in the dashboard) goes into the audit entry."""
    cohort = check_cohort(cohort)
    scopes = check_scopes(scopes)
    notice_version = _check_text(notice_version, "notice version", limit=64)
    language = _check_language(language)
    evidence = _check_text(evidence, "evidence reference")
    when = _when(at, "granted time")
    ring = ring or KeyRing(store)
    pseudonym = ring.pseudonym(identity, cohort)  # before the transaction: may create the key
    with store.transaction() as conn:
        ids = _insert_grants(conn, pseudonym, cohort, scopes, notice_version, language, evidence, when)
        AuditLog(store).record(
            AuditAction.CONSENT_GRANTED,
            actor or resolve_actor(),
            {"participant": pseudonym, "cohort": cohort, "scopes": list(scopes), "notice_version": notice_version,
             "language": language, "granted_at": iso(when), "consent_ids": ids, **_reason(reason)},
            conn=conn,
        )
        rows = conn.execute(select(tables.consent_records).where(tables.consent_records.c.id.in_(ids))).all()
    return [_record(r) for r in rows]


def _insert_grants(conn, pseudonym, cohort, scopes, notice_version, language, evidence, when) -> list[int]:
    CR = tables.consent_records
    c = CR.c
    ids = []
    for scope in scopes:
        # A consent already active for this scope stays the record; re-granting adds nothing.
        existing = conn.execute(
            select(c.id).where(c.kind == "participant", c.participant == pseudonym, c.scope == scope, c.withdrawn_at.is_(None))
        ).first()
        if existing:
            ids.append(int(existing[0]))
            continue
        result = conn.execute(
            insert(CR).values(
                kind="participant", cohort=cohort, participant=pseudonym, scope=scope,
                notice_version=notice_version, language=language, evidence=evidence,
                granted_at=for_db(when), created_at=for_db(utcnow()),
            )
        )
        ids.append(int(result.inserted_primary_key[0]))
    return ids


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
    when = _when(at, "withdrawal time")
    CR = tables.consent_records
    c = CR.c
    with store.transaction() as conn:
        rows = conn.execute(
            select(CR).where(c.kind == "participant", c.participant == pseudonym, c.scope.in_(scope_list), c.withdrawn_at.is_(None))
        ).all()
        if not rows:
            raise ConsentError("no active consent of that participant for the given scope(s); nothing changed")
        ids = [int(r.id) for r in rows]
        conn.execute(update(CR).where(c.id.in_(ids)).values(withdrawn_at=for_db(when)))
        remaining = conn.execute(
            select(c.id).where(c.kind == "participant", c.participant == pseudonym, c.withdrawn_at.is_(None))
        ).first()
        purged: dict[str, int] = {}
        receipt = None
        if remaining is None:
            purged = delete_participant_data(conn, [pseudonym])
            receipt = add_receipt(conn, kind="withdrawal", trigger="consent", counts=purged, subject=pseudonym)
        AuditLog(store).record(
            AuditAction.CONSENT_WITHDRAWN,
            actor or resolve_actor(),
            {"participant": pseudonym, "scopes": sorted({r.scope for r in rows}), "withdrawn_at": iso(when),
             "consent_ids": ids, "purged": purged, **_reason(reason)},
            conn=conn,
        )
    path = write_receipt_file(receipt) if receipt else None
    return WithdrawalResult(pseudonym, ids, purged, receipt, path)


def attest(
    store,
    session_name: str,
    *,
    facilitator: str,
    cohort: str | None = None,
    scopes: Iterable[str] | str | None = None,
    notice_version: str,
    language: str,
    evidence: str,
    at: datetime | None = None,
    actor: str | None = None,
    ring: KeyRing | None = None,
    reason: str | None = None,
) -> list[ConsentRecord]:
    """Record a facilitator's attestation that everyone present in `session_name` consented."""
    session_name = _check_text(session_name, "session name", limit=200)
    scopes = check_scopes(scopes)
    notice_version = _check_text(notice_version, "notice version", limit=64)
    language = _check_language(language)
    evidence = _check_text(evidence, "evidence reference")
    when = _when(at, "attestation time")
    with store.transaction() as conn:
        session_cohort = _session_cohort(conn, session_name)
    if cohort and session_cohort and check_cohort(cohort) != session_cohort:
        raise ConsentError(f"session {session_name!r} belongs to cohort {session_cohort!r}, not {cohort!r}")
    cohort = check_cohort(cohort or session_cohort)
    ring = ring or KeyRing(store)
    by = ring.pseudonym(_check_text(facilitator, "facilitator"), cohort)
    CR = tables.consent_records
    c = CR.c
    with store.transaction() as conn:
        ids = []
        for scope in scopes:
            existing = conn.execute(
                select(c.id).where(c.kind == "attestation", c.session_name == session_name, c.scope == scope, c.withdrawn_at.is_(None))
            ).first()
            if existing:
                ids.append(int(existing[0]))
                continue
            ids.append(int(conn.execute(insert(CR).values(
                kind="attestation", cohort=cohort, session_name=session_name, attested_by=by, scope=scope,
                notice_version=notice_version, language=language, evidence=evidence,
                granted_at=for_db(when), created_at=for_db(utcnow()),
            )).inserted_primary_key[0]))
        AuditLog(store).record(
            AuditAction.CONSENT_ATTESTED,
            actor or resolve_actor(),
            {"session": session_name, "cohort": cohort, "attested_by": by, "scopes": list(scopes),
             "notice_version": notice_version, "granted_at": iso(when), "consent_ids": ids, **_reason(reason)},
            conn=conn,
        )
        rows = conn.execute(select(CR).where(c.id.in_(ids))).all()
    return [_record(r) for r in rows]


def withdraw_attestation(
    store, session_name: str, *, at: datetime | None = None, actor: str | None = None, reason: str | None = None
) -> WithdrawalResult:
    """Withdraw a session's attestation: processing stops and the session's attested tracks are purged."""
    when = _when(at, "withdrawal time")
    CR = tables.consent_records
    c = CR.c
    with store.transaction() as conn:
        rows = conn.execute(
            select(CR).where(c.kind == "attestation", c.session_name == session_name, c.withdrawn_at.is_(None))
        ).all()
        if not rows:
            raise ConsentError(f"session {session_name!r} has no active attestation; nothing changed")
        ids = [int(r.id) for r in rows]
        conn.execute(update(CR).where(c.id.in_(ids)).values(withdrawn_at=for_db(when)))
        t, r, s = schema.tracks, schema.runs, schema.sessions
        track_ids = [int(x[0]) for x in conn.execute(
            select(t.c.id).join(r, r.c.id == t.c.run_id).join(s, s.c.id == r.c.session_id)
            .where(s.c.name == session_name, t.c.participant.like(ATTESTED_PREFIX + "%"))
        )]
        purged = delete_tracks(conn, track_ids)
        receipt = add_receipt(conn, kind="withdrawal", trigger="consent", counts=purged, subject=None)
        AuditLog(store).record(
            AuditAction.CONSENT_WITHDRAWN, actor or resolve_actor(),
            {"session": session_name, "kind": "attestation", "withdrawn_at": iso(when), "consent_ids": ids, "purged": purged,
             **_reason(reason)},
            conn=conn,
        )
    return WithdrawalResult(None, ids, purged, receipt, write_receipt_file(receipt))


def list_consents(store, *, cohort: str | None = None, session_name: str | None = None,
                  participant: str | None = None, active_only: bool = False) -> list[ConsentRecord]:
    CR = tables.consent_records
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
        return [_record(r) for r in conn.execute(q)]


def has_consent(store, pseudonym: str, scope: str = ANALYSIS_SCOPE, at: datetime | None = None) -> bool:
    """Whether `pseudonym` (participant or attested track) has consent for `scope` at `at` (now).
    Exports of research data should filter their rows through this with scope="research"."""
    when = as_utc(at) if at else utcnow()
    CR = tables.consent_records
    c = CR.c
    with store.transaction() as conn:
        if pseudonym.startswith(ATTESTED_PREFIX):
            t, r, s = schema.tracks, schema.runs, schema.sessions
            sessions = [x[0] for x in conn.execute(
                select(s.c.name).join(r, r.c.session_id == s.c.id).join(t, t.c.run_id == r.c.id).where(t.c.participant == pseudonym)
            )]
            rows = conn.execute(select(CR).where(c.kind == "attestation", c.session_name.in_(sessions), c.scope == scope)).all()
        else:
            rows = conn.execute(select(CR).where(c.kind == "participant", c.participant == pseudonym, c.scope == scope)).all()
    return any(_record(r).active_at(when) for r in rows)


# -- rosters --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterEntry:
    identity: str
    scopes: tuple[str, ...]
    tile: tuple[int, int] | None = None  # (row, col), 1-based, in the gallery grid
    rect: tuple[float, float, float, float] | None = None  # normalised x0, y0, x1, y1
    notice_version: str | None = None
    language: str | None = None
    evidence: str | None = None
    granted_at: datetime | None = None

    def __repr__(self) -> str:  # never print an identity into a log by accident
        return f"RosterEntry(tile={self.tile}, rect={self.rect}, scopes={self.scopes})"


@dataclass(frozen=True)
class Roster:
    entries: tuple[RosterEntry, ...]
    grid: tuple[int, int] | None = None  # (cols, rows)
    cohort: str | None = None
    notice_version: str | None = None
    language: str | None = None
    evidence: str | None = None

    def region(self, entry: RosterEntry) -> tuple[float, float, float, float] | None:
        if entry.rect is not None:
            return entry.rect
        if entry.tile is not None and self.grid is not None:
            cols, rows = self.grid
            r, c = entry.tile
            return ((c - 1) / cols, (r - 1) / rows, c / cols, r / rows)
        return None

    def identity_at(self, cx: float, cy: float) -> str | None:
        """The identity whose tile holds the normalised point (cx, cy); None if none or ambiguous."""
        hits = []
        for entry in self.entries:
            reg = self.region(entry)
            if reg and reg[0] <= cx < reg[2] and reg[1] <= cy < reg[3]:
                hits.append(entry.identity)
        return hits[0] if len(set(hits)) == 1 else None


def _parse_grid(value, where: str) -> tuple[int, int] | None:
    if value in (None, ""):
        return None
    try:
        cols, rows = (int(x) for x in str(value).lower().replace(" ", "").split("x"))
    except ValueError:
        raise ConsentError(f"{where}grid {value!r} must look like COLSxROWS, e.g. 3x2") from None
    if not (1 <= cols <= 10 and 1 <= rows <= 10):
        raise ConsentError(f"{where}grid {value!r} must have 1-10 columns and rows")
    return cols, rows


def _parse_tile(value, grid, where: str) -> tuple[int, int] | None:
    if value in (None, ""):
        return None
    parts = value if isinstance(value, (list, tuple)) else str(value).replace(";", ",").split(",")
    try:
        r, c = (int(str(x).strip()) for x in parts)
    except ValueError:
        raise ConsentError(f"{where}tile {value!r} must be ROW,COL (1-based), e.g. 1,2") from None
    if grid is None:
        raise ConsentError(f"{where}a tile position needs the roster's grid (e.g. grid = \"3x2\")")
    cols, rows = grid
    if not (1 <= r <= rows and 1 <= c <= cols):
        raise ConsentError(f"{where}tile {r},{c} is outside the {cols}x{rows} grid")
    return r, c


def _parse_rect(value, where: str) -> tuple[float, float, float, float] | None:
    if value in (None, ""):
        return None
    parts = value if isinstance(value, (list, tuple)) else str(value).replace(",", " ").split()
    try:
        x0, y0, x1, y1 = (float(x) for x in parts)
    except ValueError:
        raise ConsentError(f"{where}rect {value!r} must be four numbers x0 y0 x1 y1 between 0 and 1") from None
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        raise ConsentError(f"{where}rect {value!r} must satisfy 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1")
    return x0, y0, x1, y1


_ENTRY_KEYS = {"identity", "scopes", "tile", "rect", "notice_version", "language", "evidence", "granted_at"}
_ROSTER_KEYS = {"cohort", "grid", "notice_version", "language", "evidence", "participants"}


def parse_roster(data: dict, *, source: str = "roster") -> Roster:
    """Validate a roster given as a mapping (the TOML form). Every problem names its entry."""
    if not isinstance(data, dict):
        raise ConsentError(f"{source}: expected a table of settings and [[participants]]")
    unknown = set(data) - _ROSTER_KEYS
    if unknown:
        raise ConsentError(f"{source}: unknown setting(s) {', '.join(sorted(unknown))}; allowed: {', '.join(sorted(_ROSTER_KEYS))}")
    grid = _parse_grid(data.get("grid"), f"{source}: ")
    cohort = check_cohort(data["cohort"]) if data.get("cohort") else None
    language = _check_language(data["language"], f"{source}: ") if data.get("language") else None
    participants = data.get("participants")
    if not isinstance(participants, list) or not participants:
        raise ConsentError(f"{source}: no participants (add [[participants]] entries)")
    entries = []
    seen_ids: set[str] = set()
    seen_tiles: set = set()
    for i, raw in enumerate(participants, start=1):
        where = f"{source}: participant {i}: "
        if not isinstance(raw, dict):
            raise ConsentError(f"{where}expected a table")
        bad = set(raw) - _ENTRY_KEYS
        if bad:
            raise ConsentError(f"{where}unknown field(s) {', '.join(sorted(bad))}; allowed: {', '.join(sorted(_ENTRY_KEYS))}")
        try:
            ident = normalise_identity(raw.get("identity") or "")
        except Exception:  # noqa: BLE001
            raise ConsentError(f"{where}identity is missing") from None
        if ident in seen_ids:
            raise ConsentError(f"{where}the same identity appears twice")
        seen_ids.add(ident)
        tile = _parse_tile(raw.get("tile"), grid, where)
        rect = _parse_rect(raw.get("rect"), where)
        key = tile or rect
        if key is not None:
            if key in seen_tiles:
                raise ConsentError(f"{where}tile/rect {key} is given to two participants")
            seen_tiles.add(key)
        entries.append(RosterEntry(
            identity=ident,
            scopes=check_scopes(raw.get("scopes"), where=where),
            tile=tile,
            rect=rect,
            notice_version=_check_text(raw["notice_version"], "notice version", where, 64) if raw.get("notice_version") else None,
            language=_check_language(raw["language"], where) if raw.get("language") else None,
            evidence=_check_text(raw["evidence"], "evidence reference", where) if raw.get("evidence") else None,
            granted_at=_when(raw["granted_at"], "granted_at", where) if raw.get("granted_at") not in (None, "") else None,
        ))
    return Roster(
        entries=tuple(entries), grid=grid, cohort=cohort,
        notice_version=_check_text(data["notice_version"], "notice version", f"{source}: ", 64) if data.get("notice_version") else None,
        language=language,
        evidence=_check_text(data["evidence"], "evidence reference", f"{source}: ") if data.get("evidence") else None,
    )


def load_roster(path: str | Path, *, grid: str | None = None) -> Roster:
    """Read a roster from TOML (settings + [[participants]]) or CSV (one participant per row,
    header: identity,scopes,tile,rect,notice_version,language,evidence,granted_at)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConsentError(f"roster file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConsentError(f"cannot read roster file {path}: {exc}") from None
    source = path.name
    if path.suffix.lower() == ".toml":
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConsentError(f"{source} is not valid TOML: {exc}") from None
        if grid is not None:
            data["grid"] = grid
        return parse_roster(data, source=source)
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
            found = "';' (semicolons)" if ";" in header[0] else "tabs"
            raise ConsentError(
                f"{source}: the columns are separated by {found}; a roster CSV separates them by ',' "
                "(commas): save it as 'CSV (comma delimited)' or use a .toml roster"
            )
        if not reader.fieldnames or "identity" not in [f.strip() for f in reader.fieldnames]:
            raise ConsentError(f"{source}: the CSV needs a header row with at least an 'identity' column")
        fields = [f.strip() for f in reader.fieldnames]
        bad = set(fields) - _ENTRY_KEYS
        if bad:
            raise ConsentError(f"{source}: unknown column(s) {', '.join(sorted(bad))}; allowed: {', '.join(sorted(_ENTRY_KEYS))}")
        rows = []
        for n, row in enumerate(reader, start=2):
            if None in row:
                raise ConsentError(f"{source}: line {n} has more cells than the header")
            rows.append({k.strip(): (v or "").strip() for k, v in row.items() if (v or "").strip()})
        return parse_roster({"participants": rows, **({"grid": grid} if grid else {})}, source=source)
    raise ConsentError(f"roster file {path} must end in .toml or .csv")


def import_roster(
    store,
    roster: Roster,
    *,
    cohort: str | None = None,
    notice_version: str | None = None,
    language: str | None = None,
    evidence: str | None = None,
    actor: str | None = None,
    ring: KeyRing | None = None,
) -> int:
    """Grant the consents listed in a roster, all in one transaction: a bad entry changes nothing."""
    if cohort and roster.cohort and check_cohort(cohort) != roster.cohort:
        raise ConsentError(f"the roster is for cohort {roster.cohort!r}, not {cohort!r}")
    cohort = check_cohort(cohort or roster.cohort)
    prepared = []
    for i, e in enumerate(roster.entries, start=1):
        where = f"participant {i}: "
        nv = e.notice_version or notice_version or roster.notice_version
        lang = e.language or language or roster.language
        ev = e.evidence or evidence or roster.evidence
        prepared.append((
            e,
            _check_text(nv, "notice version (give --notice-version or notice_version)", where, 64),
            _check_language(lang or "", where),
            _check_text(ev, "evidence reference (give --evidence or evidence)", where),
            e.granted_at or utcnow(),
        ))
    ring = ring or KeyRing(store)
    pseudonyms = [ring.pseudonym(e.identity, cohort) for e, *_ in prepared]
    with store.transaction() as conn:
        total = 0
        for (e, nv, lang, ev, when), pseud in zip(prepared, pseudonyms):
            total += len(_insert_grants(conn, pseud, cohort, e.scopes, nv, lang, ev, when))
        AuditLog(store).record(
            AuditAction.CONSENT_IMPORTED, actor or resolve_actor(),
            {"cohort": cohort, "participants": pseudonyms, "records": total}, conn=conn,
        )
    return total


# -- the gate -------------------------------------------------------------------------------------


@dataclass
class _Binding:
    label: str
    last_t_ms: float


@dataclass
class ConsentGate:
    """Ask `participant_for` for every face; None means: compute nothing, store nothing."""

    store: object
    session_name: str
    cohort: str
    at: datetime
    scope: str = ANALYSIS_SCOPE
    roster: Roster | None = None
    device_participant: str | None = None  # the pseudonym, never the identity
    refresh_s: float = 1.0
    # A participant is bound to one track at a time; another face claiming the same participant
    # while the bound track was seen within this many ms is denied.
    hold_ms: float = 2000.0
    ring: KeyRing | None = None
    _intervals: dict[str, list[tuple[datetime, datetime | None]]] = field(default_factory=dict)
    _attested: list[tuple[datetime, datetime | None]] = field(default_factory=list)
    _loaded_at: float = -1e18
    _bindings: dict[str, _Binding] = field(default_factory=dict)
    _roster_pseudonyms: dict[str, str] = field(default_factory=dict)
    _ever_tied: set[str] = field(default_factory=set)
    _swept: set[str] = field(default_factory=set)

    @classmethod
    def for_session(
        cls,
        store,
        session_name: str,
        *,
        at: datetime | None = None,
        roster: Roster | str | Path | None = None,
        device_participant: str | None = None,
        scope: str = ANALYSIS_SCOPE,
        cohort: str | None = None,
        refresh_s: float = 1.0,
    ) -> "ConsentGate":
        """The gate for one run of `session_name`; `at` is the run's wall-clock start (now).
        `device_participant` is the identity of the single participant on their own device."""
        scope = check_scopes([scope])[0]
        if isinstance(roster, (str, Path)):
            roster = load_roster(roster)
        with store.transaction() as conn:
            session_cohort = _session_cohort(conn, session_name)
        cohort = check_cohort(cohort or session_cohort or (roster.cohort if roster else None))
        ring = KeyRing(store)
        ring.key(cohort)  # create the key now, never later inside the pipeline's transaction
        gate = cls(store=store, session_name=session_name, cohort=cohort, at=as_utc(at) if at else utcnow(),
                   scope=scope, roster=roster, refresh_s=refresh_s, ring=ring)
        if device_participant:
            gate.device_participant = ring.pseudonym(device_participant, cohort)
        if roster:
            gate._roster_pseudonyms = {e.identity: ring.pseudonym(e.identity, cohort) for e in roster.entries}
        gate.refresh()
        return gate

    def refresh(self) -> None:
        """Re-read consent and attestation records (withdrawals take effect from their time)."""
        CR = tables.consent_records
        c = CR.c
        with self.store.transaction() as conn:
            rows = conn.execute(
                select(c.kind, c.participant, c.granted_at, c.withdrawn_at).where(
                    c.scope == self.scope,
                    or_(and_(c.kind == "participant", c.cohort == self.cohort),
                        and_(c.kind == "attestation", c.session_name == self.session_name)),
                )
            ).all()
        intervals: dict[str, list] = {}
        attested = []
        for r in rows:
            span = (as_utc(r.granted_at), as_utc(r.withdrawn_at) if r.withdrawn_at is not None else None)
            if r.kind == "attestation":
                attested.append(span)
            else:
                intervals.setdefault(r.participant, []).append(span)
        self._intervals, self._attested = intervals, attested
        self._loaded_at = time.monotonic()

    def _maybe_refresh(self) -> None:
        if time.monotonic() - self._loaded_at >= self.refresh_s:
            self.refresh()

    @staticmethod
    def _active(spans, when: datetime) -> bool:
        return any(g <= when and (w is None or when < w) for g, w in spans)

    def _bind(self, pseudonym: str, track_label: str, t_ms: float) -> bool:
        b = self._bindings.get(pseudonym)
        if b is None or b.label == track_label or t_ms - b.last_t_ms > self.hold_ms:
            self._bindings[pseudonym] = _Binding(track_label, t_ms)
            return True
        return False

    def participant_for(
        self, track_label: str, bbox: tuple[float, float, float, float], frame_size: tuple[int, int], t_ms: float
    ) -> str | None:
        """The consenting participant's pseudonym for this face at this moment, or None (deny)."""
        self._maybe_refresh()
        when = self.at + timedelta(milliseconds=float(t_ms))
        candidate = None
        if self.device_participant:
            candidate = self.device_participant
        elif self.roster is not None:
            w, h = frame_size
            if w > 0 and h > 0:
                cx = (bbox[0] + bbox[2]) / 2 / w
                cy = (bbox[1] + bbox[3]) / 2 / h
                ident = self.roster.identity_at(cx, cy)
                if ident is not None:
                    candidate = self._roster_pseudonyms.get(ident)
        if candidate is not None and self._active(self._intervals.get(candidate, ()), when):
            if self._bind(candidate, track_label, t_ms):
                self._ever_tied.add(candidate)
                return candidate
            return None
        # Not tied to a consenting participant: only a session attestation can still cover it.
        if self._attested and self._active(self._attested, when):
            pseud = self.ring.attested_pseudonym(self.cohort, self.session_name, track_label)
            self._ever_tied.add(pseud)
            return pseud
        return None

    def allowed(self, pseudonym: str, t_ms: float) -> bool:
        """Whether data of `pseudonym` for the moment t_ms (from the run start) may be kept."""
        self._maybe_refresh()
        when = self.at + timedelta(milliseconds=float(t_ms))
        if pseudonym.startswith(ATTESTED_PREFIX):
            return self._active(self._attested, when)
        return self._active(self._intervals.get(pseudonym, ()), when)

    def withdrawn(self, t_ms: float | None = None) -> set[str]:
        """Pseudonyms tied during this run whose consent has ended (as last refreshed), by now or
        by the run's media time `t_ms`, whichever is later: a recording analysed faster than
        real time reaches a withdrawal's moment before the wall clock does."""
        now = utcnow()
        if t_ms is not None:
            now = max(now, self.at + timedelta(milliseconds=float(t_ms)))
        out = set()
        for p in self._ever_tied:
            spans = self._attested if p.startswith(ATTESTED_PREFIX) else self._intervals.get(p, ())
            if not self._active(spans, now):
                out.add(p)
        return out

    def sweep(self, conn: Connection, run_id: int, t_ms: float | None = None) -> set[str]:
        """Delete this run's rows of participants who withdrew while it ran. The pipeline calls it
        inside its write transaction (cheap when nothing changed); it closes the gap between a
        withdrawal's purge and the gate's next refresh. Returns the pseudonyms swept: the pipeline
        must forget their tracks' database ids."""
        # Always re-read here (one small query per flush): a withdrawal's purge may have removed
        # this run's track rows since the last refresh, and writing to them would fail.
        self.refresh()
        gone = self.withdrawn(t_ms) - self._swept
        if gone:
            delete_participant_data(conn, gone, run_id=run_id)
            self._swept |= gone
        return gone


def describe(records: list[ConsentRecord]) -> str:
    return json.dumps([r.to_dict() for r in records], indent=2)
