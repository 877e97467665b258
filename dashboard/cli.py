"""`engagement dashboard`: serve the Streamlit dashboard on http://127.0.0.1:8501, and manage
its accounts (`engagement dashboard users add NAME --role ROLE`)."""

from __future__ import annotations

import argparse
import errno
import getpass
import os
import socket
import sys
from pathlib import Path

from engagement.errors import ConfigError
from engagement.reaper import reap_and_report

APP = Path(__file__).resolve().parent / "app.py"
CONFIG = APP.parent / ".streamlit" / "config.toml"
DEFAULT_PORT = 8501


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("dashboard", help="serve the dashboard on http://127.0.0.1:8501; manage its users")
    parser.add_argument("--db", metavar="URL", help="database URL (default: ENGAGEMENT_DB or the data directory's SQLite file)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port to serve on (default {DEFAULT_PORT})")
    parser.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; put a TLS proxy in front to share it)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help="serve the demo's own database (analysed on first use) with its demo/demo facilitator account (loopback only)",
    )
    parser.add_argument("--session", metavar="NAME", help="session the facilitator page opens on")
    parser.add_argument(
        "--timezone",
        metavar="ZONE",
        help="time zone times are shown in, e.g. Asia/Jakarta, Asia/Makassar, Asia/Jayapura "
        "(default: ENGAGEMENT_TIMEZONE, else this machine's zone)",
    )
    parser.set_defaults(handler=serve)
    dsub = parser.add_subparsers(dest="dashboard_command", metavar="COMMAND")

    users = dsub.add_parser("users", help="dashboard accounts")
    usub = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = usub.add_parser("add", help="create an account (the password is asked for, never given on the command line)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=("facilitator", "researcher", "privacy_officer", "admin"))
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.add_argument("--db", metavar="URL", dest="users_db", help="database URL")
    add.set_defaults(handler=users_add)
    ls = usub.add_parser("list", help="list accounts")
    ls.add_argument("--db", metavar="URL", dest="users_db", help="database URL")
    ls.set_defaults(handler=users_list)


def _url(args: argparse.Namespace) -> str:
    from engagement.config import default_db_url

    return getattr(args, "users_db", None) or getattr(args, "db", None) or default_db_url()


def serve(args: argparse.Namespace) -> int:
    """Check the port and the database, run the start-up purge, then serve in this process.

    Streamlit runs in-process (no child): SIGTERM/SIGINT stop it through its own handlers and a
    SIGKILL leaves nothing behind to hold the port.
    """
    from dashboard import queries

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    if args.timezone:
        from dashboard.clock import TZ_ENV, zone

        zone(args.timezone)  # an unknown name is one error line before anything starts
        os.environ[TZ_ENV] = args.timezone
    if args.demo:
        if args.address not in LOOPBACK:
            raise ConfigError("--demo creates an account with a public password; it only serves on 127.0.0.1")
        if args.db:
            raise ConfigError("--demo uses its own database (demo.sqlite in the data directory); leave out --db")
        from engagement.demo import demo_db_url

        url = demo_db_url()
    else:
        url = _url(args)
    _check_port_free(args.address, args.port)
    if args.demo:
        _ensure_demo_session(url)
    store = queries.open_store(url)  # a bad URL or locked file fails here, as one line
    try:
        reap_and_report(store)  # a run whose writer is gone must not show as "live analysis running"
        _startup_purge(store)
        if args.demo:
            _demo_account(store)
    finally:
        store.close()
    from dashboard.auth import DEMO_ENV

    os.environ["ENGAGEMENT_DB"] = url
    os.environ.pop(DEMO_ENV, None)
    if args.demo:
        os.environ[DEMO_ENV] = "1"
    session = args.session or (_demo_session() if args.demo else None)
    if session:
        os.environ["ENGAGEMENT_DASHBOARD_SESSION"] = session
    from engagement.store import safe_url

    url_shown = f"http://{args.address}:{args.port}"
    print(f"dashboard: {url_shown}  (database {safe_url(url)}; Ctrl+C stops)", flush=True)
    if args.demo and _has_display():
        _open_browser_when_up(url_shown)
    return _run_streamlit(args.address, args.port)


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def streamlit_flags(address: str, port: int) -> list[str]:
    """Every setting of dashboard/.streamlit/config.toml as a flag, plus where to listen."""
    import tomllib

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
    from streamlit.web import cli as streamlit_cli

    try:
        streamlit_cli.main(["run", str(APP), *streamlit_flags(address, port)], prog_name="streamlit", standalone_mode=False)
    except SystemExit as exc:  # Streamlit exits on a port taken between our check and its bind
        if exc.code not in (0, None):
            raise ConfigError(f"the dashboard could not serve on {address}:{port}; see the message above") from None
    return 0


def _check_port_free(address: str, port: int) -> None:
    """A clear error before anything starts when another program (or dashboard) holds the port."""
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot serve on address {address!r}: {exc.strerror}") from None
    family, _, _, _, sockaddr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # The same option the server sets: a port in TIME_WAIT from a stopped dashboard is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise ConfigError(
                    f"port {port} on {address} is already in use (another dashboard?); stop that program or "
                    "choose another port with --port"
                ) from None
            raise ConfigError(f"cannot serve on {address}:{port}: {exc.strerror}") from None


