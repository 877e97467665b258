"""`engagement doctor`: one line per check of the installation and the machine, with what to do.

Exit code 0 when no check failed (warnings allowed: a batch server needs no camera), 1 otherwise;
`--json` prints the findings for IT tooling (status, catalogue key, raw values, texts).
"""

from __future__ import annotations

import json

import typer

from engagement.app.doctor import Finding, run_checks
from engagement.cli.common import Db, Json, command, say


def register(app: typer.Typer) -> None:
    command(app, "doctor", doctor, "cli.doctor.help")


def _line(finding: Finding) -> str:
    text = f"[{say('doctor.status.' + finding.status)}] {say('doctor.check.' + finding.check)}: " \
           f"{say(finding.key, **_shown(finding.values))}"
    return text + (f" -> {say('cli.doctor.fix')}: {say(finding.fix, **_shown(finding.values))}" if finding.fix else "")


def _shown(values: dict) -> dict:
    # Lists read as comma-separated words; unknown flags (None) as "?".
    return {k: ", ".join(map(str, v)) if isinstance(v, list) else ("?" if v is None else v) for k, v in values.items()}


def doctor(db: Db = None, as_json: Json = False) -> int:
    findings = run_checks(db)
    failed = sum(f.status == "fail" for f in findings)
    warned = sum(f.status == "warn" for f in findings)
    if as_json:
        rows = [{**f.to_dict(), "text": say(f.key, **_shown(f.values)),
                 "to_do": say(f.fix, **_shown(f.values)) if f.fix else None} for f in findings]
        print(json.dumps({"ok": not failed, "checks": rows}, indent=1, ensure_ascii=False))
    else:
        for finding in findings:
            print(_line(finding))
        print(say("cli.doctor.summary_fail" if failed else "cli.doctor.summary_ok", fail=failed, warn=warned))
    return 1 if failed else 0
