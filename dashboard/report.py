"""The session summary a facilitator downloads: one self-contained HTML file.

No scripts and no links to the internet (institute networks are often offline and mail filters
strip scripts): the timeline is an inline SVG drawn here, the rest is tables.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone

import pandas as pd

from dashboard.i18n import fmt_seconds, translate


def _svg_timeline(tl: pd.DataFrame, agenda: pd.DataFrame, alerts: pd.DataFrame, length_s: int) -> str:
    width, height, pad = 900, 220, 30
    length = max(length_s, 1)

    def x(sec: float) -> float:
        return pad + (width - 2 * pad) * float(sec) / length

    def y(score: float) -> float:
        return height - pad - (height - 2 * pad) * float(score)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" role="img">']
    parts.append(f'<rect x="{pad}" y="{pad}" width="{width - 2 * pad}" height="{height - 2 * pad}" fill="#fafafa" stroke="#ddd"/>')
    for i, row in enumerate(agenda.itertuples()):
        end = row.end_second if row.end_second == row.end_second and row.end_second is not None else length
        fill = "#e8eef7" if i % 2 == 0 else "#f7f3e8"
        parts.append(
            f'<rect x="{x(row.start_second):.1f}" y="{pad}" width="{max(x(end) - x(row.start_second), 0):.1f}" '
            f'height="{height - 2 * pad}" fill="{fill}"/>'
        )
        parts.append(
            f'<text x="{x(row.start_second) + 3:.1f}" y="{pad + 12}" font-size="10" fill="#4a5568">{html.escape(str(row.title))}</text>'
        )
    for row in alerts.itertuples():
        parts.append(
            f'<rect x="{x(row.start_second):.1f}" y="{pad}" width="{max(x(row.end_second) - x(row.start_second), 1):.1f}" '
            f'height="{height - 2 * pad}" fill="#d73027" fill-opacity="0.2"/>'
        )
    pts = [f"{x(r.t):.1f},{y(r.score):.1f}" for r in tl.itertuples() if r.score == r.score and r.score is not None]
    if pts:
        parts.append(f'<polyline fill="none" stroke="#2b6cb0" stroke-width="1.5" points="{" ".join(pts)}"/>')
    for frac in (0, 0.5, 1):
        parts.append(f'<text x="4" y="{y(frac) + 4:.1f}" font-size="10" fill="#666">{frac:g}</text>')
    parts.append(f'<text x="{pad}" y="{height - 8}" font-size="10" fill="#666">0:00</text>')
    parts.append(f'<text x="{width - pad - 40}" y="{height - 8}" font-size="10" fill="#666">{fmt_seconds(length)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def session_summary_html(
    lang: str,
    session: dict,
    stats: dict,
    tl: pd.DataFrame,
    agenda_scores: pd.DataFrame,
    agenda: pd.DataFrame,
    alerts: pd.DataFrame,
    dist: pd.DataFrame,
    length_s: int,
) -> str:
    """A printable summary of one session (class level only: no individual data)."""

    def tr(key: str, **kw: object) -> str:
        return html.escape(translate(key, lang, **kw))

    def pct(v) -> str:
        return "–" if v is None or v != v else f"{v:.0%}"

    def num(v) -> str:
        return "–" if v is None or v != v else f"{v:.2f}"

    rows_agenda = "".join(
        f"<tr><td>{fmt_seconds(r.start_second)}</td><td>{html.escape(str(r.title))}</td>"
        f"<td>{num(r.score)}</td><td>{pct(r.present_share)}</td></tr>"
        for r in agenda_scores.itertuples()
    )
    rows_alerts = "".join(
        f"<tr><td>{fmt_seconds(r.start_second)}</td><td>{fmt_seconds(r.end_second)}</td>"
        f"<td>{fmt_seconds(r.end_second - r.start_second + 1)}</td><td>{num(r.magnitude)}</td></tr>"
        for r in alerts.itertuples()
    )
    rows_dist = "".join(
        f"<tr><td>{tr('level.' + r.category)}</td><td>{pct(r.share)}</td></tr>" for r in dist.itertuples()
    )
    generated = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<title>{tr('report.title', session=session.get('name', ''))}</title>
<style>
body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#1a202c}}
table{{border-collapse:collapse;margin:.5em 0 1.5em}} td,th{{border:1px solid #ddd;padding:4px 10px;text-align:left}}
.kpi{{display:inline-block;margin-right:2em}} .kpi b{{font-size:1.6em;display:block}}
small{{color:#666}}
</style></head><body>
<h1>{tr('report.title', session=session.get('name', ''))}</h1>
<p><small>{tr('report.meta', cohort=session.get('cohort') or '–', date=str(session.get('started_at') or '')[:16], generated=generated)}</small></p>
<div>
<span class="kpi"><b>{num(stats.get('mean_score'))}</b>{tr('kpi.mean_score')}</span>
<span class="kpi"><b>{pct(stats.get('present_share'))}</b>{tr('kpi.present_share')}</span>
<span class="kpi"><b>{stats.get('alerts', 0)}</b>{tr('kpi.alerts')}</span>
<span class="kpi"><b>{fmt_seconds(length_s)}</b>{tr('kpi.length')}</span>
</div>
<h2>{tr('facilitator.timeline')}</h2>
{_svg_timeline(tl, agenda, alerts, length_s)}
<p><small>{tr('report.timeline_note')}</small></p>
<h2>{tr('facilitator.agenda_scores')}</h2>
<table><tr><th>{tr('agenda.start')}</th><th>{tr('agenda.title')}</th><th>{tr('kpi.mean_score')}</th><th>{tr('kpi.present_share')}</th></tr>{rows_agenda}</table>
<h2>{tr('facilitator.alerts')}</h2>
<table><tr><th>{tr('alerts.from')}</th><th>{tr('alerts.to')}</th><th>{tr('alerts.duration')}</th><th>{tr('alerts.magnitude')}</th></tr>{rows_alerts}</table>
<h2>{tr('facilitator.distribution')}</h2>
<table>{rows_dist}</table>
<p><small>{tr('report.privacy_note')}</small></p>
</body></html>
"""
