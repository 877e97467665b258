"""Dashboard responsiveness on a large database: query-layer timings and full page runs.

Make the data first (100 sessions x 40 participants x 2 h by default):

    python benchmarks/generate_dashboard_data.py --out dash.db
    python benchmarks/dashboard_load.py --db dash.db [--repeat 3] [--json out.json]

Every page is run through streamlit.testing's AppTest as a signed-in admin (who may open all
pages), with Streamlit's data cache cleared before each run so the numbers are uncached. The
budget is 2 s per page; the exit code is 1 when a page's median is over it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from datetime import timezone
from pathlib import Path

BUDGET_S = 2.0
ROOT = Path(__file__).resolve().parent.parent
PAGES = ("facilitator", "researcher", "privacy_consent", "privacy_retention", "privacy_audit", "privacy_requests", "users")


def _time(fn, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def query_timings(url: str, repeat: int) -> dict[str, float]:
    from dashboard import queries as q

    t0 = time.perf_counter()
    store = q.open_store(url)  # also creates the dashboard's indexes if missing
    out = {"open_store+indexes": time.perf_counter() - t0}
    sessions = q.list_sessions(store)
    newest = sessions.iloc[0]
    run_id, session_id = int(newest["run_id"]), int(newest["id"])
    info = q.run_info(store, run_id)
    bucket = q.bucket_for(info["length"])
    f_all = q.Filters()
    trend_all = q.trends(store, f_all)
    cases = {
        "list_sessions": lambda: q.list_sessions(store),
        "run_info": lambda: q.run_info(store, run_id),
        f"class_timeline(bucket={bucket}s)": lambda: q.class_timeline(store, run_id, bucket),
        f"score_band(bucket={bucket}s)": lambda: q.score_band(store, run_id, bucket),
        "class_timeline(last 10 min, 1s)": lambda: q.class_timeline(store, run_id, 1, since=max(0, info["length"] - 600)),
        "timeline_points (live alerts)": lambda: q.timeline_points(store, run_id),
        "session_stats": lambda: q.session_stats(store, run_id),
        "attention_distribution": lambda: q.attention_distribution(store, run_id),
        "alerts": lambda: q.alerts(store, run_id),
        "agenda": lambda: q.agenda(store, session_id),
        "agenda_scores": lambda: q.agenda_scores(store, session_id, run_id),
        "individual_lanes(10s)": lambda: q.individual_lanes(store, run_id, q.bucket_for(info["length"], 600)),
        "filter_options": lambda: q.filter_options(store),
        "trends(all)": lambda: q.trends(store, f_all),
        "trends(cohort)": lambda: q.trends(store, q.Filters(cohorts=(str(newest["cohort"]),))),
        "person_means(all, on screen)": lambda: q.person_means(store, f_all, trend_all, "on_screen_share"),
        "person_means(all, score)": lambda: q.person_means(store, f_all, trend_all, "score"),
        "agenda_sessions(all)": lambda: q.agenda_sessions(store, f_all),
        "score_histogram(all)": lambda: q.score_histogram(store, f_all),
        "audit_log(1000)": lambda: q.audit_log(store, q.AuditFilter(), timezone.utc),
    }
    titles = q.filter_options(store)["titles"]
    if titles:
        cases["trends(agenda item)"] = lambda: q.trends(store, q.Filters(agenda_titles=(titles[0],)))
    for name, fn in cases.items():
        out[name], _ = _time(fn, repeat)
    store.close()
    return out


def page_timings(url: str, repeat: int) -> dict[str, float]:
    import os

    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["ENGAGEMENT_DB"] = url
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=120)
    at.session_state["user"] = {"name": "bench", "role": "admin"}
    at.run()  # first run: imports and opening the store, not counted
    out: dict[str, float] = {}
    for page in PAGES:
        at.switch_page(f"views/{page}.py")
        times = []
        for _ in range(repeat):
            st.cache_data.clear()
            t0 = time.perf_counter()
            at.run()
            times.append(time.perf_counter() - t0)
            if at.exception:
                raise SystemExit(f"page {page} raised: {at.exception[0].value}")
        out[page] = statistics.median(times)
    # The researcher page on the engagement score (its intervals read the per-participant estimates).
    at.switch_page("views/researcher.py")
    at.run()
    at.radio(key="researcher_measure").set_value("score")
    st.cache_data.clear()
    t0 = time.perf_counter()
    at.run()
    out["researcher(score)"] = time.perf_counter() - t0
    # The facilitator page with the individual lanes open (an audited view, 40 tracks), on a
    # session whose compliance profile allows individual views.
    from dashboard import queries, services

    sessions = queries.list_sessions(queries.open_store(url))
    allowed = [i for i, p in zip(sessions.index, sessions["profile"]) if services.individual_views_allowed(p)]
    at.switch_page("views/facilitator.py")
    at.run()
    if allowed:
        at.selectbox(key="facilitator_session").set_value(allowed[0])
        at.run()
    if at.toggle:
        at.toggle[0].set_value(True)
        t0 = time.perf_counter()
        at.run()
        out["facilitator+lanes"] = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="dashboard page-load benchmark")
    ap.add_argument("--db", type=Path, required=True, help="SQLite file made by generate_dashboard_data.py")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path, help="write the timings here")
    args = ap.parse_args(argv)
    if not args.db.exists():
        print(f"error: {args.db} does not exist; run benchmarks/generate_dashboard_data.py first", file=sys.stderr)
        return 2
    url = f"sqlite:///{args.db.resolve()}"
    import sqlite3

    with sqlite3.connect(args.db) as con:
        rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in ("sessions", "class_timeline", "engagement_estimates", "window_features")}
    print("rows:", ", ".join(f"{k}={v:,}" for k, v in rows.items()))
    queries_s = query_timings(url, args.repeat)
    print("\nquery layer (median of %d, seconds)" % args.repeat)
    for name, secs in queries_s.items():
        print(f"  {name:<34} {secs:7.3f}")
    pages_s = page_timings(url, args.repeat)
    print("\npage runs through AppTest (uncached, median of %d, seconds; budget %.1f s)" % (args.repeat, BUDGET_S))
    over = []
    for name, secs in pages_s.items():
        flag = "ok" if secs <= BUDGET_S else "OVER"
        if secs > BUDGET_S:
            over.append(name)
        print(f"  {name:<34} {secs:7.3f}  {flag}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "queries_s": queries_s, "pages_s": pages_s}, indent=2))
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
