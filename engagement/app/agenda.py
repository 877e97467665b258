"""A session's agenda: read an item's start as typed (a clock time or an offset), parse a
'start,title' CSV, add, replace and delete items (the dashboard's agenda editor and
`engagement batch` listings both come through here; the rows are written by
`engagement.core.repositories.agenda`)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from engagement.core.errors import ConfigError
from engagement.core.i18n import fmt_seconds, translate
from engagement.core.repositories import agenda as agenda_rows
from engagement.core.store import Store

DAY_S = 86400
# While a session is still being analysed its length is unknown; items may be planned up to a
# training day ahead (a bound is needed: without one, '0:30' in a class started at 09:00 would
# read as 00:30 tomorrow, 15.5 hours in).
PLAN_AHEAD_S = 8 * 3600


class AgendaInputError(ConfigError):
    """Bad agenda input, carrying its catalogue key so the dashboard can say it in the user's
    language (a half-English "Agenda tidak dapat disimpan: cannot read ..." was what users saw);
    `str()` is the English text the command line prints."""

    def __init__(self, key: str, **values: object) -> None:
        self.key, self.values = key, values
        super().__init__(translate(key, "en", **values))

    def text(self, lang: str) -> str:
        values = {k: (v.text(lang) if isinstance(v, AgendaInputError) else v) for k, v in self.values.items()}
        return translate(self.key, lang, **values)


def _fields(value: str) -> list[int]:
    """'90', '1:30', '0:01:30' -> [90], [1, 30], [0, 1, 30]; an AgendaInputError otherwise."""
    parts = (value or "").strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(p.strip().isdigit() for p in parts):
        raise AgendaInputError("agenda.err_time", value=(value or "").strip())
    nums = [int(p) for p in parts]
    if any(n >= 60 for n in nums[1:]):
        raise AgendaInputError("agenda.err_time", value=value.strip())
    return nums


def parse_offset(value: str) -> int:
    """'90', '1:30', '95:00' or '0:01:30' -> seconds from the session start."""
    total = 0
    for n in _fields(value):
        total = total * 60 + n
    return total


@dataclass(frozen=True)
class SessionSpan:
    """What an agenda start is checked against: the local time of day of the session's second 0
    (None when the recording's wall-clock start is unknown) and its length (None while it is
    still being analysed, when items may be planned ahead)."""

    clock_start_s: int | None
    length_s: int | None

    @property
    def last_s(self) -> int:
        return PLAN_AHEAD_S if self.length_s is None else self.length_s

    def inside(self, second: int) -> bool:
        if self.length_s is None and self.clock_start_s is None:
            return second >= 0  # nothing to check against (a batch listing's agenda): as before
        return 0 <= second <= self.last_s

    def describe(self, second: int) -> str:
        """A second as the page shows it: the time of day when known, else m:ss."""
        if self.clock_start_s is None:
            return fmt_seconds(second)
        return fmt_seconds((self.clock_start_s + second) % DAY_S).zfill(8)


def read_start(value: str, span: SessionSpan) -> int:
    """An item's start as typed -> seconds from the session start.

    '10:15' or '22:43:30' is a time of day when the session's clock start is known and that time
    falls inside the session (past midnight too); otherwise 'm:ss', 'h:mm:ss' or plain seconds
    count from the start, and a leading '+' ('+0:30') always does. A start outside the session is
    refused: stored as an offset, '22:43:30' had put an item 22 hours in and flattened the chart.
    """
    text = (value or "").strip()
    offset_only = text.startswith("+")
    nums = _fields(text.removeprefix("+"))
    if span.clock_start_s is not None and not offset_only and len(nums) >= 2 and nums[0] < 24:
        of_day = nums[0] * 3600 + nums[1] * 60 + (nums[2] if len(nums) == 3 else 0)
        second = (of_day - span.clock_start_s) % DAY_S
        if span.inside(second):
            return second
    second = parse_offset(text.removeprefix("+"))
    if span.inside(second):
        return second
    raise AgendaInputError("agenda.err_outside", value=text, first=span.describe(0), last=span.describe(span.last_s))


@dataclass(frozen=True)
class AgendaRow:
    start_second: int
    title: str


def parse_agenda_csv(data: str | bytes, span: SessionSpan | None = None) -> list[AgendaRow]:
    """A simple CSV 'start,title' (header optional; start as `read_start` reads it)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8-sig")
    span = span or SessionSpan(None, None)
    rows: list[AgendaRow] = []
    try:
        dialect = csv.Sniffer().sniff(data[:2048], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    for i, record in enumerate(csv.reader(io.StringIO(data), dialect)):
        if not record or not any(c.strip() for c in record):
            continue
        start, title = record[0].strip(), ",".join(record[1:]).strip()
        if i == 0 and not start[:1].isdigit() and not start.startswith("+"):
            continue  # a header line
        try:
            if len(record) < 2:
                raise AgendaInputError("agenda.err_columns")
            rows.append(AgendaRow(read_start(start, span), _title(title)))
        except AgendaInputError as exc:
            raise AgendaInputError("agenda.err_line", line=i + 1, detail=exc) from None
    if not rows:
        raise AgendaInputError("agenda.err_no_lines")
    return sorted(rows, key=lambda r: r.start_second)


def _title(title: str) -> str:
    title = (title or "").strip()
    if not title:
        raise AgendaInputError("agenda.err_title_empty")
    return title[:300]


def add_agenda_item(store: Store, session_id: int, start_second: int, title: str) -> None:
    title = _title(title)
    with store.transaction() as conn:
        agenda_rows.add_item(conn, session_id, start_second, title)


def replace_agenda(store: Store, session_id: int, rows: list[AgendaRow]) -> None:
    """Replace a session's agenda in one transaction (an import never leaves half an agenda)."""
    with store.transaction() as conn:
        agenda_rows.replace_items(conn, session_id, [(r.start_second, r.title) for r in rows])


def delete_agenda_item(store: Store, item_id: int) -> None:
    with store.transaction() as conn:
        agenda_rows.delete_item(conn, item_id)


MARK_S = 60  # a mark made during class ("kuis dimulai") lasts a minute


def mark(store: Store, session_id: int, second: int, title: str) -> None:
    """A one-minute item at `second`, then the item that was running resumes (unless another
    starts within the minute): one transaction, so a mark never leaves the agenda half-changed."""
    title = _title(title)
    with store.transaction() as conn:
        items = agenda_rows.items(conn, session_id)
        running = [t for s, t in items if s <= second]
        next_start = min((s for s, _ in items if s > second), default=None)
        agenda_rows.add_item(conn, session_id, second, title)
        if running and (next_start is None or next_start > second + MARK_S):
            agenda_rows.add_item(conn, session_id, second + MARK_S, running[-1])


def map_titles(store: Store, cohort: str | None, titles: list[str], mapped_to: str) -> list[str]:
    """Count `titles` of a cohort's sessions as one agenda item, `mapped_to` (for the researcher's
    trends: "Studi kasus" and "Studi kasus pelayanan publik" are one item). Returns the titles
    mapped; a title mapped to itself is unmapped again."""
    target = _title(mapped_to)
    chosen = [t for t in dict.fromkeys(_title(t) for t in titles)]
    if not chosen:
        raise AgendaInputError("agenda.err_map_none")
    with store.transaction() as conn:
        agenda_rows.map_titles(conn, cohort or "", chosen, target)
    return chosen
