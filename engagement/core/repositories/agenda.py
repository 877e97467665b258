"""A session's agenda items."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from engagement.core.schema import agenda_items as AG


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
