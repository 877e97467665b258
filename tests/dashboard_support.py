"""Shared helpers of the dashboard tests: a small synthetic database, AppTest runs per role, and
readers for what a page shows (texts, tables, chart specifications)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

from streamlit.testing.v1 import AppTest

from dashboard import auth, queries, services

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboard" / "app.py"
PAGES = ROOT / "dashboard" / "views"
PASSWORD = "correct-horse-9"
ROLE_USERS = {"facilitator": "fasil", "researcher": "peneliti", "privacy_officer": "dpo", "admin": "admin"}
TIMEOUT = 60  # two shared cores: generous, the pages themselves take well under a second
TZ = "Asia/Jakarta"  # every dashboard test reads times in one zone, whatever the machine's


def generator():
    spec = importlib.util.spec_from_file_location("gen_dash", ROOT / "benchmarks" / "generate_dashboard_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_db(tmp_path: Path, monkeypatch, name: str = "dash.db", **sizes) -> str:
    """A synthetic database (3 sessions x 8 people x 15 min unless `sizes` say otherwise) with one
    account per role, served to AppTest through ENGAGEMENT_DB."""
    path = tmp_path / name
    options = {"sessions": 3, "participants": 8, "seconds": 900, "estimates": True, "seed": 1, **sizes}
    generator().generate(path, **options)
    url = f"sqlite:///{path}"
    monkeypatch.setenv("ENGAGEMENT_DB", url)
    monkeypatch.setenv("ENGAGEMENT_TIMEZONE", TZ)
    store = queries.open_store(url)
    for role, user in ROLE_USERS.items():
        auth.create_user(store, user, role, PASSWORD)
    store.close()
    return url


def db_path(url: str) -> str:
    return url.removeprefix("sqlite:///")


# The dashboard as the server runs it: every run goes through app.py and its st.navigation. A
# main script with a `pages/` folder beside it would be a pages-directory app to AppTest on every
# run (and to the server until st.navigation is first called: a first request for a page's address
# would run that page without app.py). The page files live in `views/` so that never happens; the
# main script here also sits in a folder of its own, so AppTest stays on the server's path.
ENTRY = f"import runpy\n\nrunpy.run_path({str(APP)!r}, run_name='__main__')\n"


def main_app() -> AppTest:
    return AppTest.from_string(ENTRY, default_timeout=TIMEOUT)


def app(role: str | None = None, lang: str = "id") -> AppTest:
    at = main_app()
    at.session_state["lang"] = lang
    if role:
        at.session_state["user"] = {"name": ROLE_USERS[role], "role": role}
    return at


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(str(PAGES / f"{page}.py"))
    return at.run()


def no_failure(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def audit_entries(url: str) -> list[dict]:
    return services.audit_entries(queries.open_store(url), limit=0)


def audit_actions(url: str) -> list[str]:
    return [e["action"] for e in audit_entries(url)]


def _walk(node, found: list) -> None:
    for child in getattr(node, "children", {}).values():
        found.append(child)
        _walk(child, found)


def elements(at: AppTest) -> list:
    found: list = []
    _walk(at.main, found)
    return found


def charts(at: AppTest) -> int:
    return len(chart_specs(at))


def chart_specs(at: AppTest) -> list[dict]:
    """The Vega-Lite specifications of the page's charts, in page order."""
    return [
        json.loads(e.proto.spec)
        for e in elements(at)
        if getattr(e, "type", "") in ("vega_lite_chart", "arrow_vega_lite_chart")
    ]


def shown_text(at: AppTest) -> list[str]:
    """Everything the page shows as text: tables, messages, labels and picker options."""
    shown = [str(v) for df in at.dataframe for v in df.value.astype(str).to_numpy().ravel()]
    shown += [str(c) for df in at.dataframe for c in df.value.columns]
    for kind in ("markdown", "caption", "info", "warning", "success", "error", "title", "subheader", "code"):
        shown += [str(e.value) for e in getattr(at, kind)]
    shown += [str(m.value) for m in at.metric] + [m.label for m in at.metric]
    shown += [str(o) for box in at.selectbox for o in box.options]
    return shown


def missing_words(at: AppTest) -> list[str]:
    return [s for s in shown_text(at) if re.search(r"\b(None|nan|NaN|NaT)\b", s)]


def block_labels(at: AppTest) -> list[str]:
    return [str(getattr(e, "label", "")) for e in elements(at)]


def session(url: str, name: str) -> tuple[int, int, int]:
    """(picker index, session id, run id) of a session."""
    sessions = queries.list_sessions(queries.open_store(url))
    index = int(sessions.index[sessions["name"] == name][0])
    row = sessions.loc[index]
    return index, int(row["id"]), int(row["run_id"])


def vl_time(value: dict) -> int:
    """A Vega-Lite DateTime object (as charts write domains and ticks) in epoch milliseconds."""
    from datetime import datetime, timezone

    when = datetime(value["year"], value["month"], value["date"], value.get("hours", 0), value.get("minutes", 0),
                    value.get("seconds", 0), tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)