def _has_display() -> bool:
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _open_browser_when_up(url: str) -> None:
    """Open the user's browser once the server answers (the demo, on a machine with a screen)."""
    import threading
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
    from privacy.retention import startup_purge

    receipt = startup_purge(store, trigger="dashboard")
    if receipt.total:
        print(f"retention: purged {receipt.total} rows past their period (receipt {receipt.receipt_id})")


def _ensure_demo_session(url: str) -> None:
    """Analyse the demo video into the demo database unless it already holds the demo session."""
    from dashboard import queries
    from engagement.demo import DEMO_SESSION

    store = queries.open_store(url)
    try:
        sessions = queries.list_sessions(store)
    finally:
        store.close()
    done = sessions[(sessions["name"] == DEMO_SESSION) & (sessions["status"] == "complete")]
    if not done.empty:
        return
    print("demo: analysing the demo video into the demo database (once, about a minute)", flush=True)
    from engagement.cli import build_parser

    analyze = build_parser().parse_args(["analyze", "--db", url, "--no-progress"])
    analyze.handler(analyze)


def _demo_account(store) -> None:
    from dashboard import auth, services

    user = auth.ensure_demo_account(store)
    if user is not None:
        services.audit(store, services.USER_CREATED, "system:dashboard-demo", {"account": user.name, "role": user.role, "demo": True})
    print(f"demo: sign in as {auth.DEMO_USER} / {auth.DEMO_PASSWORD}")


def _demo_session() -> str:
    from engagement.demo import DEMO_SESSION

    return DEMO_SESSION


def users_add(args: argparse.Namespace) -> int:
    from dashboard import auth, queries, services
    from privacy.audit import resolve_actor

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ; nothing was created")
    store = queries.open_store(_url(args))
    try:
        user = auth.create_user(store, args.name, args.role, password)
        services.audit(store, services.USER_CREATED, resolve_actor(), {"account": user.name, "role": user.role, "via": "cli"})
    finally:
        store.close()
    print(f"created {user.role} account {user.name!r}")
    return 0


def users_list(args: argparse.Namespace) -> int:
    from dashboard import auth, queries

    store = queries.open_store(_url(args))
    try:
        rows = auth.list_users(store)
    finally:
        store.close()
    if not rows:
        print("no accounts; create one with: engagement dashboard users add NAME --role admin")
        return 0
    for r in rows:
        state = " (disabled)" if r["disabled"] else ""
        print(f"{r['name']:<24} {r['role']:<16} {str(r['created_at'])[:19]}{state}")
    return 0
