"""DPIA / record of processing, generated from the live configuration (UU 27/2022 Art. 31, 34).

Everything variable comes from what is in force: the compliance profile, the retention policy,
the consent records, the cohort keys, the purge receipts and the audit chain's state. The
controller fills in its own name and contact; the rest is not hand-written, so it cannot drift
from what the software actually does.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from engagement.core import schema
from engagement.core.errors import ConfigError
from engagement.core.i18n import LANGUAGES, catalogue, translate
from engagement.core.records import BLENDSHAPE_NAMES, EXPRESSION_LABELS, EYE_BLENDSHAPES, FEATURE_NAMES
from engagement.core.time import iso, utcnow
from privacy.audit import AuditLog
from privacy.profiles import Profile
from privacy.pseudonym import keys_dir
from privacy.retention import TIERS, RetentionPolicy, format_period

# Texts live in the one catalogue (engagement/core/locales/*.json) under `dpia.doc.*`; lists are
# numbered keys (`dpia.doc.safeguard_1`, ...) so a translator can add an item without code.
_PREFIX = "dpia.doc."


def _t(key: str, lang: str) -> str:
    return translate(_PREFIX + key, lang)


def _items(stem: str, lang: str) -> list[str]:
    """The numbered texts `<stem>_1`, `<stem>_2`, ... of one language, in order."""
    texts = catalogue(lang)
    out = []
    while (key := f"{_PREFIX}{stem}_{len(out) + 1}") in texts:
        out.append(texts[key])
    return out


def _state(store, policy: RetentionPolicy, lang: str) -> list[tuple[str, str]]:
    c, k, pr = schema.consent_records, schema.cohort_key_events, schema.purge_receipts
    with store.transaction() as conn:
        n_sessions = conn.execute(select(func.count()).select_from(schema.sessions)).scalar_one()
        n_runs = conn.execute(select(func.count()).select_from(schema.runs)).scalar_one()

        def active(scope):
            return conn.execute(select(func.count()).select_from(c).where(
                c.c.kind == "participant", c.c.scope == scope, c.c.withdrawn_at.is_(None))).scalar_one()

        fb, rs = active("facilitator_feedback"), active("research")
        withdrawn = conn.execute(select(func.count()).select_from(c).where(c.c.withdrawn_at.is_not(None))).scalar_one()
        attest = conn.execute(select(func.count(func.distinct(c.c.session_name))).where(
            c.c.kind == "attestation", c.c.withdrawn_at.is_(None))).scalar_one()
        destroyed = conn.execute(select(func.count()).select_from(k).where(k.c.event == "destroyed")).scalar_one()
        last = conn.execute(select(pr.c.at, pr.c.counts_json).where(pr.c.kind == "purge").order_by(pr.c.id.desc()).limit(1)).first()
    in_use = len(list(keys_dir().glob("*.key"))) if keys_dir().exists() else 0
    verify = AuditLog(store).verify()
    if last:
        total = sum(json.loads(last.counts_json).values())
        last_text = f"{iso(last.at)} ({total})"
    else:
        last_text = _t("none", lang)
    audit_text = f"{_t('intact' if verify.ok else 'tampered', lang)}, {verify.entries} {_t('entries', lang)}"
    return [
        (_t("st_sessions", lang), f"{n_sessions} / {n_runs}"),
        (_t("st_consents", lang), f"{fb} / {rs}"),
        (_t("st_withdrawn", lang), str(withdrawn)),
        (_t("st_attest", lang), str(attest)),
        (_t("st_keys", lang), f"{in_use} / {destroyed}"),
        (_t("st_purge", lang), last_text),
        (_t("st_audit", lang), audit_text),
        (_t("st_policy", lang), f"{policy.hash[:16]}… ({_source(policy.source, lang)})"),
    ]


def _period(value: timedelta, lang: str) -> str:
    """A retention period in words ("90 hari"), not the policy file's "90d"."""
    text = format_period(value)
    return translate("period.days" if text.endswith("d") else "period.hours", lang, n=text[:-1])


def _source(source: str, lang: str) -> str:
    """Where the policy came from: the built-in defaults, or the policy file's name (never the
    server's path to it)."""
    return _t("policy_defaults", lang) if source == "defaults" else Path(source).name


def _blendshapes(profile: Profile, lang: str) -> str:
    """The bs_* columns every per-second export holds (a reviewer found them nowhere in the DPIA):
    how many, which describe the eyes, and whether the rest are filled under this profile."""
    eyes = len(EYE_BLENDSHAPES)
    key = "cat_blendshapes" if profile.expression_allowed else "cat_blendshapes_no_expression"
    return _t(key, lang).format(n=len(BLENDSHAPE_NAMES), eyes=eyes, rest=len(BLENDSHAPE_NAMES) - eyes)


