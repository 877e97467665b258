"""Schema v6: `agenda_title_map`, the agenda titles a researcher counts as one item per cohort.

Columns are written out here, not taken from `engagement.core.schema`, so that later changes to a
table never change what this revision does.
"""

from alembic import op
from sqlalchemy import Column, String, inspect

revision = "v6"
down_revision = "v5"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if not inspect(op.get_bind()).has_table("agenda_title_map"):
        op.create_table(
            "agenda_title_map",
            Column("cohort", String(100), primary_key=True),
            Column("title", String(300), primary_key=True),
            Column("mapped_to", String(300), nullable=False),
        )
