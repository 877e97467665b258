"""The dashboard's query layer: every statement the pages run for data lives in this package
(sign-in account lookups stay with `dashboard.auth`; writes go through `engagement.core.repositories`).

Aggregation happens in the database (GROUP BY over bucketed seconds, window functions for
agenda segments), so a page never pulls per-second rows of a whole session into Python. All
statements are SQLAlchemy Core so the same code serves SQLite and PostgreSQL. Functions return
pandas DataFrames (empty, with the right columns, when there is nothing) or plain dicts.

Reads only: the tables and their indexes are declared in `engagement.core.schema`, and every write
goes through `engagement.core.repositories`. Pages use `from dashboard import queries` and the names
below (re-exported here); the modules hold one area each.
"""

from __future__ import annotations

from dashboard.queries.base import VISIBLE_STATUSES
from dashboard.queries.facilitator import (
    ATTENTION_STATES,
    agenda,
    agenda_at,
    agenda_scores,
    agenda_within,
    alerts,
    attention_distribution,
    class_timeline,
    individual_lanes,
    level_distribution,
    score_band,
    session_stats,
    timeline_points,
    track_label_of,
)
from dashboard.queries.privacy_views import AuditFilter, audit_actors, audit_log, participant_data, purge_receipts
from dashboard.queries.researcher import (
    MEASURES,
    SAMPLE_POINTS,
    Filters,
    agenda_sessions,
    agenda_titles,
    filter_options,
    person_means,
    researcher_figures,
    score_histogram,
    trends,
)
from dashboard.queries.sessions import MAX_POINTS, bucket_for, list_sessions, run_info
from engagement.core.store import Store


def open_store(url: str) -> Store:
    """Open (and create if needed) the results database; an older one gains the dashboard's
    indexes with the schema upgrade."""
    return Store.open(url)
