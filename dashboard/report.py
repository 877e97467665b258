"""The session summary a facilitator downloads: one self-contained HTML file.

No scripts and no links to the internet (institute networks are often offline and mail filters
strip scripts): the timeline is an inline SVG drawn here, the rest is tables.
"""

from __future__ import annotations

import html
from datetime import datetime

import pandas as pd

from dashboard.charts import AGENDA_BANDS, ALERT, agenda_key, agenda_numbers
from dashboard.clock import Clock, local_text
from engagement.core.i18n import fmt_seconds, translate


def _svg_timeline(tl: pd.DataFrame, agenda: pd.DataFrame, alerts: pd.DataFrame, clock: Clock, field: str,
                  alert_legend: str) -> str:  # fmt: skip
    """The page's timeline drawn the page's way: agenda items as numbered grey bands (their
    titles listed under it), alerts the only red, dashed, with a legend."""
    width, height, pad = 900, 220, 30
    length = max(clock.length_s, 1)

    def x(sec: float) -> float:
        return pad + (width - 2 * pad) * float(sec) / length

    def y(value: float) -> float:
        return height - pad - (height - 2 * pad) * float(value)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img">']
    parts.append(f'<rect x="{pad}" y="{pad}" width="{width - 2 * pad}" height="{height - 2 * pad}" fill="#fafafa" stroke="#ddd"/>')
    for i, (row, number) in enumerate(zip(agenda.itertuples(), agenda_numbers(agenda))):
        end = row.end_second if row.end_second == row.end_second and row.end_second is not None else length
        parts.append(
            f'<rect x="{x(row.start_second):.1f}" y="{pad}" width="{max(x(end) - x(row.start_second), 0):.1f}" '
            f'height="{height - 2 * pad}" fill="{AGENDA_BANDS[i % 2]}"/>'
        )
        parts.append(
            f'<text x="{x(row.start_second) + 3:.1f}" y="{pad + 12}" font-size="11" font-weight="bold" '
            f'fill="#3b4a50">{number}</text>'
        )
    for row in alerts.itertuples():
        parts.append(
            f'<rect x="{x(row.start_second):.1f}" y="{pad}" width="{max(x(row.end_second) - x(row.start_second), 1):.1f}" '
            f'height="{height - 2 * pad}" fill="{ALERT}" fill-opacity="0.1" stroke="{ALERT}" stroke-dasharray="4 3"/>'
        )
    if not alerts.empty:
        # Above the plot, right: the axis labels take the bottom edge.
        parts.append(f'<rect x="{width - pad - 90}" y="{pad - 16}" width="10" height="10" fill="{ALERT}"/>')
        parts.append(f'<text x="{width - pad - 76}" y="{pad - 7}" font-size="10" fill="#666">{html.escape(alert_legend)}</text>')
    pts = [f"{x(t):.1f},{y(v):.1f}" for t, v in zip(tl["t"], tl[field]) if v == v and v is not None]
    if pts:
        colour = "#1f6f78" if field == "on_screen_share" else "#4c6a92"
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(pts)}"/>')
    ticks = (("0%", 0), ("50%", 0.5), ("100%", 1)) if field == "on_screen_share" else (("0", 0), ("0.5", 0.5), ("1", 1))
    for text, frac in ticks:
        parts.append(f'<text x="2" y="{y(frac) + 4:.1f}" font-size="10" fill="#666">{text}</text>')
    for frac in (0, 0.25, 0.5, 0.75, 1):
        sec = frac * clock.length_s
        anchor = "start" if frac == 0 else ("end" if frac == 1 else "middle")
        parts.append(f'<text x="{x(sec):.1f}" y="{height - 8}" font-size="10" fill="#666" text-anchor="{anchor}">{clock.label(sec)}</text>')
    parts.append("</svg>")
    return "".join(parts)


_REPORT_CSS = """
body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#1d2a2e}
table{border-collapse:collapse;margin:.5em 0 1.5em} td,th{border:1px solid #ddd;padding:4px 10px;text-align:left}
.kpi{display:inline-block;margin-right:2em} .kpi b{font-size:1.6em;display:block}
.lead{background:#eef2f1;padding:.8em 1em;border-left:4px solid #1f6f78}
small{color:#666}
"""


