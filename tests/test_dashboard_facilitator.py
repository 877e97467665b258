"""Facilitator page: the answer at a glance (summary sentence, on-screen share first), time axes
in clock time or m:ss, the ranked agenda, attention lanes, k on every class figure, and alerts
during a live class (toast, banner, chime, last ten minutes)."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from dashboard_support import (
    app,
    audit_entries,
    chart_specs,
    db_path,
    elements,
    make_db,
    missing_words,
    no_failure,
    open_page,
    session,
    vl_time,
)

from dashboard import alerting, charts, queries, summary
from dashboard.clock import Clock, zone
from engagement.core.i18n import translate
from engagement.temporal.outputs import ClassPoint

JAKARTA = zone("Asia/Jakarta")


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    return make_db(tmp_path, monkeypatch)


def _facilitator(db_url: str, name: str):
    at = open_page(app("facilitator").run(), "facilitator")
    index, _, _ = session(db_url, name)
    at.selectbox(key="facilitator_session").set_value(index).run()
    no_failure(at)
    return at


def _x_axis(spec: dict) -> dict:
    layers = spec.get("layer", [spec])
    return layers[-1]["encoding"]["x"]


# -- clock and summary (units) --------------------------------------------------------------------


def test_clock_shows_local_wall_time_when_the_start_is_known_else_elapsed_m_ss():
    start = datetime(2025, 1, 6, 3, 0, tzinfo=timezone.utc)  # 10:00 in Jakarta (UTC+7)
    clock = Clock.for_session(start, 7200, JAKARTA)
    assert clock.label(0) == "10:00" and clock.label(65 * 60 + 30) == "11:05"
    assert clock.axis_format() == "%H:%M"
    wall = clock.axis_values(pd.Series([0, 90]))
    assert [v.strftime("%H:%M:%S") for v in wall] == ["10:00:00", "10:01:30"]  # local wall clock, labelled UTC
    naive = Clock.for_session(pd.Timestamp("2025-01-06 03:00:00"), 300, JAKARTA)  # the store's naive UTC
    assert naive.label(30) == "10:00:30"  # short sessions keep the seconds
    elapsed = Clock.for_session(None, 900, JAKARTA)
    assert elapsed.label(0) == "0:00" and elapsed.label(95) == "1:35" and elapsed.axis_format() == "%-M:%S"
    assert Clock.for_session(None, 7200, JAKARTA).axis_format() == "%-H:%M:%S"
    assert elapsed.span(300, 389) == "5:00–6:29"


def _tl(values: dict[str, list[float | None]], bucket: int = 60) -> pd.DataFrame:
    n = len(next(iter(values.values())))
    return pd.DataFrame({"t": [i * bucket for i in range(n)], **values}).astype({"t": int})


def test_lowest_span_is_the_lowest_window_and_ignores_hidden_seconds():
    share = [0.8] * 20 + [0.3, 0.25, 0.3] + [0.8] * 17
    share[35] = None  # hidden by k: not a low
    tl = _tl({"on_screen_share": share, "off_share": [0.05] * 40, "score": [0.6] * 40})
    span = summary.lowest_span(tl, 60, 2400, "on_screen_share")
    assert span.start <= 21 * 60 <= span.end  # the dip
    assert span.end - span.start + 1 == summary.window_for(2400)
    assert span.on_screen_share == pytest.approx((0.3 + 0.25 + 0.3 + 0.8) / 4)
    assert summary.lowest_span(_tl({"on_screen_share": [None] * 5}), 60, 300, "on_screen_share") is None


@pytest.mark.parametrize(
    ("start", "off", "stretch", "advice"),
    [
        (600, 0.35, 60, "break"),  # cameras going off: people are stepping away
        (55 * 60, 0.05, 60, "break"),  # fatigue after fifty minutes
        (600, 0.05, 12 * 60, "discussion"),  # a long sag within one activity
        (600, 0.05, 3 * 60, "quiz"),  # a short dip
    ],
)
def test_suggestion_rules(start, off, stretch, advice):
    span = summary.LowestSpan(start, start + 239, "on_screen_share", 0.4, 0.4, off, 0.5, stretch, 0.8, 240)
    assert summary.suggestion(span) == advice


def test_summary_sentence_names_span_item_share_cameras_off_and_advice():
    clock = Clock.for_session(datetime(2025, 1, 6, 3, 0, tzinfo=timezone.utc), 3600, JAKARTA)
    span = summary.LowestSpan(300, 719, "on_screen_share", 0.48, 0.48, 0.12, 0.5, 420, 0.8, 240)
    text = summary.sentence(span, "Diskusi kelompok", clock, "id")
    assert text.startswith("Perhatian paling rendah pada 10:05–10:11 saat “Diskusi kelompok”: 48%")
    assert "kamera mati/wajah hilang 12%" in text and translate("summary.suggest.quiz", "id") in text
    assert "10:05–10:11" in summary.sentence(span, None, clock, "en") and "during" not in summary.sentence(span, None, clock, "en")


def _session(share: list[float | None], bucket: int = 60) -> pd.DataFrame:
    return _tl({"on_screen_share": share, "off_share": [0.02] * len(share), "score": [0.6] * len(share)}, bucket)


@pytest.mark.parametrize("lang", ["id", "en"])
def test_a_flat_99_percent_session_has_no_notable_drop(lang):
    # 40 minutes at 98-100 % on screen: its lowest minute is 1 point under the median, no drop.
    share = [0.99, 0.98, 1.0, 0.99] * 10
    clock = Clock.for_session(None, 2400, JAKARTA)
    span = summary.lowest_span(_session(share), 60, 2400, "on_screen_share")
    assert span.level == pytest.approx(0.99) and span.drop_s == 0
    assert not summary.notable(span)
    text = summary.sentence(span, "Materi inti", clock, lang)
    assert text == translate("summary.no_drop_on_screen", lang, level="99%")
    assert not any(translate(f"summary.suggest.{s}", lang) in text for s in ("break", "discussion", "quiz"))


@pytest.mark.parametrize("lang", ["id", "en"])
def test_a_real_drop_is_named_with_its_time_item_and_advice(lang):
    # The same class falls to 70-80 % for three minutes from minute 20: 20+ points, a drop.
    share = [0.99, 0.98, 1.0, 0.99] * 5 + [0.75, 0.7, 0.8] + [0.99, 0.98, 1.0, 0.99] * 4 + [0.99]
    clock = Clock.for_session(None, 2400, JAKARTA)
    span = summary.lowest_span(_session(share), 60, 2400, "on_screen_share")
    assert summary.notable(span) and span.drop_s == 180
    text = summary.sentence(span, "Materi inti", clock, lang)
    assert text.startswith(translate("summary.lowest_on_screen", lang, span=clock.span(span.start, span.end),
                                     during=translate("summary.during", lang, title="Materi inti"),
                                     on_screen=f"{span.on_screen_share:.0%}", off="2%"))
    assert any(translate(f"summary.suggest.{s}", lang) in text for s in ("break", "discussion", "quiz"))


def test_a_drop_under_ten_points_or_under_a_minute_is_not_notable():
    level = [0.9] * 40
    nine_points = level[:20] + [0.81] * 5 + level[25:]
    assert not summary.notable(summary.lowest_span(_session(nine_points), 60, 2400, "on_screen_share"))
    ten_points = level[:20] + [0.8] * 5 + level[25:]
    assert summary.notable(summary.lowest_span(_session(ten_points), 60, 2400, "on_screen_share"))
    # Per second: 40 s at 50 % in a session at 90 % is under a minute (55 s once smoothed over
    # 30 s); 60 s is a drop.
    seconds = [0.9] * 600
    short = seconds[:300] + [0.5] * 40 + seconds[340:]
    assert not summary.notable(summary.lowest_span(_session(short, 1), 1, 600, "on_screen_share"))
    minute = seconds[:300] + [0.5] * 60 + seconds[360:]
    assert summary.notable(summary.lowest_span(_session(minute, 1), 1, 600, "on_screen_share"))


# -- the page ---------------------------------------------------------------------------------------


def test_page_opens_on_the_summary_sentence_and_the_share_on_screen(db_url):
    at = _facilitator(db_url, "sesi-001")
    sentence = at.info[0].value
    assert sentence.startswith("Perhatian paling rendah pada ")
    # The generator's sessions have a known start: clock time (HH:MM), and an agenda item.
    assert re.search(r"pada \d\d:\d\d–\d\d:\d\d saat “[^”]+”: \d+% peserta", sentence), sentence
    assert any(translate(f"summary.suggest.{s}", "id") in sentence for s in ("break", "discussion", "quiz"))
    assert at.metric[0].label == translate("kpi.on_screen", "id") and at.metric[0].value.endswith("%")
    # Every figure says what it means (not a bare "0.66").
    helps = {m.label: m.proto.help for m in at.metric}
    assert all(helps[translate(k, "id")] for k in ("kpi.on_screen", "kpi.cameras_off", "kpi.mean_score"))
    # The model's estimate is not a headline figure: on held-out videos it is barely better than a
    # constant (MSE 0.092 vs 0.095), so it sits among the researcher's measures with that error.
    headline = [m.label for m in at.metric[:4]]
    assert headline == [translate(k, "id") for k in ("kpi.on_screen", "kpi.cameras_off", "kpi.alerts", "kpi.length")]
    (researcher,) = [e for e in at.expander if e.label == translate("facilitator.researcher_measures", "id")]
    assert [m.label for m in researcher.metric] == [translate("kpi.mean_score", "id")]
    assert "ekspresi" in researcher.metric[0].proto.help and "0,092" in researcher.metric[0].proto.help
    assert translate("estimate.measured_error", "id") in [c.value for c in researcher.caption]
    assert at.subheader[0].value == translate("facilitator.timeline_on_screen", "id")
    specs = chart_specs(at)
    assert specs[0]["layer"][-1]["encoding"]["y"]["field"] == "on_screen_share"
    # The engagement estimate comes second, with its uncertainty band.
    estimate = specs[2]["layer"]
    assert [layer["mark"]["type"] for layer in estimate] == ["area", "line"]
    assert estimate[0]["encoding"]["y2"]["field"] == "hi"


def test_axes_are_clock_time_or_m_ss_never_fractions_of_minutes(db_url):
    at = _facilitator(db_url, "sesi-001")
    for spec in chart_specs(at)[:3]:
        x = _x_axis(spec)
        assert x["type"] == "temporal" and x["scale"]["type"] == "utc"
        assert x["axis"]["format"] == "%H:%M" and x["title"] == translate("chart.clock", "id")
    _, _, run_id = session(db_url, "sesi-001")
    with sqlite3.connect(db_path(db_url)) as con:
        con.execute("UPDATE sessions SET started_at = NULL")
    at = _facilitator(db_url, "sesi-001")
    assert re.search(r"pada \d+:\d\d–\d+:\d\d", at.info[0].value)
    for spec in chart_specs(at)[:3]:
        x = _x_axis(spec)
        assert x["axis"]["format"] == "%-M:%S" and x["title"] == translate("chart.elapsed", "id")
        start, end = (vl_time(v) for v in x["scale"]["domain"])
        assert end - start == 900_000 and start % 86_400_000 == 0  # the whole session, from 0:00
    alerts = next(df.value for df in at.dataframe if translate("alerts.from", "id") in df.value.columns)
    assert all(re.fullmatch(r"\d+:\d\d", v) for v in alerts[translate("alerts.from", "id")])


def _spec_resolve(db_url: str) -> dict:
    return chart_specs(_facilitator(db_url, "sesi-001"))[0].get("resolve", {})


def _timeline_layers(db_url: str) -> tuple[list[dict], str]:
    """The main timeline's layers and the agenda key under it, on a session with alerts."""
    at = _facilitator(db_url, "sesi-001")
    spec = chart_specs(at)[0]
    key = [c.value for c in at.caption if c.value.startswith("Agenda:")]
    return spec["layer"], key[0] if key else ""


