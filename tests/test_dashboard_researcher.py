"""Researcher page: 95 % intervals and n behind every aggregate point, localised day axes,
sessions side by side, per-agenda trends across sessions, presence in percent everywhere."""

from __future__ import annotations

import sqlite3
from datetime import date

import pandas as pd
import pytest
from dashboard_support import app, audit_entries, chart_specs, db_path, make_db, missing_words, no_failure, vl_time

from dashboard import charts, queries, services, stats
from dashboard.clock import zone
from engagement.core.i18n import translate


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    return make_db(tmp_path, monkeypatch)


def _researcher(lang: str = "id"):
    # The researcher lands on this page. (No second run: AppTest formats translated options
    # outside the page, in the default language, and would not find an English one again.)
    at = app("researcher", lang).run()
    no_failure(at)
    assert at.title[0].value == translate("researcher.title", lang)
    return at


def _layers(spec: dict) -> list[dict]:
    return spec.get("layer", [spec])


# -- intervals (units) --------------------------------------------------------------------------


def test_half_width_is_196_sd_over_root_n_between_people():
    # Four people whose means are 0.2, 0.4, 0.6, 0.8 (two samples each, one split across titles).
    persons = pd.DataFrame(
        {
            "run_id": [1] * 5,
            "person": [1, 2, 3, 4, 4],
            "title": ["A", "A", "A", "A", "B"],
            "total": [0.4, 0.8, 1.2, 0.8, 0.8],
            "n": [2, 2, 2, 1, 1],
        }
    )
    out = stats.half_widths(persons, ["run_id"])
    sd = pd.Series([0.2, 0.4, 0.6, 0.8]).std(ddof=1)
    assert out["n"].tolist() == [4] and out["half"].iloc[0] == pytest.approx(1.96 * sd / 2)
    points = stats.with_interval(pd.DataFrame({"run_id": [1], "score": [0.5]}), persons, ["run_id"], "score")
    assert points["score_lo"].iloc[0] == pytest.approx(0.5 - 1.96 * sd / 2)
    assert points["score_n"].iloc[0] == 4
    # One person: no spread to speak of, so no interval.
    alone = stats.with_interval(pd.DataFrame({"run_id": [1], "score": [0.5]}), persons[persons["person"] == 1],
                                ["run_id"], "score")
    assert alone["score_lo"].isna().all() and alone["score_n"].iloc[0] == 1


def test_across_sessions_interval_is_between_sessions():
    items = pd.DataFrame({"title": ["A", "A", "A", "B"], "score": [0.4, 0.5, 0.6, 0.7], "score_n": [8, 8, 8, 5]})
    out = stats.across_sessions(items, "score").set_index("title")
    assert out.loc["A", "score"] == pytest.approx(0.5) and out.loc["A", "sessions"] == 3 and out.loc["A", "people"] == 24
    assert out.loc["A", "score_hi"] - out.loc["A", "score"] == pytest.approx(1.96 * 0.1 / 3**0.5)
    assert pd.isna(out.loc["B", "score_lo"])


# -- queries ------------------------------------------------------------------------------------


def test_trend_points_carry_people_and_an_interval_around_them(db_url):
    store = queries.open_store(db_url)
    f = queries.Filters()
    trend = queries.trends(store, f)
    for field in ("on_screen_share", "score"):
        persons = queries.person_means(store, f, trend, field)
        points = stats.with_interval(trend, persons, ["run_id"], field)
        assert (points[f"{field}_lo"] <= points[field]).all() and (points[field] <= points[f"{field}_hi"]).all()
        assert (points[f"{field}_n"] == 8).all()
    assert trend["people"].tolist() == [8, 8, 8]
    with sqlite3.connect(db_path(db_url)) as con:
        on_screen = con.execute("SELECT avg(on_screen_share) FROM class_timeline WHERE run_id = 2").fetchone()[0]
    assert trend.loc[trend["name"] == "sesi-002", "on_screen_share"].item() == pytest.approx(on_screen)


