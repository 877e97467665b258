"""`engagement dashboard`: serve the Streamlit dashboard on http://127.0.0.1:8501, and manage
its accounts (`engagement dashboard users add NAME --role ROLE`)."""

from __future__ import annotations

import enum
import errno
import getpass
import os
import socket
import sys
import threading
import tomllib
from pathlib import Path
from typing import Annotated

import typer

# dashboard.auth, .clock, .queries and .services (pandas, the query layer) are imported by the
# functions that use them: every `engagement` command builds this command group, and
# `engagement analyze` on a short clip would otherwise spend about half a second importing them.
import dashboard
from engagement.app.demo import DEMO_SESSION, demo_db_url
from engagement.app.reaper import reap_and_report
from engagement.cli.analysis import analyze
from engagement.cli.common import command, group, option, say
from engagement.core.config import default_db_url, has_display
from engagement.core.errors import ConfigError
from engagement.core.store import safe_url
from privacy.audit import resolve_actor
from privacy.retention import startup_purge

# The Streamlit script and its settings ship in the dashboard package (only its __init__ is imported here).
APP = Path(dashboard.__file__).resolve().parent / "app.py"
CONFIG = APP.parent / ".streamlit" / "config.toml"
DEFAULT_PORT = 8501


class Role(str, enum.Enum):
    facilitator = "facilitator"
    researcher = "researcher"
    privacy_officer = "privacy_officer"
    admin = "admin"


UsersDb = Annotated[str | None, option("--db", metavar="URL", key="cli.dashboard.opt_users_db")]


def register(app: typer.Typer) -> None:
    dashboard = group("dashboard", invoke_without_command=True)
    dashboard.callback()(dashboard_command)
    users = group("users", key="dashboard.users")
    command(users, "add", users_add, "cli.dashboard.users_add")
    command(users, "list", users_list, "cli.dashboard.users_list")
    dashboard.add_typer(users)
    app.add_typer(dashboard)


def dashboard_command(
    ctx: typer.Context,
    db: Annotated[str | None, option("--db", metavar="URL", key="cli.dashboard.opt_db")] = None,
    port: Annotated[
        int, typer.Option("--port", help=say("cli.dashboard.opt_port", port=DEFAULT_PORT), show_default=False)
    ] = DEFAULT_PORT,
    address: Annotated[str, option("--address", key="cli.dashboard.opt_address")] = "127.0.0.1",
    demo: Annotated[bool, option("--demo", key="cli.dashboard.opt_demo")] = False,
    session: Annotated[str | None, option("--session", metavar="NAME", key="cli.dashboard.opt_session")] = None,
    timezone: Annotated[str | None, option("--timezone", metavar="ZONE", key="cli.dashboard.opt_timezone")] = None,
    trusted_proxy: Annotated[
        list[str] | None, option("--trusted-proxy", metavar="ADDRESS", key="cli.dashboard.opt_trusted_proxy")
    ] = None,
    idle_timeout: Annotated[int, option("--idle-timeout", metavar="MINUTES", key="cli.dashboard.opt_idle_timeout")] = 30,
) -> int | None:
    if ctx.invoked_subcommand is not None:
        ctx.obj = {"db": db}  # `dashboard --db URL users list` names the database before the action
        return None
    if not 1 <= idle_timeout <= 1440:
        raise ConfigError(say("cli.dashboard.bad_idle_timeout", got=idle_timeout))
    os.environ["ENGAGEMENT_DASHBOARD_IDLE_MINUTES"] = str(idle_timeout)
    return serve(db=db, port=port, address=address, demo=demo, session=session, timezone=timezone,
                 trusted_proxies=trusted_proxy or [])


def _url(ctx: typer.Context, db: str | None) -> str:
    return db or (ctx.obj or {}).get("db") or default_db_url()


def serve(*, db: str | None, port: int, address: str, demo: bool, session: str | None, timezone: str | None,
          trusted_proxies: list[str] = ()) -> int:
    """Check the port and the database, run the start-up purge, then serve in this process.

    Streamlit runs in-process (no child): SIGTERM/SIGINT stop it through its own handlers and a
    SIGKILL leaves nothing behind to hold the port.
    """
    from dashboard import queries
    from dashboard.addresses import parse_trusted
    from dashboard.clock import TZ_ENV, zone

    if not 1 <= port <= 65535:
        raise ConfigError(say("cli.dashboard.bad_port", got=port))
    trusted = ",".join(trusted_proxies)
    parse_trusted(trusted)  # a malformed address is one error line before anything starts
    if timezone:
        zone(timezone)  # an unknown name is one error line before anything starts
        os.environ[TZ_ENV] = timezone
    if demo:
        if address not in LOOPBACK:
            raise ConfigError(say("cli.dashboard.demo_loopback"))
        if db:
            raise ConfigError(say("cli.dashboard.demo_db"))
        url = demo_db_url()
    else:
        url = db or default_db_url()
    _check_port_free(address, port)
    if demo:
        _ensure_demo_session(url)
    store = queries.open_store(url)  # a bad URL or locked file fails here, as one line
    try:
        reap_and_report(store)  # a run whose writer is gone must not show as "live analysis running"
        _startup_purge(store)
        if demo:
            _demo_account(store)
    finally:
        store.close()
    _server_env(url, demo=demo, session=session or (DEMO_SESSION if demo else None), trusted_proxies=trusted)
    url_shown = f"http://{address}:{port}"
    print(say("cli.dashboard.serving", url=url_shown, db=safe_url(url)), flush=True)
    if demo and has_display():
        _open_browser_when_up(url_shown)
    return _run_streamlit(address, port)