def test_agenda_bands_are_numbered_grey_and_alerts_are_the_red_with_a_legend(db_url):
    """Agenda bands and alert areas told apart by more than a shade: agenda items are neutral
    grey bands labelled by number (titles listed under the chart, so they never cover each other
    on a phone), alerts are red with a dashed outline, a strip along the bottom and a legend."""
    with sqlite3.connect(db_path(db_url)) as con:
        alerts = con.execute("SELECT count(*) FROM alerts WHERE run_id = 1").fetchone()[0]
        titles = [r[0] for r in con.execute("SELECT title FROM agenda_items WHERE session_id = 1 ORDER BY start_second")]
    assert alerts and len(titles) > 2
    layers, key = _timeline_layers(db_url)
    marks = [(layer["mark"] if isinstance(layer["mark"], dict) else {"type": layer["mark"]}) for layer in layers]
    bands = [layer for layer, mark in zip(layers, marks)
             if mark["type"] == "rect" and "band" in json.dumps(layer["encoding"].get("color", {}))]
    assert bands and bands[0]["encoding"]["color"]["scale"]["range"] == charts.AGENDA_BANDS
    assert all(_grey(colour) for colour in charts.AGENDA_BANDS)
    labels = [layer for layer, mark in zip(layers, marks) if mark["type"] == "text"]
    assert labels and labels[0]["encoding"]["text"]["field"] == "number"
    assert key == "Agenda: " + " · ".join(f"{i + 1} {title}" for i, title in enumerate(titles))
    red = [(layer, mark) for layer, mark in zip(layers, marks) if charts.ALERT in json.dumps(layer)]
    assert any(mark.get("strokeDash") for _, mark in red)
    coloured = [layer["encoding"]["color"] for layer, _ in red if "color" in layer["encoding"]]
    assert coloured and coloured[0]["legend"]["orient"] == "bottom" and coloured[0]["scale"]["range"] == [charts.ALERT]
    # Its own colour scale: shared with the agenda's, the legend and strip took the agenda's grey.
    assert _spec_resolve(db_url)["scale"]["color"] == "independent"
    assert not any(charts.ALERT in json.dumps(b) for b in bands)


