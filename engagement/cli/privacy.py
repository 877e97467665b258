"""`engagement privacy ...` subcommands (consent, purge, audit, subject requests, keys, DPIA, policy).

Bad input raises an EngagementError subclass; the main CLI prints one line and exits 2.
Destructive commands ask for confirmation on a terminal and need --yes otherwise.
"""

from __future__ import annotations

import enum
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from engagement.cli.common import (
    Cohort, Db, Json, OutFile, PolicyFile, Yes, command, group, open_store, option, say,
)
from engagement.core.errors import ConfigError
from engagement.core.time import parse_when
from privacy import consent, roster as rosters
from privacy.audit import AuditAction, AuditLog, resolve_actor
from privacy.dpia import render_dpia
from privacy.profiles import get_profile
from privacy.pseudonym import KeyRing, check_cohort
from privacy.retention import load_policy, purge
from privacy.subjects import access, dumps, erase, resolve_subject


class Lang(str, enum.Enum):
    id = "id"
    en = "en"


class DocFormat(str, enum.Enum):
    md = "md"
    html = "html"


Scopes = Annotated[list[str] | None, option("--scope", metavar="SCOPE", key="cli.privacy.opt_scope")]
At = Annotated[str | None, option("--at", key="cli.privacy.opt_at")]
Subject = Annotated[str, typer.Argument(help=say("cli.privacy.opt_subject"))]
NoticeVersion = Annotated[str, option("--notice-version", key="cli.privacy.opt_notice_version")]
Language = Annotated[str, option("--language", key="cli.privacy.opt_language")]
Evidence = Annotated[str, option("--evidence", key="cli.privacy.opt_evidence")]


def register(app: typer.Typer) -> None:
    privacy = group("privacy", bare_help=True)
    consents = group("consent", bare_help=True)
    for name, handler in (("grant", grant), ("withdraw", withdraw), ("list", list_consents), ("attest", attest),
                          ("import", import_roster)):
        command(consents, name, handler, f"cli.consent.{name}")
    privacy.add_typer(consents)
    command(privacy, "purge", purge_command, "cli.privacy.purge")
    audit = group("audit", bare_help=True)
    command(audit, "verify", audit_verify, "cli.audit.verify")
    command(audit, "re-anchor", audit_reanchor, "cli.audit.re_anchor", description="cli.audit.re_anchor_description")
    command(audit, "list", audit_list, "cli.audit.list")
    privacy.add_typer(audit)
    command(privacy, "access", access_command, "cli.privacy.access")
    command(privacy, "erase", erase_command, "cli.privacy.erase")
    keys = group("keys", bare_help=True)
    command(keys, "destroy", keys_destroy, "cli.keys.destroy")
    privacy.add_typer(keys)
    command(privacy, "dpia", dpia, "cli.privacy.dpia")
    policy = group("policy", bare_help=True)
    command(policy, "show", policy_show, "cli.policy.show")
    privacy.add_typer(policy)
    app.add_typer(privacy)


def _confirm(yes: bool, question: str) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise ConfigError(say("cli.privacy.needs_yes", question=question.rstrip("?")))
    answer = input(f"{question} [{say('cli.privacy.yes_no')}] ").strip().lower()
    if answer not in ("y", "yes", "ya"):
        raise ConfigError(say("cli.privacy.cancelled"))


def _when(text: str | None, what: str):
    return parse_when(text, what=what) if text else None


def _terms(scopes: list[str] | None, notice_version, language, evidence, at: str | None) -> dict:
    """What a consent and an attestation both record: scopes, the notice shown, the evidence, when."""
    return {"scopes": scopes or None, "notice_version": notice_version, "language": language,
            "evidence": evidence, "at": _when(at, "--at")}


# -- consent ------------------------------------------------------------------------------------


def grant(
    participant: Annotated[str, typer.Argument(help=say("cli.privacy.opt_identity"))],
    notice_version: NoticeVersion,
    language: Language,
    evidence: Evidence,
    cohort: Annotated[str, typer.Option("--cohort")],
    scopes: Scopes = None,
    at: At = None,
    db: Db = None,
) -> int:
    terms = _terms(scopes, notice_version, language, evidence, at)
    records = consent.grant(open_store(db), participant, cohort=cohort, **terms)
    print(say("cli.consent.granted", who=records[0].participant, scopes=", ".join(r.scope for r in records)))
    return 0


