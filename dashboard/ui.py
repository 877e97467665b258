"""Helpers every page shares: the store, the signed-in user, role guards, empty states.

Kept apart from the pages so each page file reads as layout only.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import altair as alt
import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from dashboard import addresses, auth, queries, services
from dashboard.page_text import current_lang, t
from engagement.core.config import default_db_url
from engagement.core.errors import EngagementError
from engagement.core.i18n import catalogue
from engagement.core.store import Store

log = logging.getLogger("engagement.dashboard")

# Which roles may open which page (by page file stem). Admin sees everything: it is the account
# that sets the others up and must be able to check what each of them sees.
PAGE_ROLES: dict[str, tuple[str, ...]] = {
    "facilitator": ("facilitator", "admin"),
    "researcher": ("researcher", "admin"),
    "privacy_consent": ("privacy_officer", "admin"),
    "privacy_retention": ("privacy_officer", "admin"),
    "privacy_audit": ("privacy_officer", "admin"),
    "privacy_requests": ("privacy_officer", "admin"),
    "users": ("admin",),
}


@dataclass(frozen=True)
class SignedIn:
    name: str
    role: str

    @property
    def actor(self) -> str:
        # Audit actors are staff accounts, prefixed so they never look like a participant.
        return f"dashboard:{self.name}"


@st.cache_resource(show_spinner=False)
def _store(url: str) -> Store:
    return queries.open_store(url)


def db_url() -> str:
    return os.environ.get("ENGAGEMENT_DB") or default_db_url()


def store() -> Store:
    """The process-wide store for the configured database (opened once, shared by sessions)."""
    return _store(db_url())


@st.cache_resource(show_spinner=False)
def sign_in_throttle() -> auth.SignInThrottle:
    """One throttle per server process, shared by every browser session."""
    return auth.SignInThrottle()


def client_address() -> addresses.ClientAddress:
    """The browser's address for the sign-in throttle. Streamlit gives None on a loopback
    connection (and no text outside a real server): those share the key "loopback". A
    forwarded address counts only from a proxy the operator trusts (`dashboard.addresses`)."""
    socket_ip = st.context.ip_address
    socket_ip = socket_ip if isinstance(socket_ip, str) and socket_ip else None
    headers = st.context.headers
    forwarded = headers.get_all("X-Forwarded-For") if hasattr(headers, "get_all") else []
    return addresses.resolve(socket_ip, list(forwarded), addresses.trusted_proxies())


# Idle sign-out: a tab left open is signed out after this many minutes without a click
# (`engagement dashboard --idle-timeout`, carried to the server in this variable).
IDLE_ENV = "ENGAGEMENT_DASHBOARD_IDLE_MINUTES"
DEFAULT_IDLE_MINUTES = 30


def idle_minutes() -> int:
    raw = os.environ.get(IDLE_ENV, "").strip()
    return int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_IDLE_MINUTES


def idle_expired() -> bool:
    """More than `idle_minutes()` since the user's last action (a timer's rerun is no action)."""
    last = st.session_state.get("last_active")
    return isinstance(last, (int, float)) and time.time() - last > idle_minutes() * 60


@st.fragment(run_every=60)
def idle_watch() -> None:
    """A tab left open is signed out within a minute of its idle time, not at its next click:
    this timer reruns the whole page once the time is up, which then signs the user out."""
    if idle_expired():
        st.rerun(scope="app")


def sign_out_if_idle(store: Store, who: SignedIn | None) -> SignedIn | None:
    """Every run of the page is the user's activity: sign them out (audited) when the last one
    was more than `idle_minutes()` ago. Returns who is still signed in."""
    now = time.time()
    last = st.session_state.get("last_active")
    st.session_state["last_active"] = now
    if who is None or not isinstance(last, (int, float)) or now - last <= idle_minutes() * 60:
        return who
    try:
        services.audit(store, services.SIGN_OUT, who.actor,
                       {"role": who.role, "reason": "idle", "idle_minutes": idle_minutes()})
    finally:
        st.session_state.pop("user", None)
    st.session_state["signed_out_idle"] = idle_minutes()
    return None


def demo_mode() -> bool:
    """True on a server started by `engagement dashboard --demo` (its own demo database)."""
    return os.environ.get(auth.DEMO_ENV) == "1"


def user() -> SignedIn | None:
    data = st.session_state.get("user")
    return SignedIn(**data) if data else None


def allowed(page: str, role: str) -> bool:
    return role in PAGE_ROLES.get(page, ())


def require(page: str) -> SignedIn:
    """Stop the page unless the signed-in user's role may see it (a second lock behind
    st.navigation, which only lists allowed pages)."""
    who = user()
    if who is None or not allowed(page, who.role):
        st.error(t("auth.not_allowed"))
        st.stop()
    return who


def empty_state(message_key: str, hint_key: str | None = None, **values: object) -> None:
    """An empty state that says what to do next."""
    st.info(t(message_key, **values))
    if hint_key:
        st.code(t(hint_key, **values), language="bash")


MISSING = "–"  # shown for every missing value: never "None", "nan" or "NaT"


def text(value: object) -> str:
    """A value for display, a dash when missing."""
    return MISSING if value is None or value is pd.NaT or value != value else str(value)


def readable(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of a table for display with a dash in every missing cell."""
    out = df.copy()
    for column in out.columns:
        if out[column].isna().any():
            out[column] = [text(v) for v in out[column]]
    return out


