"""Helpers every page shares: the store, the signed-in user, role guards, empty states.

Kept apart from the pages so each page file reads as layout only.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import streamlit as st

from dashboard import auth, queries
from dashboard.i18n import t
from engagement.config import default_db_url
from engagement.store import Store

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


def client_address() -> str:
    """The browser's address for the sign-in throttle. Streamlit gives None on a loopback
    connection (and no text outside a real server): those share the key "loopback"."""
    address = st.context.ip_address
    return address if isinstance(address, str) and address else "loopback"


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


def pct(value: float | None) -> str:
    return "–" if value is None or value != value else f"{value:.0%}"


def num(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or value != value else f"{value:.{digits}f}"