def test_n_counts_participants_not_tracks(db_url):
    # Run 2 as a roster run where one participant's face was lost and found again: 8 tracks, of
    # which the first two are the same pseudonymised participant. n is 7 people, not 8 tracks.
    with sqlite3.connect(db_path(db_url)) as con:
        ids = [r[0] for r in con.execute("SELECT id FROM tracks WHERE run_id = 2 ORDER BY id")]
        for i, track in enumerate(ids):
            con.execute("UPDATE tracks SET participant = ? WHERE id = ?", (f"p{max(i, 1)}", track))
    store = queries.open_store(db_url)
    f = queries.Filters()
    trend = queries.trends(store, f)
    with sqlite3.connect(db_path(db_url)) as con:
        tracks = con.execute("SELECT run_id, count(*) FROM tracks GROUP BY run_id ORDER BY run_id").fetchall()
    assert tracks == [(1, 8), (2, 8), (3, 8)]
    assert trend.set_index("run_id")["people"].to_dict() == {1: 8, 2: 7, 3: 8}
    persons = queries.person_means(store, f, trend, "on_screen_share")
    points = stats.with_interval(trend, persons, ["run_id"], "on_screen_share").set_index("run_id")
    assert points["on_screen_share_n"].to_dict() == {1: 8, 2: 7, 3: 8}


def test_per_agenda_values_per_session_match_the_seconds_of_each_item(db_url):
    store = queries.open_store(db_url)
    items = queries.agenda_sessions(store, queries.Filters(agenda_titles=("Diskusi kelompok",)))
    assert items["name"].tolist() == ["sesi-001", "sesi-002", "sesi-003"]
    with sqlite3.connect(db_path(db_url)) as con:
        start, end = con.execute(
            "SELECT start_second, (SELECT min(start_second) FROM agenda_items b WHERE b.session_id = a.session_id"
            " AND b.start_second > a.start_second) FROM agenda_items a WHERE session_id = 1 AND title = 'Diskusi kelompok'"
        ).fetchone()
        expected = con.execute("SELECT avg(on_screen_share) FROM class_timeline WHERE run_id = 1 AND second >= ? AND second < ?",
                               (start, end)).fetchone()[0]
    assert items.iloc[0]["on_screen_share"] == pytest.approx(expected)


