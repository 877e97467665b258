"""Dashboard accounts: roles, salted scrypt password hashes, sign-in checks.

Roles decide which pages a user sees (`PAGES_BY_ROLE` in `dashboard.app`) and which data the
query layer hands out (`can_view_individuals`). The hash parameters travel inside each stored
hash so they can be raised later without breaking existing accounts.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import insert, select, update

from dashboard.tables import dashboard_users
from engagement.errors import ConfigError, EngagementError
from engagement.store import Store

ROLES: tuple[str, ...] = ("facilitator", "researcher", "privacy_officer", "admin")

# scrypt cost: n=2**14, r=8 -> 16 MiB and ~50 ms per check here; slow enough to blunt guessing,
# fast enough that a sign-in does not feel stuck on a 2-core machine.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1
_NAME_RE = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 8


class AuthError(EngagementError):
    """A user cannot be created or signed in (bad name, role or password)."""


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str


def hash_password(password: str) -> str:
    """A salted scrypt hash of `password`, with its parameters, as one text value."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches `stored` (constant-time comparison)."""
    try:
        kind, n, r, p, salt_hex, digest_hex = stored.split("$")
        if kind != "scrypt":
            return False
        digest = hashlib.scrypt(
            password.encode("utf-8"),
            salt=bytes.fromhex(salt_hex),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(digest_hex) // 2,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest.hex(), digest_hex)


def create_user(store: Store, name: str, role: str, password: str, *, _demo: bool = False) -> User:
    """Add an account; refuses duplicate names, unknown roles and short passwords."""
    if not _NAME_RE.match(name or ""):
        raise AuthError("a user name is 1-64 letters, digits or . _ @ -")
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD and not _demo:
        raise AuthError(f"the password must be at least {MIN_PASSWORD} characters")
    with store.transaction() as conn:
        if conn.execute(select(dashboard_users.c.id).where(dashboard_users.c.name == name)).first():
            raise AuthError(f"a user named {name!r} already exists")
        user_id = conn.execute(
            insert(dashboard_users).values(
                name=name,
                role=role,
                password_hash=hash_password(password),
                created_at=datetime.now(timezone.utc),
                disabled=0,
            )
        ).inserted_primary_key[0]
    return User(int(user_id), name, role)


def authenticate(store: Store, name: str, password: str) -> User | None:
    """The user when name and password match an enabled account, else None."""
    with store.transaction() as conn:
        row = conn.execute(
            select(dashboard_users).where(dashboard_users.c.name == name, dashboard_users.c.disabled == 0)
        ).first()
    if row is None:
        # Spend the same time as a real check so response time does not reveal which names exist.
        verify_password(password, _DUMMY_HASH)
        return None
    if not verify_password(password, row.password_hash):
        return None
    return User(int(row.id), row.name, row.role)


def list_users(store: Store) -> list[dict]:
    """Accounts without their hashes, for the admin page and the CLI."""
    with store.transaction() as conn:
        rows = conn.execute(
            select(
                dashboard_users.c.name,
                dashboard_users.c.role,
                dashboard_users.c.created_at,
                dashboard_users.c.disabled,
            ).order_by(dashboard_users.c.name)
        ).all()
    return [dict(r._mapping) for r in rows]


def set_disabled(store: Store, name: str, disabled: bool) -> None:
    with store.transaction() as conn:
        result = conn.execute(
            update(dashboard_users).where(dashboard_users.c.name == name).values(disabled=int(disabled))
        )
    if result.rowcount == 0:
        raise AuthError(f"no user named {name!r}")


def has_users(store: Store) -> bool:
    with store.transaction() as conn:
        return conn.execute(select(dashboard_users.c.id).limit(1)).first() is not None


DEMO_USER = DEMO_PASSWORD = "demo"


def ensure_demo_account(store: Store) -> User | None:
    """The well-known demo/demo facilitator account of the offline demo; None if it exists.

    Its password is public, so `engagement dashboard --demo` only creates it when the server
    listens on the loopback address (nobody else can reach it)."""
    with store.transaction() as conn:
        if conn.execute(select(dashboard_users.c.id).where(dashboard_users.c.name == DEMO_USER)).first():
            return None
    return create_user(store, DEMO_USER, "facilitator", DEMO_PASSWORD, _demo=True)


def can_view_individuals(role: str) -> bool:
    """Roles that may open individual lanes at all (the run's profile must allow it too)."""
    return role in ("facilitator", "admin")


_DUMMY_HASH = "scrypt$16384$8$1$" + "00" * 16 + "$" + "00" * 32