def _grey(colour: str) -> bool:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return max(r, g, b) - min(r, g, b) <= 12  # no hue to speak of: not pink, not blue


def test_alerts_are_listed_with_kind_and_agenda_item(db_url):
    at = _facilitator(db_url, "sesi-001")
    table = next(df.value for df in at.dataframe if translate("alerts.kind", "id") in df.value.columns)
    kinds = {translate(f"alert.{k}", "id") for k in ("attention_drop", "on_screen_drop", "cameras_off_rise")}
    assert set(table[translate("alerts.kind", "id")]) <= kinds
    assert all(v and v != "–" for v in table[translate("alerts.agenda_item", "id")])
    # A phone shows about two columns before a table scrolls: when, and during which item.
    assert list(table.columns[:2]) == [translate("alerts.from", "id"), translate("alerts.agenda_item", "id")]
    # "Lama" is a length in words, never "21:51" beside the clock-time columns; every change in points.
    durations = table[translate("alerts.duration", "id")]
    assert all(re.fullmatch(r"(\d+ jam \d+ mnt|\d+ mnt \d+ dtk|\d+ dtk)", d) for d in durations), durations.tolist()
    sizes = table[translate("alerts.magnitude", "id")]
    assert all(re.fullmatch(r"\d+ poin", v) for v in sizes), sizes.tolist()
    assert "attention_drop" in set(queries.alerts(queries.open_store(db_url), session(db_url, "sesi-001")[2])["kind"])