def _by_hand(db: str, titles: tuple[str, ...] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The researcher's figures computed from the raw seconds in pandas, by their definition: per
    session and per agenda item (an item ends where the next one starts), the on-screen share and
    the score as means over the seconds that have them, cameras off over the tracked participants
    of the seconds where k let it through."""
    with sqlite3.connect(db) as con:
        ct = pd.read_sql("SELECT * FROM class_timeline", con)
        runs = pd.read_sql("SELECT session_id, max(id) AS run_id FROM runs WHERE status = 'complete' GROUP BY session_id", con)
        ag = pd.read_sql("SELECT session_id, start_second, title FROM agenda_items ORDER BY session_id, start_second", con)
    ag["end"] = ag.groupby("session_id")["start_second"].shift(-1)
    ct = ct.merge(runs, on="run_id")
    ct["off"] = ct["n_absent"].where(ct["n_judged"].notna(), (ct["n_tracked"] - ct["n_present"]).where(ct["suppressed"] == 0))
    ct["tracked"] = ct["n_tracked"].where(ct["off"].notna())
    seg = ct.merge(ag, on="session_id")
    seg = seg[(seg["second"] >= seg["start_second"]) & (seg["end"].isna() | (seg["second"] < seg["end"]))]
    if titles:
        seg = seg[seg["title"].isin(titles)]

    def means(g: pd.DataFrame) -> pd.Series:
        return pd.Series({"on_screen_share": g["on_screen_share"].mean(), "off_share": g["off"].sum() / g["tracked"].sum(),
                          "score": g["score"].mean(), "seconds": len(g)})

    per_run = (seg if titles else ct).groupby("run_id").apply(means, include_groups=False)
    per_item = seg.groupby(["run_id", "title"]).apply(means, include_groups=False)
    return per_run, per_item


@pytest.mark.parametrize("titles", [(), ("Diskusi kelompok", "Pembukaan")])
def test_one_pass_figures_equal_the_definition_on_every_second(db_url, titles):
    """`researcher_figures` reads the seconds once for the session and agenda figures (the page
    was over its 2 s budget with two passes); the figures stay those of the definition, also for
    seconds before the first agenda item and for a session without an agenda."""
    with sqlite3.connect(db_path(db_url)) as con:
        con.execute("UPDATE agenda_items SET start_second = 90 WHERE session_id = 1 AND start_second = 0")
        con.execute("DELETE FROM agenda_items WHERE session_id = 3")
    trend, items = queries.researcher_figures(queries.open_store(db_url), queries.Filters(agenda_titles=titles))
    per_run, per_item = _by_hand(db_path(db_url), titles)
    got = trend.set_index("run_id")[["on_screen_share", "off_share", "score", "seconds"]]
    pd.testing.assert_frame_equal(got.sort_index(), per_run.loc[got.index].sort_index(), check_dtype=False, rtol=1e-12)
    assert sorted(got.index) == sorted(per_run.index)
    got_items = items.set_index(["run_id", "title"])[["on_screen_share", "off_share", "score", "seconds"]].sort_index()
    pd.testing.assert_frame_equal(got_items, per_item.sort_index(), check_dtype=False, rtol=1e-12)
    assert 3 not in set(items["run_id"])  # no agenda, no items


def test_session_length_is_the_facilitators_not_the_seconds_counted(db_url):
    """One length per session on every page: the researcher's table once showed the seconds it
    counted (2:36) where the facilitator's page showed the session's length (3:00)."""
    with sqlite3.connect(db_path(db_url)) as con:
        con.execute("DELETE FROM class_timeline WHERE run_id = 3 AND second BETWEEN 100 AND 199")
        con.execute("UPDATE runs SET seconds = 0 WHERE id = 3")  # the run's own count lags (live)
    store = queries.open_store(db_url)
    trend = queries.trends(store, queries.Filters()).set_index("run_id")
    assert trend.loc[3, "length"] == queries.run_info(store, 3)["length"] == 900
    assert trend.loc[3, "seconds"] == 800  # what the means stand on, not the length
    # The page's side-by-side table (the two newest sessions by default) says 15:00, as the
    # facilitator's page does, not the 13:20 counted.
    at = _researcher()
    table = at.dataframe[0].value
    assert "15:00" in table.loc[translate("kpi.length", "id")].tolist()
    assert "13:20" not in table.to_string()


LONG = "Studi kasus pelayanan publik"


def test_near_identical_agenda_titles_mapped_per_cohort_count_as_one_item(db_url):
    """"Studi kasus" in one session and "Studi kasus pelayanan publik" in another are two items
    until a researcher maps them; then the trends, the per-item figures and the filter's choices
    read one item, with the same figures as if both had been written alike, and the change is in
    the audit log. Another cohort's titles are untouched."""
    store = queries.open_store(db_url)
    alike = queries.agenda_sessions(store, queries.Filters(agenda_titles=("Studi kasus",)))
    with sqlite3.connect(db_path(db_url)) as con:
        con.execute("UPDATE agenda_items SET title = ? WHERE session_id = 2 AND title = 'Studi kasus'", (LONG,))
        cohorts = dict(con.execute("SELECT id, coalesce(cohort, '') FROM sessions"))
    split = queries.agenda_sessions(store, queries.Filters(agenda_titles=("Studi kasus",)))
    assert len(split) == len(alike) - 1 and LONG in queries.filter_options(store)["titles"]
    services.map_agenda_titles(store, cohorts[2], [LONG], "Studi kasus", "dashboard:peneliti")
    merged = queries.agenda_sessions(store, queries.Filters(agenda_titles=("Studi kasus",)))
    pd.testing.assert_frame_equal(merged, alike)
    assert LONG not in queries.filter_options(store)["titles"]
    trend = queries.trends(store, queries.Filters(agenda_titles=("Studi kasus",)))
    assert trend["run_id"].tolist() == alike["run_id"].tolist()
    entry = [e for e in audit_entries(db_url) if e["action"] == "agenda_changed"][-1]
    assert entry["details"] == {"change": "titles_mapped", "cohort": cohorts[2], "titles": [LONG], "mapped_to": "Studi kasus"}
    # Mapped per cohort: the same title in another cohort's session stays its own item.
    other = next(i for i, c in cohorts.items() if c != cohorts[2])
    with sqlite3.connect(db_path(db_url)) as con:
        con.execute("UPDATE agenda_items SET title = ? WHERE session_id = ? AND title = 'Studi kasus'", (LONG, other))
    assert LONG in queries.filter_options(store)["titles"]
    # Mapping a title to itself takes the mapping back.
    services.map_agenda_titles(store, cohorts[2], [LONG], LONG, "dashboard:peneliti")
    assert len(queries.agenda_sessions(store, queries.Filters(agenda_titles=(LONG,)))) == 2


def test_the_page_maps_titles_and_refuses_an_empty_target(db_url):
    with sqlite3.connect(db_path(db_url)) as con:
        con.execute("UPDATE agenda_items SET title = ? WHERE session_id = 2 AND title = 'Studi kasus'", (LONG,))
        cohort = con.execute("SELECT cohort FROM sessions WHERE id = 2").fetchone()[0]
    at = _researcher()
    at.selectbox(key="map_cohort").set_value(cohort).run()
    at.multiselect(key="map_from").set_value([LONG]).run()
    at.text_input(key="map_to_1").set_value("  ").run()
    at.button(key="map_button").click().run()
    assert at.error and translate("agenda.err_title_empty", "id") in at.error[0].value
    at.text_input(key="map_to_1").set_value("Studi kasus").run()
    at.button(key="map_button").click().run()
    no_failure(at)
    assert [s.value for s in at.success] == [translate("researcher.mapped", "id", n=1, to="Studi kasus")]
    assert LONG not in queries.filter_options(queries.open_store(db_url))["titles"]


def test_date_filters_are_local_calendar_days(db_url):
    store = queries.open_store(db_url)
    with sqlite3.connect(db_path(db_url)) as con:
        # 20:00 UTC on 6 January is 03:00 on 7 January in Jakarta.
        con.execute("UPDATE sessions SET started_at = '2025-01-06 20:00:00.000000' WHERE name = 'sesi-001'")
    jakarta = queries.Filters(date_from=date(2025, 1, 7), date_to=date(2025, 1, 7), tz=zone("Asia/Jakarta"))
    utc = queries.Filters(date_from=date(2025, 1, 7), date_to=date(2025, 1, 7))
    assert queries.trends(store, jakarta)["name"].tolist() == ["sesi-001"]
    assert queries.trends(store, utc).empty
    assert queries.filter_options(store, zone("Asia/Jakarta"))["first"] == date(2025, 1, 7)


# -- the page -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("lang", "month"), [("id", "Agu"), ("en", "Aug")])
def test_date_axis_has_local_month_names_and_day_ticks(db_url, lang, month):
    at = _researcher(lang)
    trend = chart_specs(at)[0]
    x = _layers(trend)[0]["encoding"]["x"]
    assert x["type"] == "temporal" and x["scale"]["type"] == "utc"
    assert month in x["axis"]["labelExpr"] and x["axis"]["tickMinStep"] == 86_400_000
    ticks = x["axis"]["values"]  # one per (local) day, at noon, never hourly
    assert ticks and len(ticks) <= 10 and all(vl_time(v) % 86_400_000 == 43_200_000 for v in ticks)
    tooltip = {t["field"] for t in _layers(trend)[-1]["encoding"]["tooltip"]}
    assert {"people", "on_screen_share_lo", "on_screen_share_hi", "off_share"} <= tooltip


def test_every_aggregate_point_shows_its_n_and_interval(db_url):
    at = _researcher()
    specs = chart_specs(at)
    trend, agenda_lines, agenda_bars = specs[0], specs[1], specs[2]
    assert [layer["mark"]["type"] for layer in _layers(trend)] == ["rule", "circle"]  # interval, then the point
    assert [layer["mark"]["type"] for layer in _layers(agenda_lines)] == ["area", "line"]
    assert [layer["mark"]["type"] for layer in _layers(agenda_bars)] == ["bar", "rule"]
    for spec in (agenda_lines, agenda_bars):
        fields = {t["field"] for layer in _layers(spec) for t in layer["encoding"].get("tooltip", [])}
        assert "people" in fields
    assert "sessions" in {t["field"] for t in _layers(agenda_bars)[0]["encoding"]["tooltip"]}
    table = next(df.value for df in at.dataframe if translate("researcher.interval", "id") in df.value.columns)
    assert all(v == "–" or "%–" in v for v in table[translate("researcher.interval", "id")])


def test_sessions_side_by_side(db_url):
    at = _researcher()
    compare = at.multiselect(key="researcher_compare")
    assert compare.value == ["sesi-002", "sesi-003"]  # the two newest by default
    side = next(df.value for df in at.dataframe if list(df.value.columns) == ["sesi-002", "sesi-003"])
    assert translate("kpi.on_screen", "id") in side.index and side.loc[translate("chart.people", "id")].tolist() == ["8", "8"]
    compare.set_value(["sesi-001", "sesi-002", "sesi-003"]).run()
    no_failure(at)
    spec = next(s for s in chart_specs(at) if s.get("encoding", {}).get("color", {}).get("field") == "name")
    assert spec["encoding"]["x"]["axis"]["format"] == "%-M:%S"  # elapsed time: sessions start at different hours
    colour = spec["encoding"]["color"]
    assert colour["scale"]["range"] == charts.COMPARE_COLOURS and len(set(charts.COMPARE_COLOURS)) == 4
    assert colour["legend"]["labelLimit"] == 0  # session names are never cut off


def test_presence_is_a_percentage_everywhere(db_url):
    at = _researcher()
    values = [m.value for m in at.metric if m.label in (translate("kpi.on_screen", "id"), translate("kpi.cameras_off", "id"))]
    table = next(df.value for df in at.dataframe if translate("kpi.cameras_off", "id") in df.value.columns)
    values += table[translate("kpi.cameras_off", "id")].tolist() + table[translate("kpi.on_screen", "id")].tolist()
    assert values and all(v.endswith("%") for v in values), values
    assert not missing_words(at)


def test_the_score_is_a_measure_to_pick(db_url):
    at = _researcher()
    at.radio(key="researcher_measure").set_value("score").run()
    no_failure(at)
    assert at.subheader[0].value == translate("researcher.trend_score", "id")
    y = _layers(chart_specs(at)[0])[-1]["encoding"]["y"]
    assert y["field"] == "score"


def test_a_measure_hidden_everywhere_by_k_is_an_empty_state_not_a_crash(db_url):
    with sqlite3.connect(db_path(db_url)) as con:
        con.execute("UPDATE class_timeline SET on_screen_share = NULL")
    at = _researcher()
    assert [i.value for i in at.info].count(translate("researcher.no_values", "id")) == 2  # per session, per agenda item
    assert not missing_words(at)


def test_the_download_says_first_which_sessions_have_no_research_consent(db_url):
    # The generator's attestations cover facilitator feedback only; sesi-002 also gets research.
    with sqlite3.connect(db_path(db_url)) as con:
        con.execute(
            "INSERT INTO consent_records (kind, cohort, participant, session_name, attested_by, scope, notice_version,"
            " language, evidence, granted_at, withdrawn_at, created_at) SELECT kind, cohort, participant, session_name,"
            " attested_by, 'research', notice_version, language, evidence, granted_at, NULL, created_at"
            " FROM consent_records WHERE session_name = 'sesi-002'"
        )
    at = _researcher()
    chosen = at.multiselect(key="researcher_download_sessions").value
    assert {"sesi-001", "sesi-002", "sesi-003"} <= set(chosen)
    warning = translate("researcher.no_research_consent", "id", sessions="{x}").split("{x}")[0]
    (said,) = [w.value for w in at.warning if w.value.startswith(warning)]
    assert "sesi-001" in said and "sesi-003" in said and "sesi-002" not in said
    table = next(df.value for df in at.dataframe if translate("researcher.export_kept", "id") in df.value.columns)
    kept = dict(zip(table[translate("chart.session", "id")], table[translate("researcher.export_kept", "id")]))
    left = dict(zip(table[translate("chart.session", "id")], table[translate("researcher.export_left_out", "id")]))
    assert kept["sesi-001"] == "0" and left["sesi-001"] == "8"
    assert kept["sesi-002"] == "8" and left["sesi-002"] == "0"


def test_the_score_histogram_says_it_is_the_models_score_whatever_the_measure(db_url):
    at = _researcher()
    subheaders = [h.value for h in at.subheader]
    assert translate("researcher.histogram", "id") in subheaders
    assert translate("researcher.histogram_help", "id") in [c.value for c in at.caption]