def withdraw(
    participant: Annotated[str | None, typer.Argument(help=say("cli.privacy.opt_subject"))] = None,
    cohort: Cohort = None,
    scopes: Annotated[list[str] | None, option("--scope", metavar="SCOPE", key="cli.consent.opt_scope_all")] = None,
    session: Annotated[str | None, option("--session", key="cli.consent.opt_session")] = None,
    at: At = None,
    db: Db = None,
) -> int:
    store = open_store(db, create=False)
    when = _when(at, "--at")
    if session:
        if participant:
            raise ConfigError(say("cli.consent.not_both"))
        result = consent.withdraw_attestation(store, session, at=when)
        print(say("cli.consent.attestation_withdrawn", session=repr(session), rows=sum(result.purged.values())))
        return 0
    if not participant:
        raise ConfigError(say("cli.consent.who"))
    pseud = resolve_subject(store, participant, cohort)
    result = consent.withdraw(store, pseudonym=pseud, scopes=scopes or "all", at=when)
    line = say("cli.consent.withdrawn", who=pseud, n=len(result.withdrawn))
    if result.receipt:
        rows, receipt = sum(result.purged.values()), result.receipt["receipt_id"]
        line += say("cli.consent.withdrawn_purged", rows=rows, receipt=receipt)
    print(line)
    return 0


def list_consents(
    cohort: Cohort = None,
    session: Annotated[str | None, typer.Option("--session")] = None,
    active: Annotated[bool, option("--active", key="cli.consent.opt_active")] = False,
    as_json: Json = False,
    db: Db = None,
) -> int:
    store = open_store(db, create=False, read_only=True)
    records = consent.list_consents(store, cohort=cohort, session_name=session, active_only=active)
    if as_json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return 0
    if not records:
        print(say("cli.consent.none"))
        return 0
    for r in records:
        row = r.to_dict()
        who = r.participant
        if r.kind != "participant":
            who = say("cli.consent.row_attested", session=repr(r.session_name))
        state = say("cli.consent.row_active")
        if r.withdrawn_at:
            state = say("cli.consent.row_withdrawn", at=row["withdrawn_at"])
        granted = say("cli.consent.row_granted", at=row["granted_at"])
        print(f"{r.id:>5}  {r.cohort:<16} {who:<44} {r.scope:<21} {r.notice_version}/{r.language}  {granted}  {state}")
    return 0


def attest(
    session: Annotated[str, typer.Argument(show_default=False)],
    facilitator: Annotated[str, option("--by", key="cli.consent.opt_by")],
    notice_version: NoticeVersion,
    language: Language,
    evidence: Evidence,
    cohort: Cohort = None,
    db: Db = None,
    scopes: Scopes = None,
    at: At = None,
) -> int:
    terms = _terms(scopes, notice_version, language, evidence, at)
    records = consent.attest(open_store(db), session, facilitator=facilitator, cohort=cohort, **terms)
    print(say("cli.consent.attested", session=repr(session), scopes=", ".join(r.scope for r in records)))
    return 0


def import_roster(
    file: Annotated[str, typer.Argument(show_default=False)],
    cohort: Cohort = None,
    notice_version: Annotated[str | None, typer.Option("--notice-version")] = None,
    language: Annotated[str | None, typer.Option("--language")] = None,
    evidence: Annotated[str | None, typer.Option("--evidence")] = None,
    grid: Annotated[str | None, option("--grid", key="cli.consent.opt_grid")] = None,
    db: Db = None,
) -> int:
    roster = rosters.load_roster(file, grid=grid)  # validated fully before anything is written
    n = rosters.import_roster(open_store(db), roster, cohort=cohort, notice_version=notice_version,
                              language=language, evidence=evidence)
    print(say("cli.consent.imported", participants=len(roster.entries), records=n))
    return 0


# -- retention, audit, subject requests, keys ---------------------------------------------------


def purge_command(
    dry_run: Annotated[bool, option("--dry-run", key="cli.purge.opt_dry_run")] = False,
    yes: Yes = False,
    before: Annotated[str | None, option("--before", key="cli.purge.opt_before")] = None,
    policy: PolicyFile = None,
    db: Db = None,
) -> int:
    rules = load_policy(policy)
    cutoff = _when(before, "--before")
    store = open_store(db, create=False)
    if not dry_run:
        preview = purge(store, rules, dry_run=True, before=cutoff, trigger="cli")
        if preview.total == 0:
            print(say("cli.purge.nothing"))
        else:
            _confirm(yes, say("cli.purge.confirm", rows=preview.total))
    receipt = purge(store, rules, dry_run=dry_run, before=cutoff, trigger="cli")
    print(json.dumps(receipt.to_dict(), indent=2))
    return 0


