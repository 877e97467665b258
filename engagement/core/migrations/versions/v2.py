"""Schema v2: who writes a run (dead writers are reaped), the attention signals, the analysed
file's sha256, and the dashboard's covering indexes (created by the dashboard before v2 was
declared in the schema; the first version of the timeline index lacked the attention columns).

Columns are written out here, not taken from `engagement.core.schema`, so that later changes to a
table never change what this revision does.
"""

from sqlalchemy import Column, Float, Integer, String

from engagement.core.migrations.ops import add_columns, create_index, drop_index

revision = "v2"
down_revision = "v1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    add_columns("runs", Column("writer_pid", Integer), Column("writer_host", String(64)), Column("source_sha256", String(64)))
    add_columns(
        "window_features",
        Column("on_screen_ratio", Float), Column("eyes_closed_ratio", Float), Column("attention", String(16)),
    )
    add_columns("class_timeline", Column("n_judged", Integer), Column("on_screen_share", Float), Column("n_absent", Integer))
    drop_index("ix_dash_timeline_cover", "class_timeline")
    create_index(
        "ix_dash_timeline_cover2", "class_timeline",
        ["run_id", "second", "score", "n_present", "n_tracked", "suppressed", "n_judged", "on_screen_share", "n_absent"],
    )
    create_index("ix_dash_window_attention", "window_features", ["run_id", "second", "track_id", "attention", "on_screen_ratio"])
    create_index("ix_dash_agenda_session", "agenda_items", ["session_id", "start_second"])
    create_index("ix_dash_alerts_run", "alerts", ["run_id", "start_second"])
    create_index("ix_dash_runs_session", "runs", ["session_id", "status", "id"])
