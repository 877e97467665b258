"""Steps for revisions that add only what is missing, so a revision can run on a database that
already has part of it (a file written before migrations ran on alembic replays its revision).

A change that is not an addition (a renamed column, a new NOT NULL column without a default)
is written with alembic's own `op` in its revision, after a check of what is there."""

from __future__ import annotations

from alembic import op
from sqlalchemy import Column, inspect

from engagement.core.errors import StoreError


def add_columns(table: str, *columns: Column) -> None:
    """Add each column the table lacks; refuses one that ALTER TABLE cannot add to filled rows."""
    have = {c["name"] for c in inspect(op.get_bind()).get_columns(table)}
    for column in columns:
        if column.name in have:
            continue
        if column.primary_key or column.unique or (not column.nullable and column.server_default is None):
            raise StoreError(
                f"cannot upgrade the database: the new column {table}.{column.name} needs a "
                "hand-written migration step (it is a key, unique, or NOT NULL without a default)"
            )
        op.add_column(table, column)


def create_index(name: str, table: str, columns: list[str]) -> None:
    if name not in {i["name"] for i in inspect(op.get_bind()).get_indexes(table)}:
        op.create_index(name, table, columns)


def drop_index(name: str, table: str) -> None:
    if name in {i["name"] for i in inspect(op.get_bind()).get_indexes(table)}:
        op.drop_index(name, table_name=table)