def audit_verify(db: Db = None) -> int:
    result = AuditLog(open_store(db, create=False, read_only=True)).verify()
    print(result.summary())
    for p in result.problems:
        print(f"  entry {p.seq}: {p.kind}: {p.message}")
    return 0 if result.ok else 1


def audit_reanchor(
    reason: Annotated[str, option("--reason", key="cli.audit.opt_reason")],
    db: Db = None,
) -> int:
    entry, before = AuditLog(open_store(db, create=False)).reanchor(reason, resolve_actor())
    found = "; ".join(f"entry {p.seq}: {p.kind}" for p in before.problems) or say("cli.audit.found_nothing")
    print(say("cli.audit.reanchored", seq=entry.seq, found=found))
    return 0


def audit_list(
    action: Annotated[str | None, option("--action", key="cli.audit.opt_action")] = None,
    limit: Annotated[int, option("--limit", key="cli.audit.opt_limit")] = 50,
    as_json: Json = False,
    db: Db = None,
) -> int:
    if action and action not in {a.value for a in AuditAction}:
        known = ", ".join(a.value for a in AuditAction)
        raise ConfigError(say("cli.audit.unknown_action", action=repr(action), actions=known))
    entries = AuditLog(open_store(db, create=False, read_only=True)).entries(action=action, limit=limit or None)
    if as_json:
        print(json.dumps([e.to_dict() for e in entries], indent=2, ensure_ascii=False))
        return 0
    for e in entries:
        print(f"{e.seq:>6}  {e.to_dict()['at']}  {e.action:<18} {e.actor:<20} {json.dumps(e.details, ensure_ascii=False)[:160]}")
    return 0


def access_command(participant: Subject, cohort: Cohort = None, out: OutFile = None, db: Db = None) -> int:
    text = dumps(access(open_store(db, create=False), participant, cohort=cohort))
    _write_or_print(out, text)
    return 0


def erase_command(participant: Subject, cohort: Cohort = None, yes: Yes = False, db: Db = None) -> int:
    store = open_store(db, create=False)
    pseud = resolve_subject(store, participant, cohort)
    _confirm(yes, say("cli.privacy.erase_confirm", who=pseud))
    result = erase(store, pseud)
    print(json.dumps({**result.receipt, "file": str(result.receipt_file) if result.receipt_file else None}, indent=2))
    return 0


def keys_destroy(cohort: Annotated[str, typer.Argument(show_default=False)], yes: Yes = False, db: Db = None) -> int:
    cohort = check_cohort(cohort)
    _confirm(yes, say("cli.keys.confirm", cohort=repr(cohort)))
    fp = KeyRing(open_store(db)).destroy(cohort)
    print(say("cli.keys.destroyed", cohort=repr(cohort), fingerprint=fp))
    return 0


# -- documents ----------------------------------------------------------------------------------


def dpia(
    lang: Annotated[Lang, typer.Option("--lang")] = Lang.id,
    fmt: Annotated[DocFormat, typer.Option("--format")] = DocFormat.md,
    out: OutFile = None,
    policy: PolicyFile = None,
    profile: Annotated[str | None, option("--profile", key="cli.dpia.opt_profile")] = None,
    db: Db = None,
) -> int:
    rules = load_policy(policy)
    chosen = get_profile(profile or rules.profile)
    store = open_store(db)
    text = render_dpia(store, rules, chosen, lang=lang.value, fmt=fmt.value)
    AuditLog(store).record(AuditAction.DPIA_GENERATED, resolve_actor(),
                           {"lang": lang.value, "format": fmt.value, "profile": chosen.name, "policy_hash": rules.hash})
    _write_or_print(out, text)
    return 0


def policy_show(policy: PolicyFile = None) -> int:
    rules = load_policy(policy)
    print(f"# source: {rules.source}\n# hash: {rules.hash}")
    print(rules.to_toml(), end="")
    return 0


def _write_or_print(out: str | None, text: str) -> None:
    """Subject-access output and the DPIA describe personal data: a file is its owner's only."""
    if not out:
        print(text)
        return
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise ConfigError(say("cli.cannot_write", path=Path(out), reason=exc.strerror)) from None
    print(say("cli.written", path=out))
