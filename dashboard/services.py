"""The dashboard's calls into other parts of the product (privacy, export), all in one place.

The privacy and export modules are written alongside the dashboard; each function here imports
what it needs lazily and returns `None` (or raises `Unavailable`) when a piece is not installed
yet, so a page can say "not available in this version" instead of failing. Wiring a new
function is a one-line change in this file.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from typing import Any

from engagement.errors import EngagementError
from engagement.store import Store


class Unavailable(EngagementError):
    """A privacy/export feature this installation does not have (yet)."""


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
    try:
        from privacy.audit import AuditAction, AuditLog
    except ImportError:
        raise Unavailable("the audit log (privacy.audit) is not installed") from None
    log = AuditLog(store)
    log.record(AuditAction(action), actor, details)


def audit_entries(store: Store, limit: int = 500) -> list[dict]:
    """The newest `limit` audit entries as plain dicts, oldest first."""
    try:
        from privacy.audit import AuditLog
    except ImportError:
        raise Unavailable("the audit log (privacy.audit) is not installed") from None
    return [e.to_dict() for e in AuditLog(store).entries(limit=limit)]


@dataclass(frozen=True)
class VerifyOutcome:
    ok: bool
    entries: int
    summary: str
    problems: list[str]


def audit_verify(store: Store) -> VerifyOutcome:
    try:
        from privacy.audit import AuditLog
    except ImportError:
        raise Unavailable("the audit log (privacy.audit) is not installed") from None
    result = AuditLog(store).verify()
    return VerifyOutcome(bool(result.ok), int(result.entries), result.summary(), [p.message for p in result.problems])


def denied_tracks(store: Store, run_id: int) -> int:
    """How many face tracks a finished run saw without recorded consent (its audited outcome)."""
    from privacy.audit import AuditAction, AuditLog

    for entry in reversed(AuditLog(store).entries(action=AuditAction.ANALYSIS_RUN.value)):
        if entry.details.get("run_id") == run_id:
            return int(entry.details.get("denied_tracks") or 0)
    return 0


# -- compliance profile -----------------------------------------------------------------------


def individual_views_allowed(profile_name: str | None) -> bool:
    """Whether the run's compliance profile allows individual lanes at all (default: no)."""
    try:
        from privacy.profiles import get_profile
    except ImportError:
        return False
    try:
        return bool(get_profile(profile_name).individual_views_allowed)
    except EngagementError:
        return False  # an unknown profile name: the cautious answer


# -- consent ----------------------------------------------------------------------------------


def consent_records(store: Store) -> list[dict]:
    """Every consent record (pseudonyms only) as plain dicts, oldest first."""
    try:
        from privacy.consent import list_consents
    except ImportError:
        raise Unavailable("consent records (privacy.consent) are not installed") from None
    return [r.to_dict() for r in list_consents(store)]


# -- retention --------------------------------------------------------------------------------


def load_policy() -> Any:
    """The retention policy in force (privacy.retention.load_policy)."""
    return _retention().load_policy()


def policy_periods(policy: Any) -> dict[str, str]:
    """Tier -> period text ("30d") of a policy, for display and the edit form."""
    retention = _retention()
    return {tier: retention.format_period(period) for tier, period in policy.periods.items()}


def save_policy(store: Store, periods: dict[str, str], profile: str, reason: str, actor: str) -> Any:
    """Validate and write an edited policy, then audit the change with its reason.

    The privacy module owns the policy format: the new text is parsed by its `parse_policy`
    (a bad period raises PolicyError and nothing is written) and serialised by `to_toml`.
    """
    import os

    retention = _retention()
    reason = (reason or "").strip()
    if not reason:
        raise PolicyReasonMissing("a reason is required to change the retention policy")
    path = retention.policy_path()
    old = retention.load_policy()
    new = retention.parse_policy({"retention": {"raw_frames": "never", **periods}, "compliance": {"profile": profile}}, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(new.to_toml(), encoding="utf-8")
    os.replace(tmp, path)  # atomic: a reader sees the old or the new policy, never half of one
    with store.transaction() as conn:
        # note_policy records the hashes and the new policy and remembers the hash, so the next
        # purge does not log the same change again; the reason goes in an entry of its own.
        retention.note_policy(store, new, conn, actor)
    audit(store, POLICY_CHANGE, actor, {"reason": reason[:500], "old_hash": old.hash, "new_hash": new.hash, "via": "dashboard"})
    return new


class PolicyReasonMissing(EngagementError):
    """A policy edit without a reason."""


def purge(store: Store, *, dry_run: bool, actor: str) -> dict:
    """Run (or rehearse) the retention purge; the privacy module writes the receipt and audits."""
    retention = _retention()
    receipt = retention.purge(store, retention.load_policy(), dry_run=dry_run, trigger="dashboard", actor=actor)
    return receipt.to_dict()


def _retention():
    try:
        from privacy import retention
    except ImportError:
        raise Unavailable("retention and purge (privacy.retention) are not installed") from None
    return retention


# -- subject requests -------------------------------------------------------------------------


def subject_access(store: Store, participant: str, cohort: str | None, actor: str) -> dict:
    """Everything held about one participant and its processing trail (audited by privacy)."""
    return _subjects().access(store, participant, cohort=cohort or None, actor=actor)


def subject_erasure(store: Store, participant: str, cohort: str | None, actor: str) -> dict:
    """Erase one participant's data and end their consents; returns counts and receipt."""
    result = _subjects().erase(store, participant, cohort=cohort or None, actor=actor)
    return {"participant": result.participant, "counts": result.counts, "receipt": result.receipt}


def subject_json(data: dict) -> str:
    return _subjects().dumps(data)


def _subjects():
    try:
        from privacy import subjects
    except ImportError:
        raise Unavailable("subject requests (privacy.subjects) are not installed") from None
    return subjects


# -- DPIA -------------------------------------------------------------------------------------


def dpia(store: Store, lang: str, fmt: str, actor: str) -> bytes:
    """The DPIA report (privacy.dpia.render_dpia, fmt 'md' or 'html'); generating it is audited."""
    try:
        from privacy.dpia import render_dpia
        from privacy.profiles import get_profile
    except ImportError:
        raise Unavailable("the DPIA report (privacy.dpia) is not installed") from None
    policy = load_policy()
    text = render_dpia(store, policy, get_profile(policy.profile), lang, fmt)
    audit(store, DPIA_GENERATED, actor, {"lang": lang, "format": fmt, "via": "dashboard"})
    return text.encode("utf-8")


# -- export -----------------------------------------------------------------------------------


def export_bundle(store: Store, session_names: list[str], fmt: str, actor: str) -> bytes:
    """A zip of the chosen sessions' tidy per-second data, each with its schema and manifest.

    Built by engagement.export (the same files `engagement export` writes), zipped in memory;
    the download is audited with the sessions and format.
    """
    import tempfile
    from pathlib import Path

    try:
        from engagement import export as exporter
    except ImportError:
        raise Unavailable("exports (engagement.export) are not installed") from None
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
