"""Real-browser checks per role: `engagement dashboard` serves, each role signs in and sees its
main page (no traceback, no request leaves the machine), the researcher completes a download,
the privacy officer withdraws a consent, and a live class raises its alert with the chime.

Drives Debian's system chromium (never a downloaded browser) headless through Playwright.
Skips when /usr/bin/chromium is absent, unless ENGAGEMENT_REQUIRE_BROWSER=1 (CI): then it fails.
With ENGAGEMENT_DOCS_SCREENSHOTS=1 the main page of each role is saved as docs/<role>.png, so
the screenshots in the documentation show what the dashboard really draws.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urlparse

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "browser-test-pass"
DOCS = ROOT / "docs"
IDENTITY, COHORT = "siti@example.id", "angkatan-1"

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _require_browser() -> None:
    if CHROMIUM.exists():
        return
    message = f"system chromium not found at {CHROMIUM} (apt-get install chromium)"
    if os.environ.get("ENGAGEMENT_REQUIRE_BROWSER") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"dashboard exited early with {proc.returncode}: {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"dashboard did not answer at {url} within {timeout} s")


@contextlib.contextmanager
def _dashboard_running(args: list[str], env: dict[str, str]):
    """`engagement dashboard ARGS` on a free port until the block ends; yields its URL. It runs in
    a process group of its own, so streamlit and its children are stopped together."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "engagement.cli.main", "dashboard", *args, "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )
    try:
        _wait_for(f"http://127.0.0.1:{port}/_stcore/health", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, 15)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


