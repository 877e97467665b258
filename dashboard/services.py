"""The dashboard's calls into other parts of the product (privacy, export), all in one place.

Every privacy action goes through the privacy module's public functions, so the dashboard keeps
the command line's rules (validation, audit entries, purges with receipts). What only the
dashboard adds: a reason on every consent action and refusals worded for a form.
"""

from __future__ import annotations

import io
import os
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dashboard import queries
from engagement.app import agenda as agenda_store
from engagement.app import export as exporter
from engagement.core.errors import EngagementError
from engagement.core.repositories import consent as consent_rows
from engagement.core.store import Store
from privacy import consent, retention, subjects
from privacy import pseudonym as pseudonyms
from privacy.audit import AuditAction, AuditLog
from privacy.dpia import render_dpia
from privacy.errors import CohortKeyError, ConsentError
from privacy.profiles import get_profile
from privacy.subjects import resolve_subject

# -- audit ------------------------------------------------------------------------------------

# Dashboard actions, by name (each one a privacy.audit.AuditAction value).
SIGN_IN = "sign_in"
SIGN_IN_FAILED = "sign_in_failed"
SIGN_OUT = "sign_out"
USER_CREATED = "user_created"
USER_CHANGED = "user_changed"
INDIVIDUAL_VIEW = "individual_view"
EXPORT = "export"
POLICY_CHANGE = "policy_change"
PURGE = "purge"
DPIA_GENERATED = "dpia_generated"
SUBJECT_ACCESS = "subject_access"
SUBJECT_ERASURE = "subject_erasure"
AGENDA_CHANGED = "agenda_changed"
REPORT_DOWNLOAD = "report_download"


def audit(store: Store, action: str, actor: str, details: dict[str, Any]) -> None:
    """Append one entry to the privacy module's hash-chained audit log."""
    log = AuditLog(store)
    log.record(AuditAction(action), actor, details)


def audit_entries(store: Store, limit: int = 500) -> list[dict]:
    """The newest `limit` audit entries as plain dicts, oldest first."""
    return [e.to_dict() for e in AuditLog(store).entries(limit=limit)]


@dataclass(frozen=True)
class VerifyOutcome:
    ok: bool
    entries: int
    summary: str
    problems: list[str]


def audit_verify(store: Store) -> VerifyOutcome:
    result = AuditLog(store).verify()
    return VerifyOutcome(bool(result.ok), int(result.entries), result.summary(), [p.message for p in result.problems])


def denied_tracks(store: Store, run_id: int) -> int:
    """How many face tracks a finished run saw without recorded consent (its audited outcome)."""
    for entry in reversed(AuditLog(store).entries(action=AuditAction.ANALYSIS_RUN.value)):
        if entry.details.get("run_id") == run_id:
            return int(entry.details.get("denied_tracks") or 0)
    return 0


# -- compliance profile -----------------------------------------------------------------------


def individual_views_allowed(profile_name: str | None) -> bool:
    """Whether the run's compliance profile allows individual lanes at all (default: no)."""
    try:
        return bool(get_profile(profile_name).individual_views_allowed)
    except EngagementError:
        return False  # an unknown profile name: the cautious answer


# -- consent ----------------------------------------------------------------------------------


def consent_records(store: Store) -> list[dict]:
    """Every consent record (pseudonyms only) as plain dicts, oldest first."""
    return [r.to_dict() for r in consent.list_consents(store)]


class ReasonMissing(EngagementError):
    """A consent action from the dashboard without a reason."""


def _need_reason(reason: str) -> str:
    text = " ".join((reason or "").split())
    if not text:
        raise ReasonMissing("a reason is required")
    return text


def consent_grant(store: Store, identity: str, cohort: str, scopes: list[str], notice_version: str, language: str,
                  evidence: str, reason: str, actor: str) -> list:
    """Record a participant's consent, as `engagement privacy consent grant` does (cohort required)."""
    reason = _need_reason(reason)
    if not (cohort or "").strip():
        raise CohortMissing("the cohort is required")
    return consent.grant(store, identity, cohort=cohort.strip(), scopes=scopes, notice_version=notice_version,
                         language=language, evidence=evidence, actor=actor, reason=reason)


def consent_attest(store: Store, session: str, facilitator: str, cohort: str | None, scopes: list[str],
                   notice_version: str, language: str, evidence: str, reason: str, actor: str) -> list:
    """Record a facilitator's attestation for a session, as `... consent attest` does."""
    reason = _need_reason(reason)
    return consent.attest(store, session, facilitator=facilitator, cohort=(cohort or "").strip() or None, scopes=scopes,
                          notice_version=notice_version, language=language, evidence=evidence, actor=actor,
                          reason=reason)


