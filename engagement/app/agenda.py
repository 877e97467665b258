"""A session's agenda: parse a 'start,title' CSV, add, replace and delete items (the dashboard's
agenda editor and `engagement batch` listings both come through here; the rows are written by
`engagement.core.repositories.agenda`)."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from engagement.core.errors import ConfigError
from engagement.core.repositories import agenda as agenda_rows
from engagement.core.store import Store


def parse_offset(value: str) -> int:
    """'90', '1:30', '95:00' or '0:01:30' -> seconds from the session start."""
    parts = (value or "").strip().split(":")
    if not 1 <= len(parts) <= 3 or not all(p.strip().isdigit() for p in parts):
        raise ConfigError(f"cannot read {value!r} as a time (use seconds, m:ss or h:mm:ss)")
    nums = [int(p) for p in parts]
    if any(n >= 60 for n in nums[1:]) or (len(nums) == 3 and nums[1] >= 60):
        raise ConfigError(f"cannot read {value!r} as a time (use seconds, m:ss or h:mm:ss)")
    total = 0
    for n in nums:
        total = total * 60 + n
    return total


@dataclass(frozen=True)
class AgendaRow:
    start_second: int
    title: str


def parse_agenda_csv(data: str | bytes) -> list[AgendaRow]:
    """A simple CSV 'start,title' (header optional; start in seconds, m:ss or h:mm:ss)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8-sig")
    rows: list[AgendaRow] = []
    sample = data[:2048]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    for i, record in enumerate(csv.reader(io.StringIO(data), dialect)):
        if not record or not any(c.strip() for c in record):
            continue
        if len(record) < 2:
            raise ConfigError(f"line {i + 1}: expected 'start,title'")
        start, title = record[0].strip(), ",".join(record[1:]).strip()
        if i == 0 and not start[:1].isdigit():
            continue  # a header line
        if not title:
            raise ConfigError(f"line {i + 1}: the title is empty")
        try:
            rows.append(AgendaRow(parse_offset(start), title[:300]))
        except ConfigError as exc:
            raise ConfigError(f"line {i + 1}: {exc}") from None
    if not rows:
        raise ConfigError("the file holds no agenda lines ('start,title')")
    return sorted(rows, key=lambda r: r.start_second)


def add_agenda_item(store: Store, session_id: int, start_second: int, title: str) -> None:
    title = title.strip()
    if not title:
        raise ConfigError("the title is empty")
    with store.transaction() as conn:
        agenda_rows.add_item(conn, session_id, start_second, title[:300])


def replace_agenda(store: Store, session_id: int, rows: list[AgendaRow]) -> None:
    """Replace a session's agenda in one transaction (an import never leaves half an agenda)."""
    with store.transaction() as conn:
        agenda_rows.replace_items(conn, session_id, [(r.start_second, r.title) for r in rows])


def delete_agenda_item(store: Store, item_id: int) -> None:
    with store.transaction() as conn:
        agenda_rows.delete_item(conn, item_id)