def test_agenda_table_is_ranked_by_the_share_on_screen_and_coloured(db_url):
    at = _facilitator(db_url, "sesi-001")
    frame = next(df for df in at.dataframe if translate("agenda.rank", "id") in df.value.columns)
    table = frame.value
    # The item and its share within the first columns, which a phone shows before scrolling.
    assert list(table.columns[1:3]) == [translate("agenda.title", "id"), translate("kpi.on_screen", "id")]
    shares = [int(v.rstrip("%")) for v in table[translate("kpi.on_screen", "id")] if v != "–"]
    assert shares == sorted(shares, reverse=True) and len(shares) >= 3
    assert table[translate("agenda.rank", "id")].tolist()[: len(shares)] == [str(i + 1) for i in range(len(shares))]
    styles = frame.proto.arrow_data.styler.styles
    assert "row0_col0" in styles.split("{")[0] and "#D3EAE4" in styles.split("}")[0]  # the best item: green
    assert "#F6D5CF" in styles  # the weakest third: pink


def test_the_distribution_axis_spans_the_whole_0_to_100_percent_in_quarters():
    dist = pd.DataFrame({"category": ["on_screen", "looking_away"], "n": [90, 10], "share": [0.9, 0.1]})
    x = charts.distribution(dist, "state").to_dict()["encoding"]["x"]
    assert x["scale"]["domain"] == [0, 1] and x["axis"]["values"] == [0, 0.25, 0.5, 0.75, 1]
    small = pd.DataFrame({"category": ["on_screen"], "n": [5], "share": [0.05]})
    assert charts.distribution(small, "state").to_dict()["encoding"]["x"]["scale"]["domain"] == [0, 1]


def test_k_hides_lone_states_from_the_distribution_and_hidden_seconds_from_the_band(db_url):
    _, _, run_id = session(db_url, "sesi-001")
    store = queries.open_store(db_url)
    with sqlite3.connect(db_path(db_url)) as con:
        # From 7:30 on, fewer than k people stand behind each second.
        con.execute("UPDATE class_timeline SET n_absent = NULL, suppressed = 1, score = NULL WHERE run_id = ? AND second >= 450",
                    (run_id,))
        early = con.execute("SELECT count(*) FROM window_features WHERE run_id = ? AND second < 450", (run_id,)).fetchone()[0]
    dist = queries.attention_distribution(store, run_id)
    assert dist["n"].sum() == early
    assert set(dist["category"]) <= set(charts.STATE_ORDER)
    band = queries.score_band(store, run_id, 10)
    assert band["t"].max() < 450 and (band["lo"] <= band["hi"]).all()
    with sqlite3.connect(db_path(db_url)) as con:
        con.execute("UPDATE class_timeline SET n_absent = NULL WHERE run_id = ?", (run_id,))
    assert queries.attention_distribution(store, run_id).empty
    at = _facilitator(db_url, "sesi-001")
    assert translate("facilitator.no_distribution", "id") in [i.value for i in at.info]
    assert not missing_words(at), missing_words(at)


def test_score_band_is_the_95_percent_interval_between_present_people(db_url):
    _, _, run_id = session(db_url, "sesi-001")
    with sqlite3.connect(db_path(db_url)) as con:
        rows = con.execute(
            "SELECT e.score FROM engagement_estimates e JOIN class_timeline c ON c.run_id = e.run_id AND c.second = e.second"
            " WHERE e.run_id = ? AND e.second BETWEEN 100 AND 109 AND e.state = 'present' AND c.suppressed = 0", (run_id,)
        ).fetchall()
        seconds = con.execute("SELECT count(*) FROM class_timeline WHERE run_id = ? AND second BETWEEN 100 AND 109"
                              " AND suppressed = 0", (run_id,)).fetchone()[0]
    scores = pd.Series([r[0] for r in rows])
    people = len(scores) / seconds
    half = 1.96 * scores.std(ddof=0) / people**0.5
    band = queries.score_band(queries.open_store(db_url), run_id, 10).set_index("t").loc[100]
    assert band["lo"] == pytest.approx(scores.mean() - half) and band["hi"] == pytest.approx(scores.mean() + half)
    assert band["people"] == pytest.approx(people)


def test_lanes_show_every_track_and_its_attention_state(db_url):
    _, _, run_id = session(db_url, "sesi-001")
    with sqlite3.connect(db_path(db_url)) as con:
        # T3 was never analysed (no per-second rows): its lane stays, empty.
        con.execute("DELETE FROM window_features WHERE track_id = (SELECT id FROM tracks WHERE run_id = ? AND label = 'T3')",
                    (run_id,))
    store = queries.open_store(db_url)
    lanes = queries.individual_lanes(store, run_id, 1)
    assert list(dict.fromkeys(lanes["label"])) == [f"T{i}" for i in range(1, 9)]  # natural order: T2 before T10
    assert set(lanes["state"].dropna()) <= set(charts.STATE_ORDER)
    assert lanes[lanes["label"] == "T1"]["t"].tolist() == list(range(900))  # one bar per second
    at = _facilitator(db_url, "sesi-001")
    before = len(chart_specs(at))
    at.toggle[0].set_value(True).run()
    no_failure(at)
    spec = chart_specs(at)[before]
    y = spec["encoding"]["y"]
    assert y["scale"]["domain"] == [f"T{i}" for i in range(1, 9)] and y["title"] == translate("chart.participant_track", "id")
    assert spec["encoding"]["color"]["field"] == "state_label" and spec["height"] >= 8 * 26
    assert spec["encoding"]["x2"]["field"] == "x2"  # each bar spans its own seconds


# -- live -------------------------------------------------------------------------------------------