def has_attestation(store: Store, session: str) -> bool:
    """Whether `session` already has an active facilitator's attestation."""
    with store.transaction() as conn:
        return bool(consent_rows.active_ids(conn, consent_rows.ATTESTATION, {"session_name": session}))


def consent_withdraw(store: Store, participant: str, cohort: str | None, scopes: list[str] | None, reason: str,
                     actor: str):
    """Withdraw a participant's consent (identity + cohort, or pseudonym), as `... consent withdraw`
    does: when no scope remains, everything stored about them is purged with a receipt."""
    reason = _need_reason(reason)
    try:
        pseudonym = resolve_subject(store, _need_subject(participant, cohort), (cohort or "").strip() or None)
    except CohortKeyError:
        raise NotFound("no key for that cohort") from None
    return consent.withdraw(store, pseudonym=pseudonym, scopes=scopes or "all", actor=actor, reason=reason)


def consent_withdraw_attestation(store: Store, session: str, reason: str, actor: str):
    """Withdraw a session's attestation (its attested tracks are purged)."""
    reason = _need_reason(reason)
    return consent.withdraw_attestation(store, session, actor=actor, reason=reason)


class CohortMissing(EngagementError):
    """An identity given without its cohort (its pseudonym cannot be computed)."""


def is_pseudonym(text: str) -> bool:
    """A pseudonym as the privacy module writes them (p-/a- and 40 hex digits), not an identity."""
    text = text.strip()
    return text.startswith((pseudonyms.PARTICIPANT_PREFIX, pseudonyms.ATTESTED_PREFIX)) and len(text) == 42


def _need_subject(participant: str, cohort: str | None) -> str:
    """A participant as typed, refused when empty or an identity without its cohort."""
    text = (participant or "").strip()
    if not text:
        raise SubjectMissing("the participant is missing")
    if not is_pseudonym(text) and not (cohort or "").strip():
        raise CohortMissing("an identity needs its cohort")
    return text


class SubjectMissing(EngagementError):
    """No participant given."""


class NotFound(EngagementError):
    """Nothing is known about that participant in that cohort (said neutrally: no success)."""


def lane_of_display_name(store: Store, run_id: int, cohort: str | None, typed: str, actor: str) -> str | None:
    """The lane (T3) of the participant whose display name the facilitator typed as the meeting
    showed it ("Budi S. (Host)"), or None. The name is turned into the cohort's pseudonym the way
    name labels and rosters are (privacy.subjects.resolve_subject) and goes no further: the lanes
    list no names, and the audit entry holds the pseudonym of a lane found, nothing of a miss."""
    text = typed.strip()
    label = None
    if text:
        try:
            pseudonym = resolve_subject(store, text, (cohort or "").strip() or None)
        except CohortKeyError:
            pseudonym = None
        label = queries.track_label_of(store, run_id, pseudonym) if pseudonym else None
    details: dict[str, Any] = {"view": "lane_by_name", "run_id": run_id, "found": label is not None}
    if label is not None:
        details["participant"] = pseudonym
    audit(store, INDIVIDUAL_VIEW, actor, details)
    return label


def participant_lookup(store: Store, participant: str, cohort: str | None, actor: str) -> dict:
    """A participant's consent records and what is stored about them (counts), by identity +
    cohort or by pseudonym. Opening it is an individual view: audited, pseudonym only.
    Raises NotFound when the cohort has no key or nothing at all is held."""
    text = _need_subject(participant, cohort)
    try:
        pseudonym = resolve_subject(store, text, (cohort or "").strip() or None)
    except CohortKeyError:
        audit(store, INDIVIDUAL_VIEW, actor, {"view": "participant_lookup", "found": False})
        raise NotFound("no key for that cohort") from None
    records = [r.to_dict() for r in consent.list_consents(store, participant=pseudonym)]
    held = queries.participant_data(store, pseudonym)
    found = bool(records) or held["tracks"] > 0
    audit(store, INDIVIDUAL_VIEW, actor, {"view": "participant_lookup", "participant": pseudonym, "found": found})
    if not found:
        raise NotFound("nothing held")
    return {"participant": pseudonym, "consents": records, "data": held}


# -- retention --------------------------------------------------------------------------------


def load_policy() -> Any:
    """The retention policy in force (privacy.retention.load_policy)."""
    return retention.load_policy()


def policy_periods(policy: Any) -> dict[str, str]:
    """Tier -> period text ("30d") of a policy, for display and the edit form."""
    return {tier: retention.format_period(period) for tier, period in policy.periods.items()}


