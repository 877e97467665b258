"""A session's agenda items."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from engagement.core.schema import agenda_items as AG
from engagement.core.schema import agenda_title_map as TM


def add_item(conn: Connection, session_id: int, start_second: int, title: str) -> None:
    conn.execute(insert(AG).values(session_id=session_id, start_second=int(start_second), title=title))


def replace_items(conn: Connection, session_id: int, items: Iterable[tuple[int, str]]) -> None:
    conn.execute(delete(AG).where(AG.c.session_id == session_id))
    rows = [{"session_id": session_id, "start_second": int(start), "title": title} for start, title in items]
    if rows:
        conn.execute(insert(AG), rows)


def delete_item(conn: Connection, item_id: int) -> None:
    conn.execute(delete(AG).where(AG.c.id == item_id))


def items(conn: Connection, session_id: int) -> list[tuple[int, str]]:
    """(start_second, title) of a session's items, in order of start."""
    stmt = select(AG.c.start_second, AG.c.title).where(AG.c.session_id == session_id).order_by(AG.c.start_second, AG.c.id)
    return [(int(s), str(t)) for s, t in conn.execute(stmt)]


def map_titles(conn: Connection, cohort: str, titles: Iterable[str], mapped_to: str) -> None:
    """Count `titles` of `cohort`'s sessions as the item `mapped_to` ("" = no cohort); a title
    mapped to itself is unmapped."""
    for title in titles:
        conn.execute(delete(TM).where(TM.c.cohort == cohort, TM.c.title == title))
        if title != mapped_to:
            conn.execute(insert(TM).values(cohort=cohort, title=title, mapped_to=mapped_to))


def title_map(conn: Connection) -> list[tuple[str, str, str]]:
    """(cohort, title, mapped_to) of every mapped title."""
    return [tuple(r) for r in conn.execute(select(TM.c.cohort, TM.c.title, TM.c.mapped_to).order_by(TM.c.cohort, TM.c.title))]