def build(store, policy: RetentionPolicy, profile: Profile, lang: str) -> tuple[str, list]:
    """The report as (title, sections); each section is (heading, blocks) and a block is
    ("p", text) | ("ul", [text]) | ("table", [header], [[cell]])."""
    if lang not in LANGUAGES:
        raise ConfigError(f"DPIA language must be 'id' or 'en', got {lang!r}")
    features = ", ".join(FEATURE_NAMES)
    categories = [
        _t("subjects", lang),
        _t("cat_video", lang),
        f"{_t('cat_features', lang)}: {features}.",
        _blendshapes(profile, lang),
        (f"{_t('cat_expression', lang)}: {', '.join(translate(f'expression.{x}', lang) for x in EXPRESSION_LABELS)}."
         if profile.expression_allowed
         else _t("cat_no_expression", lang)),
        _t("cat_fatigue", lang),
        _t("cat_smile" if profile.expression_allowed else "cat_no_smile", lang),
        _t("cat_estimates", lang) + ".",
        _t("cat_aggregates", lang) + ".",
        _t("cat_consent", lang) + ".",
        _t("cat_identity", lang),
        _t("cat_name_labels", lang),
    ]
    rows = [[_t("tier_raw_frames", lang), _t("never_stored", lang)]]
    rows += [[_t(f"tier_{tier}", lang), _period(policy.periods[tier], lang)] for tier in TIERS]
    recipients = [_t("rec_facilitator" if profile.individual_views_allowed else "rec_facilitator_class_only", lang),
                  _t("rec_research", lang), _t("rec_officer", lang), _t("rec_none", lang)]
    views = _t("views_allowed" if profile.individual_views_allowed else "views_not_allowed", lang)
    expr = _t("expression_runs" if profile.expression_allowed else "expression_never", lang)
    profile_rows = [
        [_t("profile_row", lang), f"{profile.name}: {profile.title[lang]}"],
        [_t("expression_row", lang), expr],
        [_t("views_row", lang), views],
    ]
    sections = [
        (_t("controller", lang), [("p", _t("controller_text", lang))]),
        (_t("profile", lang), [("table", [_t("item", lang), _t("value", lang)], profile_rows)]),
        (_t("purposes", lang), [("ul", [_t("purpose_feedback", lang), _t("purpose_research", lang)])]),
        (_t("legal_basis", lang), [("p", profile.legal_basis[lang])]),
        (_t("categories", lang), [("ul", categories)]),
        (_t("retention", lang), [("table", [_t("tier", lang), _t("period", lang)], rows), ("p", _t("retention_note", lang))]),
        (_t("recipients", lang), [("ul", recipients)]),
        (_t("safeguards", lang), [("ul", _items("safeguard", lang))]),
        (_t("risks", lang), [("ul", _items("risk", lang))]),
        (_t("state", lang), [("table", [_t("item", lang), _t("value", lang)], [list(x) for x in _state(store, policy, lang)])]),
    ]
    return _t("title", lang), sections


def render_dpia(store, policy: RetentionPolicy, profile: Profile, lang: str = "id", fmt: str = "md", *,
                now: datetime | None = None) -> str:
    """The DPIA / record of processing as Markdown or HTML, in Bahasa Indonesia or English."""
    if fmt not in ("md", "html"):
        raise ConfigError(f"DPIA format must be 'md' or 'html', got {fmt!r}")
    title, sections = build(store, policy, profile, lang)
    stamp = f"{_t('generated', lang)} {iso(now or utcnow())}"
    return _markdown(title, stamp, sections) if fmt == "md" else _html(title, stamp, sections, lang)


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown(title: str, stamp: str, sections: list) -> str:
    out = [f"# {title}", "", f"_{stamp}_", ""]
    for heading, blocks in sections:
        out += [f"## {heading}", ""]
        for block in blocks:
            if block[0] == "p":
                out += [block[1], ""]
            elif block[0] == "ul":
                out += [f"- {item}" for item in block[1]] + [""]
            else:
                _, header, rows = block
                out.append("| " + " | ".join(_md_cell(h) for h in header) + " |")
                out.append("|" + "---|" * len(header))
                out += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
                out.append("")
    return "\n".join(out)


def _html(title: str, stamp: str, sections: list, lang: str) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        f'<html lang="{lang}">',
        '<head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto;line-height:1.5}"
        "table{border-collapse:collapse}td,th{border:1px solid #999;padding:.3rem .6rem;text-align:left}</style>",
        "</head><body>",
        f"<h1>{e(title)}</h1>",
        f"<p><em>{e(stamp)}</em></p>",
    ]
    for heading, blocks in sections:
        out.append(f"<h2>{e(heading)}</h2>")
        for block in blocks:
            if block[0] == "p":
                out.append(f"<p>{e(block[1])}</p>")
            elif block[0] == "ul":
                out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in block[1]) + "</ul>")
            else:
                _, header, rows = block
                out.append("<table><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr></thead><tbody>")
                out += ["<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows]
                out.append("</tbody></table>")
    out.append("</body></html>")
    return "\n".join(out)