def save_policy(store: Store, periods: dict[str, str], profile: str, reason: str, actor: str) -> Any | None:
    """Validate and write an edited policy and audit the change, with its reason, in one entry.
    Returns the new policy, or None when it equals the one in force (nothing written or logged).

    The privacy module owns the policy format: the new text is parsed by its `parse_policy`
    (a bad period raises PolicyError and nothing is written) and serialised by `to_toml`.
    """

    reason = " ".join((reason or "").split())
    if not reason:
        raise PolicyReasonMissing("a reason is required to change the retention policy")
    path = retention.policy_path()
    old = retention.load_policy()
    new = retention.parse_policy({"retention": {"raw_frames": "never", **periods}, "compliance": {"profile": profile}}, str(path))
    if new.hash == old.hash:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new.to_toml(), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader sees the old or the new policy, never half of one
    with store.transaction() as conn:
        # One entry: the old and new hashes, the policy and the reason; the hash is remembered,
        # so the next purge does not log the same change again.
        retention.note_policy(store, new, conn, actor, reason=reason)
    return new


class PolicyReasonMissing(EngagementError):
    """A policy edit without a reason."""


def purge(store: Store, *, dry_run: bool, actor: str) -> dict:
    """Run (or rehearse) the retention purge; the privacy module writes the receipt and audits."""
    policy = retention.load_policy()
    receipt = retention.purge(store, policy, dry_run=dry_run, trigger="dashboard", actor=actor).to_dict()
    if dry_run:
        receipt["by_session"] = retention.preview_by_session(store, policy)
    return receipt


# -- subject requests -------------------------------------------------------------------------


def subject_access(store: Store, participant: str, cohort: str | None, actor: str) -> dict:
    """Everything held about one participant and its processing trail (audited by privacy).
    NotFound when the cohort has no key (no pseudonym of it can exist)."""
    try:
        return subjects.access(store, participant, cohort=cohort or None, actor=actor)
    except CohortKeyError:
        raise NotFound("no key for that cohort") from None


def subject_erasure(store: Store, participant: str, cohort: str | None, actor: str) -> dict:
    """Erase one participant's data and end their consents; returns counts and receipt.
    NotFound when nothing is held about them in that cohort."""
    try:
        result = subjects.erase(store, participant, cohort=cohort or None, actor=actor)
    except (CohortKeyError, ConsentError):
        raise NotFound("nothing held") from None
    return {"participant": result.participant, "counts": result.counts, "receipt": result.receipt}


def subject_json(data: dict) -> str:
    return subjects.dumps(data)


# -- DPIA -------------------------------------------------------------------------------------


def dpia(store: Store, lang: str, fmt: str, actor: str) -> bytes:
    """The DPIA report (privacy.dpia.render_dpia, fmt 'md' or 'html'); generating it is audited."""
    policy = load_policy()
    text = render_dpia(store, policy, get_profile(policy.profile), lang, fmt)
    audit(store, DPIA_GENERATED, actor, {"lang": lang, "format": fmt, "via": "dashboard"})
    return text.encode("utf-8")


# -- export -----------------------------------------------------------------------------------


def research_preview(store: Store, session: str) -> dict[str, int]:
    """Per session, before a download: participants kept and left out for want of consent."""
    return exporter.research_preview(store, session)


def export_bundle(store: Store, session_names: list[str], fmt: str, actor: str) -> bytes:
    """A zip of the chosen sessions' tidy per-second data, each with its schema and manifest.

    Built by engagement.app.export (the same files `engagement export` writes), zipped in memory;
    the download is audited with the sessions and format.
    """
    buf = io.BytesIO()
    rows = 0
    with tempfile.TemporaryDirectory(prefix="engagement-export-") as tmp:
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in session_names:
                result = exporter.export_session(store, name, fmt, Path(tmp))
                rows += result.rows
                for path in (result.data, result.schema, result.manifest):
                    zf.write(path, arcname=path.name)
    audit(store, EXPORT, actor, {"sessions": session_names[:200], "n_sessions": len(session_names), "format": fmt,
                                 "rows": rows, "via": "dashboard"})
    return buf.getvalue()


def map_agenda_titles(store: Store, cohort: str | None, titles: list[str], mapped_to: str, actor: str) -> list[str]:
    """Count agenda titles of a cohort as one item in the researcher's trends; audited."""
    chosen = agenda_store.map_titles(store, cohort, titles, mapped_to)
    audit(store, AGENDA_CHANGED, actor, {"change": "titles_mapped", "cohort": cohort or "", "titles": chosen,
                                         "mapped_to": mapped_to.strip()})
    return chosen

