"""The audit log as a privacy officer reads it: details in words, local times, a CSV export.

The log itself stays as written (canonical JSON, UTC): this only formats it for reading. The
CSV keeps the full JSON and both times, so nothing is lost by the readable view.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import tzinfo

import pandas as pd

from dashboard import ui
from dashboard.clock import local_text
from dashboard.page_text import t
from engagement.app.export import neutralise_formula

_HASH = re.compile(r"^[0-9a-f]{64}$")
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
MAX_ITEMS = 5  # list items shown before "+n"
# Detail values that are codes, and the catalogue prefix that says them in words ("jenis:
# attestation" in the Indonesian log read as machine text). A code the catalogue lacks shows as itself.
VALUE_TERMS = {"action": "action", "role": "role", "kind": "consent_kind", "scopes": "scope", "trigger": "trigger",
               "format": "format"}


def value_text(key: str, value: object, tz: tzinfo) -> str:
    """One detail value in words: local times, short hashes, counts with their meaning."""
    if value is None:
        return ui.MISSING
    if isinstance(value, bool):
        return t("common.yes") if value else t("common.no")
    if isinstance(value, str):
        if _HASH.match(value):
            return value[:12] + "…"
        if _ISO.match(value):
            return local_text(value, tz, seconds=True) or value
        if key in VALUE_TERMS:
            return ui.term(VALUE_TERMS[key], value)
        return value
    if isinstance(value, list):
        shown = [value_text(key, v, tz) for v in value[:MAX_ITEMS]]
        more = len(value) - MAX_ITEMS
        return ", ".join(shown) + (f" +{more}" if more > 0 else "")
    if isinstance(value, dict):
        if set(value) == {"scope", "seconds"}:  # a sign-in lock: what was locked, for how long
            return t("audit.lock", scope=ui.term("lock_scope", value["scope"]), length=ui.duration(value["seconds"]))
        if value and all(isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
            return ", ".join(f"{ui.count_label(k)} {v}" for k, v in value.items())  # a receipt's counts
        return "; ".join(f"{ui.term('detail', k)} {value_text(k, v, tz)}" for k, v in value.items())
    return str(value)


def details_text(details: dict, tz: tzinfo) -> str:
    """An entry's details as 'label: value · label: value'."""
    if not details:
        return ui.MISSING
    return " · ".join(f"{ui.term('detail', k)}: {value_text(k, v, tz)}" for k, v in details.items())


def audit_csv(entries: pd.DataFrame, tz: tzinfo) -> bytes:
    """The filtered entries as CSV (UTF-8 with BOM, so spreadsheets read the accents): sequence,
    UTC and local time, action code and words, actor, full details JSON, hash."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["seq", "at_utc", "at_local", "action", "action_text", "actor", "details_json", "hash"])
    for row in entries.itertuples():
        at = pd.Timestamp(row.at)
        at = at.tz_localize("UTC") if at.tzinfo is None else at.tz_convert("UTC")
        writer.writerow(
            neutralise_formula(v)
            for v in (
                row.seq,
                at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                local_text(row.at, tz, seconds=True),
                row.action,
                ui.term("action", row.action),
                row.actor,
                json.dumps(row.details, ensure_ascii=False, sort_keys=True),
                row.hash,
            )
        )
    return ("\ufeff" + buf.getvalue()).encode("utf-8")