@pytest.fixture
def server(tmp_path):
    _require_browser()
    db = tmp_path / "browser.db"
    spec = importlib.util.spec_from_file_location("gen_dash", ROOT / "benchmarks" / "generate_dashboard_data.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.generate(db, sessions=2, participants=8, seconds=900, estimates=True, seed=3)
    # The same data directory as this test process (cohort keys, audit anchor), one time zone.
    env = dict(os.environ, ENGAGEMENT_DB=f"sqlite:///{db}", ENGAGEMENT_TIMEZONE="Asia/Jakarta")
    _consenting_participant(db)
    engagement = [sys.executable, "-m", "engagement.cli.main"]
    for name, role in (("fasil", "facilitator"), ("peneliti", "researcher"), ("dpo", "privacy_officer")):
        subprocess.run(
            [*engagement, "dashboard", "users", "add", name, "--role", role, "--password-stdin"],
            input=PASSWORD + "\n", text=True, env=env, check=True, capture_output=True,
        )
    with _dashboard_running(["--session", "sesi-001"], env) as url:
        yield url, tmp_path


def _consenting_participant(db: Path) -> None:
    """Siti consented (recorded through the privacy API) and is track T1 of sesi-001."""
    from dashboard import queries
    from privacy import consent

    store = queries.open_store(f"sqlite:///{db}")
    pseudonym = consent.grant(store, IDENTITY, cohort=COHORT, notice_version="2026-1", language="id",
                              evidence="form 7", actor="cli:test")[0].participant
    store.close()
    with sqlite3.connect(db) as con:
        con.execute("UPDATE tracks SET participant = ? WHERE run_id = 1 AND label = 'T1'", (pseudonym,))


def _sign_in(page, url: str, name: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    # Indonesian by default: the sign-in form's labels come from id.json.
    page.get_by_label("Nama pengguna").fill(name, timeout=60_000)
    page.get_by_label("Kata sandi").fill(PASSWORD)
    page.get_by_role("button", name="Masuk").click()


def _docs_screenshot(page, name: str) -> None:
    """The role's main page for docs/ (only when asked: the test run then updates the docs)."""
    if os.environ.get("ENGAGEMENT_DOCS_SCREENSHOTS") == "1":
        page.wait_for_timeout(1500)  # let the charts finish their first draw
        page.screenshot(path=str(DOCS / f"{name}.png"), full_page=False)


def _assert_offline(requests: list[str]) -> None:
    assert requests, "the page made no request at all"
    assert all(_is_loopback(u) for u in requests), sorted({u for u in requests if not _is_loopback(u)})


def _is_loopback(url: str) -> bool:
    parsed = urlparse(url)
    if parsed.scheme in ("data", "blob", "about"):
        return True  # never leaves the browser
    return parsed.hostname in ("127.0.0.1", "localhost", "::1")


@contextlib.contextmanager
def _browser_page(viewport: tuple[int, int] = (1400, 1000), **context_options):
    """A fresh headless chromium page of `viewport` (width, height), and the list of every URL it
    and its workers request ("offline always" means none of them leaves the machine)."""
    from playwright.sync_api import sync_playwright

    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, **context_options)
            context.on("request", lambda request: requests.append(request.url))
            yield context.new_page(), requests
        finally:
            browser.close()


def test_facilitator_signs_in_sees_the_timeline_chart_and_nothing_leaves_the_machine(server):
    url, tmp_path = server
    shot = tmp_path / "facilitator.png"
    with _browser_page() as (page, requests):
        page.goto(url, wait_until="domcontentloaded")
        # Indonesian by default: the sign-in form's labels come from id.json.
        page.get_by_label("Nama pengguna").fill("fasil", timeout=60_000)
        page.get_by_label("Kata sandi").fill(PASSWORD)
        # Streamlit's own "Press Enter to submit form" under a field being typed in is English:
        # it must not show on the Indonesian page.
        assert not page.get_by_text("Press Enter").is_visible()
        sign_in = page.get_by_role("button", name="Masuk")
        # Our own theme (dashboard/.streamlit/config.toml), not Streamlit's red.
        assert sign_in.evaluate("b => getComputedStyle(b).backgroundColor") == "rgb(31, 111, 120)"
        sign_in.click()
        page.get_by_role("heading", name="Sesi kelas").first.wait_for(timeout=60_000)
        # --session opened the page on that session (not the newest one).
        picker = page.locator('[data-testid="stSelectbox"]').filter(has_text="Pilih sesi").first
        picker.wait_for(timeout=30_000)
        shown = picker.inner_text() + " ".join(i.input_value() for i in picker.locator("input").all())
        assert "sesi-001" in shown, shown
        # Vega-Embed renders into a canvas (or svg): wait until the timeline has drawn.
        chart = page.locator(".vega-embed canvas, .vega-embed svg").first
        try:
            chart.wait_for(state="visible", timeout=60_000)
        except Exception:
            page.screenshot(path=str(shot), full_page=True)
            _keep(shot)
            (tmp_path / "page.html").write_text(page.content())
            _keep(tmp_path / "page.html")
            raise
        box = chart.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 100
        assert page.locator(".vega-embed").count() >= 4  # on screen, cameras off, estimate, states
        # The answer at a glance, first on the page: when attention was lowest, and what to try.
        assert page.get_by_text("Perhatian paling rendah pada").count() == 1
        _docs_screenshot(page, "facilitator")
        page.screenshot(path=str(shot), full_page=True)
        assert page.get_by_text("Traceback").count() == 0
        assert page.locator('[data-testid="stSkillsNudge"]').count() == 0  # no promotional pop-up
        page.reload(wait_until="networkidle")  # a second page load, as a returning user makes
    assert shot.stat().st_size > 10_000
    _keep(shot)
    _assert_offline(requests)


# Every piece of visible text as the boxes of its lines (a Range over each text node, so a label
# is its words, not the block around it), tagged with the node so lines of one node never count
# as overlapping each other. Text inside a chart's canvas is not in the DOM: the chart spec test
# (test_dashboard_facilitator) covers the agenda labels there.
TEXT_BOXES_JS = """
() => {
  const out = [];
  const walker = document.createTreeWalker(document.querySelector('[data-testid="stMain"]') || document.body,
                                           NodeFilter.SHOW_TEXT);
  let node, id = 0;
  while ((node = walker.nextNode())) {
    id += 1;
    if (!node.textContent.trim()) continue;
    const el = node.parentElement;
    const style = getComputedStyle(el);
    if (style.visibility === 'hidden' || parseFloat(style.opacity) === 0) continue;
    if (el.closest('[aria-hidden="true"], [data-testid="stTooltipHoverTarget"] + *, .stTooltipIcon')) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    for (const r of range.getClientRects()) {
      if (r.width < 1 || r.height < 1) continue;
      out.push({id, text: node.textContent.trim().slice(0, 40), x: r.left, y: r.top + window.scrollY,
                w: r.width, h: r.height});
    }
  }
  return out;
}
"""


def _overlaps(boxes: list[dict], slack: float = 2.0) -> list[tuple[str, str]]:
    """Pairs of text boxes of different nodes that cover each other by more than `slack` px."""
    found = []
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            if a["id"] == b["id"]:
                continue
            dx = min(a["x"] + a["w"], b["x"] + b["w"]) - max(a["x"], b["x"])
            dy = min(a["y"] + a["h"], b["y"] + b["h"]) - max(a["y"], b["y"])
            if dx > slack and dy > slack:
                found.append((a["text"], b["text"]))
    return found


@pytest.mark.parametrize("viewport", [(390, 844), (1280, 720)], ids=["phone", "laptop"])
def test_facilitator_answer_is_within_two_screens_and_no_text_overlaps(server, viewport):
    """On a phone and a laptop the summary sentence, the headline figures and the main chart sit
    within the first two screens (the chart was three screens down on a phone), and no two pieces
    of text cover each other."""
    url, tmp_path = server
    with _browser_page(viewport=viewport) as (page, _):
        _sign_in(page, url, "fasil")
        sentence = page.get_by_text("Perhatian paling rendah pada").first
        sentence.wait_for(timeout=60_000)
        chart = page.locator(".vega-embed").first
        chart.locator("canvas, svg").first.wait_for(state="visible", timeout=60_000)
        figures = page.locator('[data-testid="stMetric"]')
        figures.nth(3).wait_for(timeout=30_000)
        page.wait_for_timeout(1000)  # the last charts settle their size
        shot = tmp_path / f"facilitator-{viewport[0]}x{viewport[1]}.png"
        page.screenshot(path=str(shot), full_page=True)
        _keep(shot)
        screens = 2 * viewport[1]
        scroll = page.evaluate("() => window.scrollY")
        for name, element in [("sentence", sentence), *[(f"figure {i + 1}", figures.nth(i)) for i in range(4)],
                              ("main chart", chart)]:
            box = element.bounding_box()
            assert box is not None, name
            assert box["y"] + scroll + box["height"] <= screens, (name, box, screens)
        top = page.evaluate(TEXT_BOXES_JS)
        assert top, "no text found on the page"
        clashes = _overlaps([b for b in top if b["y"] < screens])
        assert not clashes, clashes[:10]


def test_researcher_downloads_a_zip_and_its_files_open(server):
    # Streamlit 1.60 and 1.61 under starlette >= 1.5 answered /media/*.zip with HTTP 500 (the browser
    # cancelled the download) while the export was already in the audit log.
    url, tmp_path = server
    with _browser_page(accept_downloads=True) as (page, requests):
        _sign_in(page, url, "peneliti")
        button = page.get_by_role("button", name="Unduh 2 sesi (ZIP)")
        button.wait_for(timeout=60_000)
        page.locator(".vega-embed canvas, .vega-embed svg").first.wait_for(state="visible", timeout=60_000)
        assert page.get_by_text("Traceback").count() == 0
        _docs_screenshot(page, "researcher")
        with page.expect_download(timeout=120_000) as info:
            button.click()
        download = info.value
        assert download.failure() is None
        assert download.suggested_filename == "engagement-export-csv.zip"
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
    _assert_offline(requests)
    with zipfile.ZipFile(saved) as bundle:
        names = set(bundle.namelist())
        assert {"sesi-001.csv", "sesi-001.schema.json", "sesi-001.manifest.json", "sesi-002.csv"} <= names
        schema = json.loads(bundle.read("sesi-001.schema.json"))
        manifest = json.loads(bundle.read("sesi-001.manifest.json"))
        table = pd.read_csv(io.BytesIO(bundle.read("sesi-001.csv")))
    assert manifest and schema
    assert len(table.columns) >= 3
    with sqlite3.connect(tmp_path / "browser.db") as con:
        exports = con.execute("SELECT count(*) FROM audit_log WHERE action = 'export'").fetchone()[0]
    assert exports == 1


def test_privacy_officer_withdraws_a_consent_from_the_form(server):
    url, tmp_path = server
    with _browser_page() as (page, requests):
        _sign_in(page, url, "dpo")
        page.get_by_role("heading", name="Catatan persetujuan").first.wait_for(timeout=60_000)
        assert page.get_by_text("Traceback").count() == 0
        _docs_screenshot(page, "privacy-officer")
        page.get_by_role("tab", name="Tarik persetujuan").click()
        panel = page.locator('[role="tabpanel"]:visible')
        panel.get_by_role("textbox", name="Peserta (identitas atau pseudonim)").fill(IDENTITY)
        panel.get_by_role("textbox", name="Angkatan (wajib jika memakai identitas)").fill(COHORT)
        panel.get_by_role("textbox", name="Alasan (dicatat dalam log audit)").fill("asked by e-mail")
        panel.get_by_text("Saya memahami bahwa data terkait akan dihapus permanen").click()
        panel.get_by_role("button", name="Tarik persetujuan").click()
        page.get_by_text("Persetujuan ditarik (1 catatan)").wait_for(timeout=60_000)
        assert page.get_by_text("Traceback").count() == 0
    _assert_offline(requests)
    with sqlite3.connect(tmp_path / "browser.db") as con:
        actor, details = con.execute(
            "SELECT actor, details FROM audit_log WHERE action = 'consent_withdrawn' ORDER BY seq DESC"
        ).fetchone()
        left = con.execute("SELECT count(*) FROM tracks WHERE participant LIKE 'p-%'").fetchone()[0]
    assert actor == "dashboard:dpo" and json.loads(details)["reason"] == "asked by e-mail"
    assert left == 0  # her data went with the last consent


def test_a_live_drop_shows_its_banner_and_plays_the_chime(server):
    url, tmp_path = server
    db = tmp_path / "browser.db"

    def write(*statements: str) -> None:
        with sqlite3.connect(db) as con:
            for statement in statements:
                con.execute(statement)

    # After the server's start-up check (it would reap a run nobody writes): sesi-002 goes live,
    # steady so far, its heartbeat fresh.
    write(
        "UPDATE runs SET status = 'running', heartbeat_at = strftime('%Y-%m-%d %H:%M:%f', 'now') WHERE id = 2",
        "DELETE FROM alerts WHERE run_id = 2",
        "UPDATE class_timeline SET on_screen_share = 0.8, n_absent = 0, n_judged = 8, score = 0.6, suppressed = 0"
        " WHERE run_id = 2",
    )
    with _browser_page() as (page, requests):
        _sign_in(page, f"{url}/?session=sesi-002", "fasil")  # the server opens on sesi-001 otherwise
        page.get_by_text("Analisis langsung sedang berjalan").wait_for(timeout=60_000)
        page.get_by_text("Bunyikan suara saat ada peringatan").click()
        # Now the class looks away for the last 200 seconds: the next refresh (every 5 s)
        # finds the drop, shows its banner and plays the chime made in the page.
        write("UPDATE class_timeline SET on_screen_share = 0.3 WHERE run_id = 2 AND second >= 700")
        page.get_by_text("Porsi yang melihat layar turun sejak").first.wait_for(timeout=60_000)
        chime = page.locator('audio[src^="data:audio/wav;base64,"]')
        chime.first.wait_for(state="attached", timeout=30_000)
        # The "now" panel reads from across the room: its share at least 60 px high (a normal
        # figure is about 36 px), and a moment can be marked.
        share = page.locator(".st-key-live_now [data-testid='stMetricValue']").first
        share.wait_for(timeout=30_000)
        assert float(share.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 60
        assert page.get_by_role("button", name="Tandai sekarang").count() == 1
        assert page.get_by_text("Traceback").count() == 0
    _assert_offline(requests)


def _keep(path: Path) -> None:
    """Copy an artefact (screenshot, page) to ENGAGEMENT_SCREENSHOT_DIR when set (CI uploads it)."""
    if os.environ.get("ENGAGEMENT_SCREENSHOT_DIR"):
        target = Path(os.environ["ENGAGEMENT_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        (target / path.name).write_bytes(path.read_bytes())