def _pct(v) -> str:
    return "–" if v is None or v != v else f"{v:.0%}"


def _num(v) -> str:
    return "–" if v is None or v != v else f"{v:.2f}"


def session_summary_html(
    lang: str,
    session: dict,
    stats: dict,
    tl: pd.DataFrame,
    agenda_scores: pd.DataFrame,
    agenda: pd.DataFrame,
    alerts: pd.DataFrame,
    clock: Clock,
    headline: str,
    field: str,
) -> str:
    """A printable summary of one session (class level only: no individual data)."""

    def tr(key: str, **kw: object) -> str:
        return html.escape(translate(key, lang, **kw))

    pct, num = _pct, _num

    agenda_line = f"<p><small>{tr('facilitator.agenda_key', items=agenda_key(agenda))}</small></p>" if not agenda.empty else ""
    ranked = agenda_scores.sort_values(field, ascending=False, na_position="last")
    rows_agenda = "".join(
        f"<tr><td>{clock.label(r.start_second)}</td><td>{html.escape(str(r.title))}</td>"
        f"<td>{pct(r.on_screen_share)}</td><td>{pct(r.off_share)}</td><td>{num(r.score)}</td></tr>"
        for r in ranked.itertuples()
    )
    rows_alerts = "".join(
        f"<tr><td>{tr('alert.' + r.kind)}</td><td>{clock.label(r.start_second)}</td><td>{clock.label(r.end_second)}</td>"
        f"<td>{fmt_seconds(r.end_second - r.start_second + 1)}</td></tr>"
        for r in alerts.itertuples()
    )
    generated = datetime.now(clock.tz).strftime("%Y-%m-%d %H:%M")
    started = local_text(session.get("started_at"), clock.tz) or "–"
    timeline_title = "facilitator.timeline_on_screen" if field == "on_screen_share" else "facilitator.timeline"
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<title>{tr('report.title', session=session.get('name', ''))}</title>
<style>{_REPORT_CSS}</style></head><body>
<h1>{tr('report.title', session=session.get('name', ''))}</h1>
<p><small>{tr('report.meta', cohort=session.get('cohort') or '–', date=started, generated=generated)}</small></p>
<p class="lead">{html.escape(headline)}</p>
<div>
<span class="kpi"><b>{pct(stats.get('on_screen_share'))}</b>{tr('kpi.on_screen')}</span>
<span class="kpi"><b>{pct(stats.get('off_share'))}</b>{tr('kpi.cameras_off')}</span>
<span class="kpi"><b>{len(alerts)}</b>{tr('kpi.alerts')}</span>
<span class="kpi"><b>{fmt_seconds(clock.length_s)}</b>{tr('kpi.length')}</span>
</div>
<p><small>{tr('facilitator.researcher_measures')}: {tr('kpi.mean_score')} {num(stats.get('mean_score'))}.
{tr('estimate.measured_error')}</small></p>
<h2>{tr(timeline_title)}</h2>
{_svg_timeline(tl, agenda, alerts, clock, field, translate("chart.alert_legend", lang))}
{agenda_line}
<p><small>{tr('report.timeline_note')}</small></p>
<h2>{tr('facilitator.agenda_scores')}</h2>
<table><tr><th>{tr('agenda.start')}</th><th>{tr('agenda.title')}</th><th>{tr('kpi.on_screen')}</th><th>{tr('kpi.cameras_off')}</th><th>{tr('kpi.mean_score')}</th></tr>{rows_agenda}</table>
<h2>{tr('facilitator.alerts')}</h2>
<table><tr><th>{tr('alerts.kind')}</th><th>{tr('alerts.from')}</th><th>{tr('alerts.to')}</th><th>{tr('alerts.duration')}</th></tr>{rows_alerts}</table>
<p><small>{tr('report.privacy_note')}</small></p>
</body></html>
"""
