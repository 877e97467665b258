"""Schema v1, the first release.

Databases of v1 were made before migrations ran on alembic; they are stamped here and upgraded
from here. Revision identifiers: "v<schema version>".
"""

revision = "v1"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing: the first release's tables are the starting point (tests/fixtures/schema_v1.sql)."""