def section(render: Callable[[], None]) -> None:
    """Run one part of a page so that its failure is a calm message and the rest still renders
    (the agenda editor must stay usable whatever the overview above it meets)."""
    try:
        render()
    except ScriptControlException:
        raise  # st.rerun / st.stop are control flow, not errors
    except EngagementError as exc:
        st.error(t("error.action", detail=str(exc)))
    except Exception:  # noqa: BLE001 - the operator gets the trace in the log, the user a message
        log.exception("dashboard section failed")
        st.error(t("error.unexpected"))


def pct(value: float | None) -> str:
    return MISSING if value is None or value != value else f"{value:.0%}"


# d3's number format as Indonesian writes numbers (comma decimals, dot thousands): chart
# tooltips and axes read "0,52" and "1.234" in the Indonesian UI, like the tables.
ID_NUMBERS = {"decimal": ",", "thousands": ".", "grouping": [3], "currency": ["Rp", ""]}


def chart(spec) -> None:
    """An Altair chart across the page's width, its numbers written in the page's language."""
    if current_lang() == "id":
        spec = spec.configure(locale=alt.Locale(number=ID_NUMBERS))
    st.altair_chart(spec, width="stretch")


def duration(seconds: float | None) -> str:
    """A length of time in words ("21 mnt 51 dtk"): beside clock-time columns, "21:51" read as
    a time of day."""
    if seconds is None or seconds != seconds:
        return MISSING
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    if h:
        return t("unit.duration_hm", h=h, m=m)
    return t("unit.duration_ms", m=m, s=s) if m else t("unit.duration_s", s=s)


def num(value: float | None, digits: int = 2) -> str:
    """A number with `digits` decimals, written as the reader's language writes it (0,52 in
    Indonesian, 0.52 in English)."""
    if value is None or value != value:
        return MISSING
    text = f"{value:.{digits}f}"
    return text.replace(".", ",") if current_lang() == "id" else text


# What each count of a purge, erasure or withdrawal is about, in words (never a table name).
COUNT_KEYS = (
    "window_features", "engagement_estimates", "tracks", "unconsented_tracks", "class_timeline", "alerts", "runs",
    "audit_log", "purge_receipts", "consents_ended", "class_timeline_recomputed",
)


def count_label(key: str) -> str:
    return t(f"data.{key}") if key in COUNT_KEYS else t("data.other")


# Streamlit's multiselect offers an English "Select all" entry that no argument translates; it
# can be turned off (Streamlit >= 1.65). Passed to every multiselect as `**NO_SELECT_ALL`; on an
# older Streamlit the entry does not exist and there is nothing to pass.
NO_SELECT_ALL = {"select_all": False} if "select_all" in inspect.signature(st.multiselect).parameters else {}


def counts_table(counts: dict[str, int]) -> pd.DataFrame:
    """A purge/erasure receipt's counts as a two-column table a reader understands."""
    return pd.DataFrame({t("purge.table"): [count_label(k) for k in counts], t("purge.rows"): list(counts.values())})


def term(prefix: str, value: object) -> str:
    """A stored code (a scope, trigger, kind, action) in words from the catalogue; a code the
    catalogue does not know yet shows as itself rather than as a catalogue key."""
    if value is None or value != value:
        return MISSING
    key = f"{prefix}.{value}"
    return t(key) if key in catalogue(current_lang()) else str(value)


def period_text(period: str) -> str:
    """A retention period as written in the policy ("30d", "12h") in words ("30 hari")."""
    number, unit = period[:-1], period[-1:]
    return t("period.days", n=number) if unit == "d" else t("period.hours", n=number) if unit == "h" else period


def interval(lo: float | None, hi: float | None, field: str) -> str:
    """A 95 % interval as 'lo–hi' in the field's own unit (percent for shares)."""
    if lo is None or hi is None or lo != lo or hi != hi:
        return MISSING
    return f"{pct(lo)}–{pct(hi)}" if field != "score" else f"{num(lo)}–{num(hi)}"
