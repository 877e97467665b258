"""The README's run command's two steps in a real browser: `engagement analyze` (the demo class)
then `engagement dashboard --demo`; signed in as demo/demo, the first screen shows the summary
naming the drop, its agenda item and a suggestion, cameras off, an alert and the agenda ranked,
and nothing leaves the machine. With ENGAGEMENT_DOCS_SCREENSHOTS=1 it is saved as docs/demo.png
(the README's screenshot)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engagement.app import demo
from engagement.core.i18n import translate

from test_dashboard_browser import _assert_offline, _browser_page, _dashboard_running, _docs_screenshot, _require_browser

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ENGAGEMENT = [sys.executable, "-m", "engagement.cli.main"]


@pytest.fixture
def demo_server(tmp_path):
    _require_browser()
    env = dict(os.environ, HOME=str(tmp_path / "home"), ENGAGEMENT_DATA_DIR=str(tmp_path / "data"),
               ENGAGEMENT_TIMEZONE="Asia/Jakarta")
    for name in ("ENGAGEMENT_DB", "DISPLAY", "WAYLAND_DISPLAY"):
        env.pop(name, None)
    subprocess.run([*ENGAGEMENT, "analyze", "--no-progress"], env=env, check=True, capture_output=True, timeout=400)
    with _dashboard_running(["--demo"], env) as url:
        yield url


def test_the_demos_first_screen_shows_the_drop_its_item_a_suggestion_cameras_off_and_an_alert(demo_server):
    drop_title = demo.DEMO_AGENDA[demo.DROP_ITEM][1]
    with _browser_page() as (page, requests):
        page.goto(demo_server, wait_until="domcontentloaded")
        page.get_by_label("Nama pengguna").fill("demo", timeout=60_000)
        page.get_by_label("Kata sandi").fill("demo")
        page.get_by_role("button", name="Masuk").click()
        page.get_by_text("Perhatian paling rendah pada").wait_for(timeout=90_000)
        sentence = page.get_by_text("Perhatian paling rendah pada").inner_text()
        assert drop_title in sentence
        assert any(translate(f"summary.suggest.{s}", "id") in sentence for s in ("break", "discussion", "quiz"))
        # Streamlit draws the page top down: the sentence can be there before the figures below it.
        for key in ("kpi.cameras_off", "kpi.alerts"):
            page.locator('[data-testid="stMetric"]', has_text=translate(key, "id")).first.wait_for(timeout=60_000)
        # Tables are drawn on a canvas: the figures and headings are what the page's text holds.
        metrics = {m.split("\n")[0].strip(): m.split("\n")[-1].strip()
                   for m in page.locator('[data-testid="stMetric"]').all_inner_texts()}
        assert metrics[translate("kpi.cameras_off", "id")] not in ("0%", "–"), metrics
        assert int(metrics[translate("kpi.alerts", "id")]) >= 1, metrics
        # Waited for, not read once: the headings under the charts come last, and one run read the
        # page while the fatigue lane above them was still being drawn.
        for heading in ("facilitator.alerts", "facilitator.agenda_scores"):
            page.get_by_role("heading", name=translate(heading, "id")).first.wait_for(timeout=60_000)
        _docs_screenshot(page, "demo")
    _assert_offline(requests)
