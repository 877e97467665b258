"""Data-subject requests (UU 27/2022 Art. 32, 41-44): access with processing trail, and erasure.

A participant is named by identity + cohort (the pseudonym is recomputed with the cohort key,
never by creating a key) or directly by pseudonym. Both requests are audited.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from engagement.core import schema
from engagement.core.repositories import consent as consent_rows
from engagement.core.time import iso, utcnow
from engagement.vision.name_labels import normalise_display_name
from privacy.audit import AuditAction, AuditLog, resolve_actor
from privacy.consent import list_consents
from privacy.data import add_receipt, delete_participant_data, write_receipt_file
from privacy.errors import ConsentError
from privacy.pseudonym import ATTESTED_PREFIX, PARTICIPANT_PREFIX, KeyRing, check_cohort


def resolve_subject(store, participant: str, cohort: str | None) -> str:
    """The pseudonym of `participant`: given as a pseudonym (p-.../a-...), as an identity, or as
    the display name a roster of names lists, typed as the meeting showed it ("Budi S. (Host)"
    is the roster's "Budi S."; engagement.vision.name_labels.normalise_display_name)."""
    text = participant.strip()
    if (text.startswith(PARTICIPANT_PREFIX) or text.startswith(ATTESTED_PREFIX)) and len(text) == 42:
        return text
    ring, cohort = KeyRing(store), check_cohort(cohort)
    pseudonym = ring.lookup(text, cohort)
    name = normalise_display_name(text)
    if name and not list_consents(store, participant=pseudonym):
        by_name = ring.lookup(name, cohort)
        if list_consents(store, participant=by_name):
            return by_name
    return pseudonym


def _jsonable(value):
    if hasattr(value, "isoformat"):
        return iso(value)
    return value


def access(store, participant: str, *, cohort: str | None = None, actor: str | None = None) -> dict:
    """Everything stored about the participant and the processing trail, as a JSON-ready dict."""
    pseud = resolve_subject(store, participant, cohort)
    t, r, s = schema.tracks, schema.runs, schema.sessions
    out: dict = {"participant": pseud, "generated_at": iso(utcnow())}
    with store.transaction() as conn:
        tracks = conn.execute(
            select(t, r.c.started_at.label("run_started_at"), r.c.profile, r.c.status, s.c.name.label("session"))
            .join(r, r.c.id == t.c.run_id).join(s, s.c.id == r.c.session_id)
            .where(t.c.participant == pseud).order_by(t.c.id)
        ).all()
        run_ids = sorted({int(x.run_id) for x in tracks})
        track_ids = [int(x.id) for x in tracks]
        data = []
        for x in tracks:
            entry = {k: _jsonable(v) for k, v in x._mapping.items()}
            entry["window_features"] = [
                {k: _jsonable(v) for k, v in row._mapping.items()}
                for row in conn.execute(select(schema.window_features).where(schema.window_features.c.track_id == x.id)
                                        .order_by(schema.window_features.c.second))
            ]
            entry["engagement_estimates"] = [
                {k: _jsonable(v) for k, v in row._mapping.items()}
                for row in conn.execute(select(schema.engagement_estimates)
                                        .where(schema.engagement_estimates.c.track_id == x.id)
                                        .order_by(schema.engagement_estimates.c.second))
            ]
            data.append(entry)
    out["tracks"] = data
    out["consents"] = [c.to_dict() for c in list_consents(store, participant=pseud)]
    trail = []
    for e in AuditLog(store).entries():
        d = e.details
        mentioned = (
            d.get("participant") == pseud
            or pseud in (d.get("participants") or [])
            or (d.get("run_id") in run_ids if d.get("run_id") is not None else False)
        )
        if mentioned:
            trail.append(e.to_dict())
    out["processing_trail"] = trail
    out["summary"] = {"tracks": len(track_ids), "runs": run_ids,
                      "seconds": sum(len(x["window_features"]) for x in data)}
    AuditLog(store).record(AuditAction.SUBJECT_ACCESS, actor or resolve_actor(),
                           {"participant": pseud, "tracks": len(track_ids), "runs": run_ids})
    return out


@dataclass
class ErasureResult:
    participant: str
    counts: dict[str, int]
    receipt: dict
    receipt_file: Path | None


def erase(store, participant: str, *, cohort: str | None = None, actor: str | None = None) -> ErasureResult:
    """Delete every per-second row and track of the participant and end their consents (so no
    later run processes them again). Consent records stay, marked withdrawn: they are the proof
    that earlier processing was lawful (a legal obligation of the controller)."""
    pseud = resolve_subject(store, participant, cohort)
    CR = schema.consent_records
    c = CR.c
    now = utcnow()
    with store.transaction() as conn:
        counts = delete_participant_data(conn, [pseud])
        ended = consent_rows.withdraw_consents(conn, consent_rows.PARTICIPANT, {"participant": pseud}, now)
        counts["consents_ended"] = len(ended)
        if not any(counts.values()):
            known = conn.execute(select(c.id).where(c.participant == pseud).limit(1)).first()
            if known is None:
                raise ConsentError(
                    "nothing is stored for that participant in this cohort (check the cohort, or the key was destroyed)"
                )
        receipt = add_receipt(conn, kind="erasure", trigger="subject_request", counts=counts, subject=pseud, at=now)
        AuditLog(store).record(AuditAction.SUBJECT_ERASURE, actor or resolve_actor(),
                               {"participant": pseud, "counts": counts, "receipt_id": receipt["receipt_id"]}, conn=conn)
    return ErasureResult(pseud, counts, receipt, write_receipt_file(receipt))


def dumps(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False)