def _server_env(url: str, *, demo: bool, session: str | None, trusted_proxies: str) -> None:
    """What the server's pages read from the environment (Streamlit runs in this process)."""
    from dashboard import auth
    from dashboard.addresses import TRUSTED_PROXIES_ENV

    os.environ["ENGAGEMENT_DB"] = url
    os.environ.pop(auth.DEMO_ENV, None)
    if demo:
        os.environ[auth.DEMO_ENV] = "1"
    if session:
        os.environ["ENGAGEMENT_DASHBOARD_SESSION"] = session
    os.environ[TRUSTED_PROXIES_ENV] = trusted_proxies
    # uvicorn would otherwise take X-Forwarded-For from any loopback peer as the client's address
    # (its default trusts 127.0.0.1): trust no proxy there, so the page sees the socket's peer and
    # dashboard.addresses applies the operator's list.
    os.environ["FORWARDED_ALLOW_IPS"] = ""


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def streamlit_flags(address: str, port: int) -> list[str]:
    """Every setting of dashboard/.streamlit/config.toml as a flag, plus where to listen."""
    with open(CONFIG, "rb") as fh:
        config = tomllib.load(fh)
    flags: list[str] = []

    def add(prefix: str, table: dict) -> None:
        for key, value in table.items():
            if isinstance(value, dict):
                add(f"{prefix}{key}.", value)
            else:
                flags.extend([f"--{prefix}{key}", str(value).lower() if isinstance(value, bool) else str(value)])

    add("", config)
    return [*flags, "--server.address", address, "--server.port", str(port)]


def _run_streamlit(address: str, port: int) -> int:
    # Streamlit is imported only to serve: it takes seconds to import, and every other command
    # (and `engagement --help`) must not wait for it.
    from streamlit.web import cli as streamlit_cli

    try:
        streamlit_cli.main(["run", str(APP), *streamlit_flags(address, port)], prog_name="streamlit", standalone_mode=False)
    except SystemExit as exc:  # Streamlit exits on a port taken between our check and its bind
        if exc.code not in (0, None):
            raise ConfigError(say("cli.dashboard.could_not_serve", address=address, port=port)) from None
    return 0


def _check_port_free(address: str, port: int) -> None:
    """A clear error before anything starts when another program (or dashboard) holds the port."""
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(say("cli.dashboard.bad_address", address=repr(address), reason=exc.strerror)) from None
    family, _, _, _, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # The same option the server sets: a port in TIME_WAIT from a stopped dashboard is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(say("cli.dashboard.port_in_use", port=port, address=address)) from None
            reason = exc.strerror
            raise ConfigError(say("cli.dashboard.cannot_serve", address=address, port=port, reason=reason)) from None


def _open_browser_when_up(url: str) -> None:
    """Open the user's browser once the server answers (the demo, on a machine with a screen)."""
    # Imported here: every `engagement` command loads this module, and only the demo opens a browser.
    import urllib.request
    import webbrowser

    def wait_then_open() -> None:
        for _ in range(240):
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=1):
                    webbrowser.open(url)
                    return
            except OSError:
                threading.Event().wait(0.5)

    threading.Thread(target=wait_then_open, name="open-browser", daemon=True).start()


def _startup_purge(store) -> None:
    """Apply the retention policy when the dashboard starts (privacy.retention.startup_purge)."""
    receipt = startup_purge(store, trigger="dashboard")
    if receipt.total:
        print(say("cli.dashboard.purged", n=receipt.total, receipt=receipt.receipt_id))


def _ensure_demo_session(url: str) -> None:
    """Analyse the demo video into the demo database unless it already holds the demo session."""
    from dashboard import queries

    store = queries.open_store(url)
    try:
        sessions = queries.list_sessions(store)
    finally:
        store.close()
    done = sessions[(sessions["name"] == DEMO_SESSION) & (sessions["status"] == "complete")]
    if not done.empty:
        return
    print(say("cli.dashboard.analysing_demo"), flush=True)
    analyze(db=url, no_progress=True)


def _demo_account(store) -> None:
    from dashboard import auth, services

    for user in auth.ensure_demo_accounts(store):
        services.audit(store, services.USER_CREATED, "system:dashboard-demo", {"account": user.name, "role": user.role, "demo": True})
    for name, role in auth.DEMO_ACCOUNTS:
        print(say("cli.dashboard.demo_sign_in", user=name, password=auth.DEMO_PASSWORD, role=say(f"role.{role}")))


def users_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(show_default=False)],
    role: Annotated[Role, typer.Option("--role")],
    password_stdin: Annotated[bool, option("--password-stdin", key="cli.dashboard.opt_password_stdin")] = False,
    db: UsersDb = None,
) -> int:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(say("cli.dashboard.password_for", name=name))
        if getpass.getpass(say("cli.dashboard.password_again")) != password:
            raise ConfigError(say("cli.dashboard.passwords_differ"))
    from dashboard import auth, queries, services

    store = queries.open_store(_url(ctx, db))
    try:
        user = auth.create_user(store, name, role.value, password)
        services.audit(store, services.USER_CREATED, resolve_actor(), {"account": user.name, "role": user.role, "via": "cli"})
    finally:
        store.close()
    print(say("cli.dashboard.user_created", role=user.role, name=repr(user.name)))
    return 0


def users_list(ctx: typer.Context, db: UsersDb = None) -> int:
    from dashboard import auth, queries

    store = queries.open_store(_url(ctx, db))
    try:
        rows = auth.list_users(store)
    finally:
        store.close()
    if not rows:
        print(say("cli.dashboard.no_users"))
        return 0
    for r in rows:
        state = say("cli.dashboard.disabled") if r["disabled"] else ""
        print(f"{r['name']:<24} {r['role']:<16} {str(r['created_at'])[:19]}{state}")
    return 0
