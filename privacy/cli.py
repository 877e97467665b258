"""`engagement privacy ...` subcommands (consent, purge, audit, subject requests, keys, DPIA, policy).

Bad input raises an EngagementError subclass; the main CLI prints one line and exits 2.
Destructive commands ask for confirmation on a terminal and need --yes otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engagement.errors import ConfigError


def _db_arg(p: argparse.ArgumentParser) -> None:
    from engagement.config import default_db_url

    p.add_argument("--db", default=None, metavar="URL",
                   help=f"SQLAlchemy database URL (default: {default_db_url()})")


def _store(args, *, create: bool = True, read_only: bool = False):
    # The commands' one way in: a writing command first reaps runs whose writer is gone.
    from engagement.commands.analysis import open_store

    return open_store(args.db, create=create, read_only=read_only)


def _confirm(args, question: str) -> None:
    if getattr(args, "yes", False):
        return
    if not sys.stdin.isatty():
        raise ConfigError(f"{question.rstrip('?')} needs confirmation: add --yes")
    answer = input(f"{question} [y/N] ").strip().lower()
    if answer not in ("y", "yes", "ya"):
        raise ConfigError("cancelled; nothing changed")


def _when(text: str | None, what: str):
    from privacy.timeutil import parse_when

    return parse_when(text, what=what) if text else None


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("privacy", help="consent, retention and purge, audit log, subject requests")
    parser.set_defaults(handler=lambda args: parser.print_help())
    psub = parser.add_subparsers(dest="privacy_command", metavar="ACTION")

    # consent ...
    consent = psub.add_parser("consent", help="record, withdraw, list and import consent")
    consent.set_defaults(handler=lambda args: consent.print_help())
    csub = consent.add_subparsers(dest="consent_command", metavar="ACTION")

    g = csub.add_parser("grant", help="record a participant's consent")
    g.add_argument("participant", help="participant identity (e.g. NIP or e-mail); only its pseudonym is stored")
    g.add_argument("--cohort", required=True)
    g.add_argument("--scope", action="append", dest="scopes", metavar="SCOPE",
                   help="facilitator_feedback (default) or research; repeat for both")
    g.add_argument("--notice-version", required=True, help="version of the privacy notice the participant saw")
    g.add_argument("--language", required=True, help="language of that notice: id or en")
    g.add_argument("--evidence", required=True, help="where the signed form / consent log is kept")
    g.add_argument("--at", help="when consent was given (ISO 8601; default now)")
    _db_arg(g)
    g.set_defaults(handler=_consent_grant)

    w = csub.add_parser("withdraw", help="withdraw consent (purges the participant's data) or a session attestation")
    w.add_argument("participant", nargs="?", help="participant identity or pseudonym")
    w.add_argument("--cohort")
    w.add_argument("--scope", action="append", dest="scopes", metavar="SCOPE", help="default: every scope")
    w.add_argument("--session", help="withdraw this session's facilitator attestation instead")
    w.add_argument("--at", help="when it was withdrawn (ISO 8601; default now)")
    _db_arg(w)
    w.set_defaults(handler=_consent_withdraw)

    ls = csub.add_parser("list", help="list consent records (pseudonyms only)")
    ls.add_argument("--cohort")
    ls.add_argument("--session")
    ls.add_argument("--active", action="store_true", help="only consents not withdrawn")
    ls.add_argument("--json", action="store_true")
    _db_arg(ls)
    ls.set_defaults(handler=_consent_list)

    a = csub.add_parser("attest", help="record a facilitator's attestation that everyone present in a session consented")
    a.add_argument("session")
    a.add_argument("--by", required=True, dest="facilitator", help="the attesting facilitator (stored as a pseudonym)")
    a.add_argument("--cohort")
    a.add_argument("--scope", action="append", dest="scopes", metavar="SCOPE")
    a.add_argument("--notice-version", required=True)
    a.add_argument("--language", required=True)
    a.add_argument("--evidence", required=True)
    a.add_argument("--at")
    _db_arg(a)
    a.set_defaults(handler=_consent_attest)

    im = csub.add_parser("import", help="grant the consents listed in a roster (CSV or TOML); all or nothing")
    im.add_argument("file")
    im.add_argument("--cohort")
    im.add_argument("--notice-version")
    im.add_argument("--language")
    im.add_argument("--evidence")
    im.add_argument("--grid", help="gallery layout COLSxROWS for tile positions in a CSV roster")
    _db_arg(im)
    im.set_defaults(handler=_consent_import)

    # purge
    pu = psub.add_parser("purge", help="delete what is past its retention period and write a receipt")
    pu.add_argument("--dry-run", action="store_true", help="count only; change nothing")
    pu.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    pu.add_argument("--before", help="also delete every data row created before this date (YYYY-MM-DD); audit entries excepted")
    pu.add_argument("--policy", help="policy file (default: DATA_DIR/retention.toml)")
    _db_arg(pu)
    pu.set_defaults(handler=_purge)

    # audit
    au = psub.add_parser("audit", help="verify, list or re-anchor the hash-chained audit log")
    au.set_defaults(handler=lambda args: au.print_help())
    ausub = au.add_subparsers(dest="audit_command", metavar="ACTION")
    av = ausub.add_parser("verify", help="check the chain; names any edited, deleted or reordered entry")
    _db_arg(av)
    av.set_defaults(handler=_audit_verify)
    ar = ausub.add_parser(
        "re-anchor",
        help="accept the log as it stands after a deliberate move or restore (audited with the reason)",
        description="Reset the anchor kept outside the database to the log's newest entry, after the "
        "database was moved or restored on purpose. The reason and what verify found before are "
        "recorded in the log itself; problems inside the chain stay visible to verify.",
    )
    ar.add_argument("--reason", required=True, help="why, e.g. \"restored from the 2026-05-01 backup\"")
    _db_arg(ar)
    ar.set_defaults(handler=_audit_reanchor)
    al = ausub.add_parser("list", help="show audit entries")
    al.add_argument("--action", help="only this action (e.g. purge, consent_withdrawn)")
    al.add_argument("--limit", type=int, default=50, help="newest N entries (default 50; 0 = all)")
    al.add_argument("--json", action="store_true")
    _db_arg(al)
    al.set_defaults(handler=_audit_list)

    # subject requests
    ac = psub.add_parser("access", help="a participant's data and its processing trail, as JSON")
    ac.add_argument("participant", help="identity (with --cohort) or pseudonym")
    ac.add_argument("--cohort")
    ac.add_argument("--out", help="write to this file instead of standard output")
    _db_arg(ac)
    ac.set_defaults(handler=_access)

    er = psub.add_parser("erase", help="delete a participant's data (receipt written)")
    er.add_argument("participant", help="identity (with --cohort) or pseudonym")
    er.add_argument("--cohort")
    er.add_argument("--yes", action="store_true")
    _db_arg(er)
    er.set_defaults(handler=_erase)

    # keys
    ke = psub.add_parser("keys", help="cohort pseudonym keys")
    ke.set_defaults(handler=lambda args: ke.print_help())
    kesub = ke.add_subparsers(dest="keys_command", metavar="ACTION")
    kd = kesub.add_parser("destroy", help="destroy a cohort key: its pseudonyms become unlinkable for good")
    kd.add_argument("cohort")
    kd.add_argument("--yes", action="store_true")
    _db_arg(kd)
    kd.set_defaults(handler=_keys_destroy)

    # dpia
    dp = psub.add_parser("dpia", help="DPIA / record of processing from the live configuration")
    dp.add_argument("--lang", default="id", choices=["id", "en"])
    dp.add_argument("--format", default="md", choices=["md", "html"], dest="fmt")
    dp.add_argument("--out", help="write to this file instead of standard output")
    dp.add_argument("--policy", help="policy file (default: DATA_DIR/retention.toml)")
    dp.add_argument("--profile", help="compliance profile (default: the policy's)")
    _db_arg(dp)
    dp.set_defaults(handler=_dpia)

    # policy
    po = psub.add_parser("policy", help="the retention / compliance policy")
    po.set_defaults(handler=lambda args: po.print_help())
    posub = po.add_subparsers(dest="policy_command", metavar="ACTION")
    ps = posub.add_parser("show", help="print the policy in force (TOML) and its hash")
    ps.add_argument("--policy", help="policy file (default: DATA_DIR/retention.toml)")
    ps.set_defaults(handler=_policy_show)


# -- handlers -----------------------------------------------------------------------------------


def _consent_grant(args) -> int:
    from privacy import consent

    store = _store(args)
    records = consent.grant(store, args.participant, cohort=args.cohort, scopes=args.scopes,
                            notice_version=args.notice_version, language=args.language, evidence=args.evidence,
                            at=_when(args.at, "--at"))
    print(f"consent recorded for {records[0].participant}: {', '.join(r.scope for r in records)}")
    return 0


def _consent_withdraw(args) -> int:
    from privacy import consent

    store = _store(args, create=False)
    at = _when(args.at, "--at")
    if args.session:
        if args.participant:
            raise ConfigError("give either a participant or --session, not both")
        result = consent.withdraw_attestation(store, args.session, at=at)
        print(f"attestation of session {args.session!r} withdrawn; purged {sum(result.purged.values())} row(s)")
        return 0
    if not args.participant:
        raise ConfigError("give the participant (identity with --cohort, or pseudonym) or --session")
    from privacy.subjects import resolve_subject

    pseud = resolve_subject(store, args.participant, args.cohort)
    result = consent.withdraw(store, pseudonym=pseud, scopes=args.scopes or "all", at=at)
    line = f"consent withdrawn for {pseud} ({len(result.withdrawn)} record(s))"
    if result.receipt:
        line += f"; purged {sum(result.purged.values())} row(s), receipt {result.receipt['receipt_id']}"
    print(line)
    return 0


def _consent_list(args) -> int:
    from privacy import consent

    store = _store(args, create=False, read_only=True)
    records = consent.list_consents(store, cohort=args.cohort, session_name=args.session, active_only=args.active)
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return 0
    if not records:
        print("no consent records")
        return 0
    for r in records:
        who = r.participant if r.kind == "participant" else f"session {r.session_name!r} (attested)"
        state = f"withdrawn {r.to_dict()['withdrawn_at']}" if r.withdrawn_at else "active"
        print(f"{r.id:>5}  {r.cohort:<16} {who:<44} {r.scope:<21} {r.notice_version}/{r.language}  "
              f"granted {r.to_dict()['granted_at']}  {state}")
    return 0


def _consent_attest(args) -> int:
    from privacy import consent

    records = consent.attest(_store(args), args.session, facilitator=args.facilitator, cohort=args.cohort,
                             scopes=args.scopes, notice_version=args.notice_version, language=args.language,
                             evidence=args.evidence, at=_when(args.at, "--at"))
    print(f"attestation recorded for session {args.session!r}: {', '.join(r.scope for r in records)}")
    return 0


def _consent_import(args) -> int:
    from privacy.roster import import_roster, load_roster

    roster = load_roster(args.file, grid=args.grid)  # validated fully before anything is written
    n = import_roster(_store(args), roster, cohort=args.cohort, notice_version=args.notice_version,
                              language=args.language, evidence=args.evidence)
    print(f"imported {len(roster.entries)} participant(s), {n} consent record(s)")
    return 0


def _purge(args) -> int:
    from privacy.retention import load_policy, purge

    policy = load_policy(args.policy)
    before = _when(args.before, "--before")
    store = _store(args, create=False)
    if not args.dry_run:
        preview = purge(store, policy, dry_run=True, before=before, trigger="cli")
        if preview.total == 0:
            print("nothing is past its retention period")
        else:
            _confirm(args, f"delete {preview.total} row(s) past their retention period?")
    receipt = purge(store, policy, dry_run=args.dry_run, before=before, trigger="cli")
    print(json.dumps(receipt.to_dict(), indent=2))
    return 0


def _audit_verify(args) -> int:
    from privacy.audit import AuditLog

    result = AuditLog(_store(args, create=False, read_only=True)).verify()
    print(result.summary())
    for p in result.problems:
        print(f"  entry {p.seq}: {p.kind}: {p.message}")
    return 0 if result.ok else 1


def _audit_reanchor(args) -> int:
    from privacy.audit import AuditLog, resolve_actor

    entry, before = AuditLog(_store(args, create=False)).reanchor(args.reason, resolve_actor())
    found = "; ".join(f"entry {p.seq}: {p.kind}" for p in before.problems) or "nothing"
    print(f"audit log re-anchored at entry {entry.seq} (verify had found: {found})")
    return 0


def _audit_list(args) -> int:
    from privacy.audit import AuditAction, AuditLog

    if args.action:
        try:
            AuditAction(args.action)
        except ValueError:
            raise ConfigError(f"unknown audit action {args.action!r}; one of: {', '.join(a.value for a in AuditAction)}") from None
    store = _store(args, create=False, read_only=True)
    entries = AuditLog(store).entries(action=args.action, limit=args.limit or None)
    if args.json:
        print(json.dumps([e.to_dict() for e in entries], indent=2, ensure_ascii=False))
        return 0
    for e in entries:
        print(f"{e.seq:>6}  {e.to_dict()['at']}  {e.action:<18} {e.actor:<20} {json.dumps(e.details, ensure_ascii=False)[:160]}")
    return 0


def _access(args) -> int:
    from privacy.subjects import access, dumps

    text = dumps(access(_store(args, create=False), args.participant, cohort=args.cohort))
    if args.out:
        _write_private(Path(args.out), text)
        print(f"written to {args.out}")
    else:
        print(text)
    return 0


def _erase(args) -> int:
    from privacy.subjects import erase, resolve_subject

    store = _store(args, create=False)
    pseud = resolve_subject(store, args.participant, args.cohort)
    _confirm(args, f"erase every stored row of {pseud}?")
    result = erase(store, pseud)
    print(json.dumps({**result.receipt, "file": str(result.receipt_file) if result.receipt_file else None}, indent=2))
    return 0


def _keys_destroy(args) -> int:
    from privacy.pseudonym import KeyRing, check_cohort

    cohort = check_cohort(args.cohort)
    _confirm(args, f"destroy the key of cohort {cohort!r}? Its pseudonyms can never be linked again")
    fp = KeyRing(_store(args)).destroy(cohort)
    print(f"cohort key {cohort!r} destroyed (fingerprint {fp})")
    return 0


def _dpia(args) -> int:
    from privacy.audit import AuditAction, AuditLog, resolve_actor
    from privacy.dpia import render_dpia
    from privacy.profiles import get_profile
    from privacy.retention import load_policy

    policy = load_policy(args.policy)
    profile = get_profile(args.profile or policy.profile)
    store = _store(args)
    text = render_dpia(store, policy, profile, lang=args.lang, fmt=args.fmt)
    AuditLog(store).record(AuditAction.DPIA_GENERATED, resolve_actor(),
                           {"lang": args.lang, "format": args.fmt, "profile": profile.name, "policy_hash": policy.hash})
    if args.out:
        try:
            Path(args.out).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {args.out}: {exc.strerror}") from None
        print(f"written to {args.out}")
    else:
        print(text)
    return 0


def _policy_show(args) -> int:
    from privacy.retention import load_policy

    policy = load_policy(args.policy)
    print(f"# source: {policy.source}\n# hash: {policy.hash}")
    print(policy.to_toml(), end="")
    return 0


def _write_private(path: Path, text: str) -> None:
    """Subject-access output is personal data: written readable by its owner only."""
    import os

    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
