"""Schema v4: the fatigue signals (docs/attention.md). Per participant and second in
`window_features`, per second for the class in `class_timeline`; all nullable, so older runs read
as not measured.

Columns are written out here, not taken from `engagement.core.schema`, so that later changes to a
table never change what this revision does.
"""

from sqlalchemy import Column, Float, Integer

from engagement.core.migrations.ops import add_columns

revision = "v4"
down_revision = "v3"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_columns(
        "window_features",
        Column("yawn", Integer), Column("perclos", Float), Column("long_closures", Integer),
        Column("blink_rate", Float), Column("blink_ms", Float), Column("smile", Integer),
    )
    add_columns(
        "class_timeline",
        Column("n_seen", Integer), Column("n_yawns", Integer), Column("perclos_share", Float), Column("smile_share", Float),
    )