def _make_live(db_url: str, name: str) -> int:
    """A running analysis 15 minutes in: the share on screen fell from 0.8 to 0.3 at 11:40 and
    half the cameras went off for the last 25 seconds (the issue's gallery case)."""
    _, _, run_id = session(db_url, name)
    now = (datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M:%S.%f")
    with sqlite3.connect(db_path(db_url)) as con:
        con.execute("UPDATE runs SET status = 'running', heartbeat_at = ? WHERE id = ?", (now, run_id))
        con.execute("DELETE FROM alerts WHERE run_id = ?", (run_id,))  # a live run has written none yet
        con.execute("UPDATE class_timeline SET on_screen_share = 0.8, n_absent = 0, n_judged = 8, n_tracked = 8, score = 0.6,"
                    " suppressed = 0 WHERE run_id = ?", (run_id,))
        con.execute("UPDATE class_timeline SET on_screen_share = 0.3 WHERE run_id = ? AND second >= 700", (run_id,))
        con.execute("UPDATE class_timeline SET n_absent = 4 WHERE run_id = ? AND second >= 875", (run_id,))
    return run_id


def test_cameras_off_jump_fires_on_half_the_class_gone_for_20_seconds():
    steady = [ClassPoint(s, 6, 6, 0.6, False, 6, 0.8, 0) for s in range(300)]
    gone = [ClassPoint(s, 3, 6, 0.6, False, 3, 0.8, 3) for s in range(300, 325)]
    jump = alerting.cameras_off_jump(steady + gone)
    assert jump.now == 0.5 and jump.before < 0.05 and jump.second == 324
    assert alerting.cameras_off_jump(steady) is None
    hidden = [ClassPoint(s, 3, 6, None, True, 3, None, None) for s in range(300, 325)]  # below k: no signal
    assert alerting.cameras_off_jump(steady + hidden) is None


def test_chime_is_a_wav_made_here():
    wav = alerting.chime_wav()
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE" and len(wav) > 10_000
    assert 'src="data:audio/wav;base64,' in alerting.chime_html("1-2")


def test_live_drop_raises_a_toast_a_banner_and_the_chime_once(db_url):
    _make_live(db_url, "sesi-003")
    at = app("facilitator")
    at.session_state["alert_sound"] = True
    at.run()  # a facilitator lands on this page, on the newest session: sesi-003
    assert not at.exception and not at.error
    drop = translate("live.alert", "id", kind=translate("alert.on_screen_drop", "id"), since="", item="")
    toasts = [t.value for t in at.toast]
    assert any(v.startswith(drop.split(" sejak ")[0]) for v in toasts), toasts
    warnings = [w.value for w in at.warning]
    assert any(w.startswith(translate("alert.on_screen_drop", "id")) for w in warnings), warnings
    jump = translate("live.cameras_off_jump", "id", now="50%", before="{before}").split("{before}")[0]
    assert any(w.startswith(jump) for w in warnings), warnings
    sounds = _sounds(at)
    assert len(sounds) == 1 and "<audio autoplay" in sounds[0].proto.body
    at.run()  # the next refresh: the same alert is not announced again
    assert not at.toast and not _sounds(at)
    assert any(w.value.startswith(translate("alert.on_screen_drop", "id")) for w in at.warning)  # the banner stays


def _sounds(at) -> list:
    return [e for e in elements(at) if getattr(e, "type", "") == "html" and "<audio" in e.proto.body]


def _points(shares: list[float | None], absent: list[int] | None = None, n: int = 8) -> list[ClassPoint]:
    absent = absent or [0] * len(shares)
    return [ClassPoint(s, n - a, n, 0.6, False, n - a, v, a) for s, (v, a) in enumerate(zip(shares, absent))]


def test_now_figures_are_the_last_30_seconds_against_the_five_minutes_before():
    now = alerting.now_figures(_points([0.8] * 300 + [0.5] * 30, [0] * 320 + [2] * 10))
    assert now.share == pytest.approx(0.5) and now.change == pytest.approx(-0.3)
    assert now.second == 329 and now.present == 6  # 8 tracked, 2 cameras off
    early = alerting.now_figures(_points([0.7] * 20))
    assert early.share == pytest.approx(0.7) and early.change is None  # nothing before to compare with
    assert alerting.now_figures([]) is None


def test_the_learning_notice_holds_only_while_no_direction_is_learned_in_the_first_minutes():
    assert alerting.learning(_points([None] * 40))
    assert not alerting.learning(_points([None] * 39 + [0.8]))
    assert not alerting.learning(_points([None] * 200))  # past two minutes: k hides it, not learning
    assert not alerting.learning([])


def test_a_cameras_off_jump_joins_the_alerts_once_with_a_start_that_holds_across_refreshes():
    points = _points([0.8] * 325, [0] * 300 + [4] * 25)
    first = alerting.with_jump(alerting.live_alerts(points), points, alerting.cameras_off_jump(points))
    later = points + [ClassPoint(s, 4, 8, 0.6, False, 4, 0.8, 4) for s in range(325, 330)]  # the next refresh
    again = alerting.with_jump(alerting.live_alerts(later), later, alerting.cameras_off_jump(later))
    jumps = first[first["kind"] == alerting.JUMP_KIND]
    assert jumps["start_second"].tolist() == [300] and jumps["end_second"].tolist() == [324]
    assert again[again["kind"] == alerting.JUMP_KIND]["start_second"].tolist() == [300]
    assert alerting.unseen(again, {alerting.alert_key(alerting.JUMP_KIND, 300)}).empty
    quiet = _points([0.8] * 325)
    assert alerting.with_jump(alerting.live_alerts(quiet), quiet, None).empty


def test_the_live_counter_counts_every_banner_and_the_now_panel_is_shown(db_url):
    _make_live(db_url, "sesi-003")
    at = app("facilitator").run()
    no_failure(at)
    banners = [w.value for w in at.warning if w.proto.icon in (":material/notifications_active:", ":material/videocam_off:")]
    jump = translate("live.cameras_off_jump", "id", now="50%", before="{before}").split("{before}")[0]
    assert any(b.startswith(jump) for b in banners), banners
    counter = next(m for m in at.metric if m.label == translate("kpi.alerts", "id"))
    assert int(counter.value) >= len(banners) > 0
    panel = {m.label: m for m in at.metric}
    share = panel[translate("live.now_share", "id")]
    # The last 30 s at 30 %; the five minutes before: 130 s at 80 %, 170 s at 30 % (52 %).
    assert share.value == "30%" and share.proto.delta == "-22 " + translate("unit.points", "id")
    assert panel[translate("live.now_present", "id")].value == "4"
    assert panel[translate("live.now_item", "id")].value not in ("–", "None", "")


def test_mark_now_adds_a_one_minute_item_at_the_newest_second(db_url):
    _make_live(db_url, "sesi-003")
    _, session_id, run_id = session(db_url, "sesi-003")
    at = app("facilitator").run()
    before = _agenda_rows(db_url, session_id)
    running = [title for start, title in before if start <= 899][-1]
    next(w for w in at.text_input if w.label == translate("live.mark_title", "id")).input("Kuis dimulai")
    at.button(key="FormSubmitter:live_mark-" + translate("live.mark", "id")).click().run()
    no_failure(at)
    added = [r for r in _agenda_rows(db_url, session_id) if r not in before]
    assert added == [(899, "Kuis dimulai"), (959, running)]
    assert any(s.value.startswith("«Kuis dimulai»") for s in at.success)
    assert "mark" in [e["details"].get("change") for e in audit_entries(db_url) if e["action"] == "agenda_changed"]


def test_live_view_shows_the_last_ten_minutes_by_default(db_url):
    _make_live(db_url, "sesi-003")
    at = open_page(app("facilitator").run(), "facilitator")
    assert not at.exception and not at.error
    assert at.radio[0].value == "recent"
    x = _x_axis(chart_specs(at)[0])
    start, end = (vl_time(v) for v in x["scale"]["domain"])
    assert end - start == 600_000  # 5:00 to 15:00 of a 15-minute class
    assert x["axis"]["format"] == "%H:%M:%S"  # ten minutes: clock time to the second
    at.radio[0].set_value("all").run()
    start, end = (vl_time(v) for v in _x_axis(chart_specs(at)[0])["scale"]["domain"])
    assert end - start == 900_000


def test_live_sound_toggle_is_offered_only_while_live(db_url):
    at = open_page(app("facilitator").run(), "facilitator")
    assert not [t for t in at.toggle if t.label == translate("live.sound", "id")]
    _make_live(db_url, "sesi-003")
    at = open_page(app("facilitator").run(), "facilitator")
    assert [t for t in at.toggle if t.label == translate("live.sound", "id")]


def test_summary_download_carries_the_sentence_and_clock_times(db_url):
    from dashboard.report import session_summary_html

    at = _facilitator(db_url, "sesi-001")
    sentence = at.info[0].value
    assert at.get("download_button")

    store = queries.open_store(db_url)
    _, session_id, run_id = session(db_url, "sesi-001")
    clock = Clock.for_session(datetime(2025, 1, 6, 3, 0, tzinfo=timezone.utc), 900, JAKARTA)
    page = session_summary_html("id", {"name": "sesi-001"}, queries.session_stats(store, run_id),
                                queries.class_timeline(store, run_id, 2), queries.agenda_scores(store, session_id, run_id),
                                queries.agenda(store, session_id), queries.alerts(store, run_id), clock, sentence,
                                "on_screen_share")
    assert sentence.replace("“", "&quot;")[:20] in page.replace("“", "&quot;") and "10:15" in page
    assert translate("kpi.on_screen", "id") in page
    # The estimate is no headline figure in the download either: it comes with its measured error.
    kpis = page.split('<div>')[1].split('</div>')[0]
    assert translate("kpi.on_screen", "id") in kpis and translate("kpi.mean_score", "id") not in kpis
    assert "0,092" in page and translate("facilitator.researcher_measures", "id") in page
    # Its timeline is drawn as the page draws it: numbered grey agenda bands with the titles
    # listed under the chart, and alerts the only red, dashed, with their legend.
    svg = page.split("<svg")[1].split("</svg>")[0]
    titles = queries.agenda(store, session_id)["title"].tolist()
    assert titles and not any(title in svg for title in titles)
    assert all(colour in svg for colour in charts.AGENDA_BANDS) and "#e8eef2" not in svg
    assert f'stroke="{charts.ALERT}" stroke-dasharray' in svg and translate("chart.alert_legend", "id") in svg
    assert translate("facilitator.agenda_key", "id", items=charts.agenda_key(queries.agenda(store, session_id))) in page


def test_a_stale_heartbeat_and_banners_never_hide_the_agenda_editor(db_url):
    _make_live(db_url, "sesi-003")
    with sqlite3.connect(db_path(db_url)) as con:
        old = (datetime.now(timezone.utc) - timedelta(minutes=10)).strftime("%Y-%m-%d %H:%M:%S.%f")
        con.execute("UPDATE runs SET heartbeat_at = ? WHERE status = 'running'", (old,))
    at = open_page(app("facilitator").run(), "facilitator")
    assert not at.exception
    assert any("menit" in w.value for w in at.warning)
    assert translate("agenda.edit", "id") in [str(getattr(e, "label", "")) for e in elements(at)]


def test_fatigue_shows_a_sentence_and_a_lane_with_its_help(db_url):
    """Three yawns among the class within five minutes near the end: the page says so, with the
    break, and draws the fatigue lane with a help text saying what the numbers do not mean."""
    _, _, run_id = session(db_url, "sesi-001")
    with sqlite3.connect(db_path(db_url)) as con:
        con.execute("UPDATE class_timeline SET n_seen = n_tracked, n_yawns = 0, perclos_share = 0.05 WHERE run_id = ?",
                    (run_id,))
        (last,) = con.execute("SELECT MAX(second) FROM class_timeline WHERE run_id = ?", (run_id,)).fetchone()
        for second in (last - 200, last - 150, last - 100):
            con.execute("UPDATE class_timeline SET n_yawns = 1 WHERE run_id = ? AND second = ?", (run_id, second))
    at = _facilitator(db_url, "sesi-001")
    warnings = [w.value for w in at.warning]
    assert any(w.startswith("Tanda lelah pada ") and "3 kali menguap di antara" in w for w in warnings), warnings
    assert translate("facilitator.fatigue", "id") in [s.value for s in at.subheader]
    assert translate("facilitator.fatigue_help", "id") in [c.value for c in at.caption]
    lanes = [s for s in chart_specs(at) if "vconcat" in s]
    assert len(lanes) == 1 and len(lanes[0]["vconcat"]) == 2  # no smile lane: no smile figure stored


def test_no_fatigue_figures_no_fatigue_lane(db_url):
    at = _facilitator(db_url, "sesi-001")  # the generator writes no fatigue figures (an older run)
    assert translate("facilitator.fatigue", "id") not in [s.value for s in at.subheader]
    assert not any("menguap" in w.value for w in at.warning)


# -- agenda editor ----------------------------------------------------------------------------------


def _agenda_rows(db_url: str, session_id: int) -> list[tuple[int, str]]:
    with sqlite3.connect(db_path(db_url)) as con:
        return con.execute("SELECT start_second, title FROM agenda_items WHERE session_id = ? ORDER BY start_second, id",
                           (session_id,)).fetchall()


def _add(at, session_id: int, start: str, title: str, lang: str = "id"):
    form = f"agenda_add_{session_id}"
    inputs = [w for w in at.text_input if w.label in (translate("agenda.start", lang), translate("agenda.title", lang))]
    inputs[0].input(start)
    inputs[1].input(title)
    return at.button(key=f"FormSubmitter:{form}-" + translate("agenda.add", lang)).click().run()


def _editor_page(db_url: str, name: str, lang: str = "id"):
    """The facilitator page on session `name`, in `lang` (picked as a user does, in the sidebar)."""
    at = app("facilitator").run()
    if lang != "id":
        at.sidebar.selectbox[0].set_value(lang).run()
    at = open_page(at, "facilitator")
    # By position: set_value formats the option outside the page's run, in the default language.
    at.selectbox(key="facilitator_session").select_index(session(db_url, name)[0]).run()
    return at


def _start_of(db_url: str, name: str) -> datetime:
    sessions = queries.list_sessions(queries.open_store(db_url))
    start = pd.Timestamp(sessions.loc[sessions["name"] == name, "clock_start"].iloc[0])
    return (start.tz_localize("UTC") if start.tzinfo is None else start).tz_convert(JAKARTA).to_pydatetime()


@pytest.mark.parametrize("lang", ["id", "en"])
def test_a_clock_time_and_an_offset_land_on_the_same_second_and_read_alike(db_url, lang):
    _, session_id, _ = session(db_url, "sesi-002")
    at = _editor_page(db_url, "sesi-002", lang)
    before = _agenda_rows(db_url, session_id)
    clock_time = (_start_of(db_url, "sesi-002") + timedelta(minutes=7, seconds=30)).strftime("%H:%M:%S")
    at = _add(at, session_id, clock_time, "Kuis jam", lang)
    no_failure(at)
    at = _add(at, session_id, "+7:30", "Kuis offset", lang)
    no_failure(at)
    added = [r for r in _agenda_rows(db_url, session_id) if r not in before]
    assert added == [(450, "Kuis jam"), (450, "Kuis offset")]
    # The editor lists the start as the ranking does: the session's clock, never an offset.
    label = Clock.for_session(_start_of(db_url, "sesi-002"), 900, JAKARTA).label(450)
    editor = next(df.value for df in at.dataframe if list(df.value.columns) == [translate("agenda.start", lang), translate("agenda.title", lang)])
    assert editor.loc[editor[translate("agenda.title", lang)] == "Kuis jam", translate("agenda.start", lang)].tolist() == [label]
    ranking = next(df.value for df in at.dataframe if translate("agenda.rank", lang) in df.value.columns)
    assert set(ranking.loc[ranking[translate("agenda.title", lang)].str.startswith("Kuis"), translate("agenda.start", lang)]) == {label}


@pytest.mark.parametrize(("lang", "words"), [("id", "di luar sesi"), ("en", "outside the session")])
def test_a_time_outside_the_session_is_refused_in_the_users_language_and_nothing_is_stored(db_url, lang, words):
    _, session_id, _ = session(db_url, "sesi-002")
    at = _editor_page(db_url, "sesi-002", lang)
    before = _agenda_rows(db_url, session_id)
    at = _add(at, session_id, "22:43:30" if _start_of(db_url, "sesi-002").hour != 22 else "03:43:30", "Terlambat", lang)
    assert _agenda_rows(db_url, session_id) == before
    (error,) = at.error
    assert error.value.startswith(translate("agenda.invalid", lang, detail="")) and words in error.value
    other = "cannot" if lang == "id" else "tidak"
    assert other not in error.value


def test_an_agenda_is_imported_from_pasted_csv_and_a_bad_line_stores_nothing(db_url):
    """The import reads pasted CSV text (Streamlit's file uploader spoke English whatever the
    language); a bad line is refused in the user's language and leaves the agenda as it was."""
    _, session_id, _ = session(db_url, "sesi-002")
    at = _editor_page(db_url, "sesi-002", "id")
    before = _agenda_rows(db_url, session_id)
    at.text_area(key=f"agenda_csv_{session_id}").set_value("0:00,Pembukaan\nlima menit,Kuis").run()
    at.button(key=f"agenda_csv_apply_{session_id}").click().run()
    assert at.error and at.error[0].value.startswith(translate("agenda.invalid", "id", detail=""))
    assert _agenda_rows(db_url, session_id) == before
    at.text_area(key=f"agenda_csv_{session_id}").set_value("0:00,Pembukaan\n5:00,Kuis").run()
    at.button(key=f"agenda_csv_apply_{session_id}").click().run()
    no_failure(at)
    assert [title for _, title in _agenda_rows(db_url, session_id)] == ["Pembukaan", "Kuis"]


def test_removing_an_item_asks_first_and_can_be_undone(db_url):
    _, session_id, _ = session(db_url, "sesi-002")
    at = _editor_page(db_url, "sesi-002")
    before = _agenda_rows(db_url, session_id)
    assert len(before) >= 2
    at.button(key=f"agenda_remove_ask_{session_id}").click().run()
    assert _agenda_rows(db_url, session_id) == before  # one click deletes nothing
    assert any(translate("agenda.remove_yes", "id") == b.label for b in at.button)
    at.button(key=f"agenda_remove_no_{session_id}").click().run()
    assert _agenda_rows(db_url, session_id) == before
    at.button(key=f"agenda_remove_ask_{session_id}").click().run()
    at.button(key=f"agenda_remove_yes_{session_id}").click().run()
    no_failure(at)
    after = _agenda_rows(db_url, session_id)
    assert len(after) == len(before) - 1
    (gone,) = [r for r in before if r not in after]
    assert translate("agenda.removed", "id", title=gone[1]) in [s.value for s in at.success]
    at.button(key=f"agenda_undo_button_{session_id}").click().run()
    no_failure(at)
    assert _agenda_rows(db_url, session_id) == before
    assert translate("agenda.restored", "id") in [s.value for s in at.success]


def test_a_lane_is_found_by_the_display_name_typed_and_no_name_is_kept(db_url):
    """Rosters of display names (name labels): the facilitator types the name as the meeting
    showed it and is told which lane is that person's; lanes list no names, and neither the audit
    log nor the database keeps what was typed."""
    from privacy.consent import grant
    from privacy.pseudonym import KeyRing

    _, _, run_id = session(db_url, "sesi-001")
    store = queries.open_store(db_url)
    cohort = queries.list_sessions(store).set_index("name").loc["sesi-001", "cohort"]
    grant(store, "Budi S.", cohort=cohort, notice_version="v1", language="id", evidence="roster of names")
    budi = KeyRing(store).lookup("Budi S.", cohort)
    with sqlite3.connect(db_path(db_url)) as con:
        con.execute("UPDATE tracks SET participant = ? WHERE run_id = ? AND label = 'T3'", (budi, run_id))
    at = _facilitator(db_url, "sesi-001")
    at.toggle[0].set_value(True).run()
    box = at.text_input(key=f"lane_name_{run_id}")
    box.set_value("  BUDI S. (Host)").run()
    no_failure(at)
    assert translate("lanes.name_found", "id", label="T3") in [s.value for s in at.success]
    box.set_value("Siti Aminah").run()
    assert translate("lanes.name_not_found", "id") in [i.value for i in at.info]
    with sqlite3.connect(db_path(db_url)) as con:
        entries = [json.loads(d) for (d,) in con.execute("SELECT details FROM audit_log WHERE action = 'individual_view'")]
        dump = "\n".join(str(row) for table in ("audit_log", "tracks", "consent_records")
                         for row in con.execute(f"SELECT * FROM {table}"))  # noqa: S608 - fixed names
    lookups = [e for e in entries if e.get("view") == "lane_by_name"]
    assert [(e["found"], e.get("participant")) for e in lookups] == [(True, budi), (False, None)]
    assert not any(name in dump.lower() for name in ("budi", "siti", "aminah"))
