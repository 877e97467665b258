"""Agenda starts as a facilitator types them: a clock time ('10:15', '22:43:30') or time since the
start ('0:30', '+0:30'), refused outside the session, with messages wholly in one language."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from dashboard import queries
from engagement.app.agenda import AgendaInputError, SessionSpan, parse_agenda_csv, read_start

NINE = 9 * 3600  # a class that started at 09:00 local time
TWO_HOURS = SessionSpan(NINE, 7200)


@pytest.mark.parametrize(
    ("typed", "second"),
    [
        ("10:15", 4500),  # a clock time inside 09:00-11:00
        ("10:15:30", 4530),
        ("09:00", 0),
        ("0:30", 30),  # 00:30 is not in the session: thirty seconds in
        ("+0:30", 30),  # '+' always counts from the start
        ("1:30:00", 5400),  # 01:30 is not in the session: an hour and a half in
        ("90", 90),
        ("+10:15", 615),
    ],
)
def test_clock_times_and_offsets_are_both_read(typed, second):
    assert read_start(typed, TWO_HOURS) == second


def test_a_clock_time_past_midnight_counts_from_the_start():
    assert read_start("00:10", SessionSpan(23 * 3600 + 1800, 3600)) == 40 * 60


def test_without_a_known_start_only_offsets_are_read():
    span = SessionSpan(None, 3600)
    assert read_start("15:00", span) == 900
    with pytest.raises(AgendaInputError):
        read_start("22:43:30", span)


def test_a_live_session_takes_items_planned_ahead_but_not_tomorrow():
    live = SessionSpan(NINE, None)
    assert read_start("15:00", live) == 6 * 3600  # this afternoon
    assert read_start("0:30", live) == 30  # not 00:30 tomorrow


@pytest.mark.parametrize("typed", ["22:43:30", "08:59:30", "11:00:01", "+2:00:01"])
def test_a_start_outside_the_session_is_refused_in_each_language(typed):
    with pytest.raises(AgendaInputError) as caught:
        read_start(typed, TWO_HOURS)
    exc = caught.value
    assert exc.key == "agenda.err_outside"
    assert "09:00:00–11:00:00" in exc.text("id") and "di luar sesi" in exc.text("id")
    assert "outside the session" in exc.text("en") and str(exc) == exc.text("en")


@pytest.mark.parametrize("typed", ["soon", "", "10:75", "1:2:3:4", "-5"])
def test_an_unreadable_time_says_so_wholly_in_indonesian(typed):
    with pytest.raises(AgendaInputError) as caught:
        read_start(typed, TWO_HOURS)
    text = caught.value.text("id")
    assert "tidak terbaca sebagai waktu" in text
    assert not re.search(r"\b(cannot|read|use|time|seconds)\b", text), text


def test_a_bad_csv_line_is_named_in_the_users_language():
    with pytest.raises(AgendaInputError) as caught:
        parse_agenda_csv("0:00,Pembukaan\nsoon,Materi\n", TWO_HOURS)
    assert caught.value.text("id").startswith("baris 2: «soon» tidak terbaca")
    assert caught.value.text("en").startswith("line 2: 'soon' cannot be read")
    with pytest.raises(AgendaInputError) as caught:
        parse_agenda_csv("0:00,\n", TWO_HOURS)
    assert caught.value.text("id") == "baris 1: judul butir kosong."


def test_a_csv_takes_clock_times_too_and_refuses_items_past_the_end():
    rows = parse_agenda_csv("mulai,judul\n09:00,Pembukaan\n09:30,Materi\n+1:30:00,Penutup\n", TWO_HOURS)
    assert [r.start_second for r in rows] == [0, 1800, 5400]
    with pytest.raises(AgendaInputError, match="line 2"):
        parse_agenda_csv("09:00,Pembukaan\n22:43:30,Kuis\n", TWO_HOURS)


def test_items_stored_past_the_end_are_left_out_of_charts_and_the_last_one_ends_with_the_session():
    stored = pd.DataFrame({"id": [1, 2, 3], "start_second": [0, 600, 81810], "end_second": [600, 81810, None],
                           "title": ["Pembukaan", "Materi", "Kuis"]})
    kept = queries.agenda_within(stored, 900)
    assert kept["title"].tolist() == ["Pembukaan", "Materi"]
    assert kept["end_second"].tolist() == [600, 900]


def test_without_a_start_or_a_length_any_offset_is_kept_as_before():
    # A batch listing's agenda is read before its recording is: nothing to check it against.
    rows = parse_agenda_csv("0:00,Pembukaan\n9:30:00,Penutup\n")
    assert [r.start_second for r in rows] == [0, 34200]
