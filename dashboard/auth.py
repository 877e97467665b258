"""Dashboard accounts: roles, salted scrypt password hashes, sign-in checks and throttling.

Roles decide which pages a user sees (`PAGES_BY_ROLE` in `dashboard.app`) and which data the
query layer hands out (`can_view_individuals`). The hash parameters travel inside each stored
hash so they can be raised later without breaking existing accounts.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from dashboard import services
from dashboard.addresses import ClientAddress
from engagement.core.errors import ConfigError, EngagementError
from engagement.core.repositories import accounts
from engagement.core.schema import dashboard_users
from engagement.core.store import Store

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
        user_id = accounts.add_account(conn, name, role, hash_password(password))
    return User(int(user_id), name, role)


def authenticate(store: Store, name: str, password: str, *, demo: bool = False) -> User | None:
    """The user when name and password match an enabled account, else None.

    Only the demo account has a password shorter than MIN_PASSWORD (a public one), so outside
    `--demo` (`demo=False`) such a password never signs in, whatever database the demo left it in.
    """
    if len(password) < MIN_PASSWORD and not demo:
        verify_password(password, _DUMMY_HASH)  # same time as a real check
        return None
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
        found = accounts.set_disabled(conn, name, disabled)
    if not found:
        raise AuthError(f"no user named {name!r}")


def has_users(store: Store) -> bool:
    with store.transaction() as conn:
        return conn.execute(select(dashboard_users.c.id).limit(1)).first() is not None


DEMO_USER = DEMO_PASSWORD = "demo"
# The demo's accounts, one per role a newcomer would try: all share the public password, shorter
# than MIN_PASSWORD, so they sign in only on a `--demo` server (`authenticate`).
DEMO_ACCOUNTS: tuple[tuple[str, str], ...] = (
    (DEMO_USER, "facilitator"),
    ("peneliti", "researcher"),
    ("privasi", "privacy_officer"),
)
# Set by `engagement dashboard --demo` for its server: only then may the demo account sign in.
DEMO_ENV = "ENGAGEMENT_DASHBOARD_DEMO"


def ensure_demo_account(store: Store, name: str = DEMO_USER, role: str = "facilitator") -> User | None:
    """A well-known demo account of the offline demo (demo/demo: facilitator); None if it exists.

    Its password is public, so `engagement dashboard --demo` only creates it when the server
    listens on the loopback address (nobody else can reach it)."""
    with store.transaction() as conn:
        if conn.execute(select(dashboard_users.c.id).where(dashboard_users.c.name == name)).first():
            return None
    return create_user(store, name, role, DEMO_PASSWORD, _demo=True)


def ensure_demo_accounts(store: Store) -> list[User]:
    """Every account of `DEMO_ACCOUNTS` that did not exist yet, created."""
    created = [ensure_demo_account(store, name, role) for name, role in DEMO_ACCOUNTS]
    return [user for user in created if user is not None]


def can_view_individuals(role: str) -> bool:
    """Roles that may open individual lanes at all (the run's profile must allow it too)."""
    return role in ("facilitator", "admin")


_DUMMY_HASH = "scrypt$16384$8$1$" + "00" * 16 + "$" + "00" * 32


# -- throttling --------------------------------------------------------------------------------


@dataclass
class _Bucket:
    failures: list[float] = field(default_factory=list)  # times of failures in the current window
    locks: int = 0  # locks so far: each one lasts twice as long as the one before
    locked_until: float = 0.0
    last_failure: float = 0.0


@dataclass(frozen=True)
class Lock:
    scope: str  # "account" or "address"
    seconds: int


class SignInThrottle:
    """Per-account and per-address lockout with a growing period.

    After `max_failures` failed sign-ins within `window_s` (per account; `address_max_failures`
    per client address, which people behind one proxy share), that account or address is locked
    for `lock_s`, twice as long at each further lock, at most `max_lock_s`. A successful sign-in
    clears its account's record; an address's record is forgotten a day after its last failure.
    Kept in the server's memory: it holds raw addresses and typed names (hashed) for no longer
    than it needs them, and nothing of it is written to disk. `clock` is injectable for tests.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        max_failures: int = 5,
        address_max_failures: int = 20,
        window_s: float = 15 * 60,
        lock_s: float = 5 * 60,
        max_lock_s: float = 24 * 3600,
    ) -> None:
        self.clock = clock
        self.limits = {"account": max_failures, "address": address_max_failures}
        self.window_s, self.lock_s, self.max_lock_s = window_s, lock_s, max_lock_s
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._mutex = threading.Lock()  # Streamlit runs each browser session in its own thread

    @staticmethod
    def _keys(name: str, address: str | None) -> list[tuple[str, str]]:
        # A name field may hold a mistyped password: only a digest of it is kept, even in memory.
        digest = hashlib.sha256(name.strip().casefold().encode("utf-8")).hexdigest()
        return [("account", digest), ("address", address or "unknown")]

    def wait_s(self, name: str, address: str | None) -> float:
        """Seconds until `name` may try again from `address` (0 when not locked)."""
        now = self.clock()
        with self._mutex:
            buckets = [self._buckets.get(k) for k in self._keys(name, address)]
            return max([b.locked_until - now for b in buckets if b is not None] + [0.0])

    def failure(self, name: str, address: str | None) -> list[Lock]:
        """Count a failed sign-in; returns the locks it started (for the audit log)."""
        now = self.clock()
        started = []
        with self._mutex:
            self._forget_stale(now)
            for key in self._keys(name, address):
                bucket = self._buckets.setdefault(key, _Bucket())
                bucket.last_failure = now
                bucket.failures = [t for t in bucket.failures if now - t < self.window_s] + [now]
                if len(bucket.failures) >= self.limits[key[0]]:
                    seconds = min(self.lock_s * 2**bucket.locks, self.max_lock_s)
                    bucket.locks += 1
                    bucket.locked_until = now + seconds
                    bucket.failures = []
                    started.append(Lock(key[0], int(seconds)))
        return started

    def success(self, name: str) -> None:
        with self._mutex:
            self._buckets.pop(self._keys(name, None)[0], None)

    def _forget_stale(self, now: float) -> None:
        stale = [k for k, b in self._buckets.items() if now - b.last_failure > self.max_lock_s and now >= b.locked_until]
        for key in stale:
            del self._buckets[key]


@dataclass(frozen=True)
class SignInResult:
    user: User | None
    wait_s: float = 0.0  # > 0: refused without checking, the account or address is locked


def sign_in(
    store: Store, throttle: SignInThrottle, name: str, password: str, client: ClientAddress | str | None, *,
    demo: bool = False,
) -> SignInResult:
    """Check a sign-in under the throttle and audit it.

    The actor of a failed attempt is the account when the name is one, else "dashboard:unknown":
    a name that is no account may be a password typed into the wrong field, so it is never logged.
    The entry names the client's address, and the socket's beside a forwarded one.
    """
    if not isinstance(client, ClientAddress):
        client = ClientAddress(client or "unknown", client or "unknown")
    address = client.address
    name = name.strip()
    wait = throttle.wait_s(name, address)
    if wait > 0:
        return SignInResult(None, wait)
    user = authenticate(store, name, password, demo=demo)
    if user is not None:
        throttle.success(name)
        services.audit(store, services.SIGN_IN, f"dashboard:{user.name}", {"role": user.role, **client.audit_details()})
        return SignInResult(user)
    locks = throttle.failure(name, address)
    details: dict = client.audit_details()
    if locks:
        details["locked"] = [{"scope": lock.scope, "seconds": lock.seconds} for lock in locks]
    actor = f"dashboard:{name}" if _account_exists(store, name) else "dashboard:unknown"
    services.audit(store, services.SIGN_IN_FAILED, actor, details)
    return SignInResult(None, throttle.wait_s(name, address))


def _account_exists(store: Store, name: str) -> bool:
    if not _NAME_RE.match(name):
        return False
    with store.transaction() as conn:
        return conn.execute(select(dashboard_users.c.id).where(dashboard_users.c.name == name)).first() is not None
