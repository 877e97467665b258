"""Schema v5: a covering index for the researcher's sampled per-person scores (the 95 % intervals
of the engagement score read run, second, track and score only; from the table rows, written
person by person, each sample cost a page read of its own).

Columns are written out here, not taken from `engagement.core.schema`, so that later changes to a
table never change what this revision does.
"""

from engagement.core.migrations.ops import create_index

revision = "v5"
down_revision = "v4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_index("ix_dash_estimates_score", "engagement_estimates", ["run_id", "second", "track_id", "score"])
