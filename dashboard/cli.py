"""`engagement dashboard`: serve the Streamlit dashboard on http://127.0.0.1:8501, and manage
its accounts (`engagement dashboard users add NAME --role ROLE`)."""

from __future__ import annotations

import argparse
import getpass
import os
import subprocess
import sys
from pathlib import Path

from engagement.errors import ConfigError

APP = Path(__file__).resolve().parent / "app.py"
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
        help="open on the demo session and create the demo/demo facilitator account (loopback only)",
    )
    parser.add_argument("--session", metavar="NAME", help="session the facilitator page opens on")
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
    """Check the database, run the start-up purge, then run Streamlit in a child process."""
    from dashboard import queries

    if not 1 <= args.port <= 65535:
        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    url = _url(args)
    if args.demo and args.address not in ("127.0.0.1", "localhost", "::1"):
        raise ConfigError("--demo creates an account with a public password; it only serves on 127.0.0.1")
    store = queries.open_store(url)  # a bad URL or locked file fails here, as one line
    try:
        _startup_purge(store)
        if args.demo:
            _demo_account(store)
    finally:
        store.close()
    env = dict(os.environ, ENGAGEMENT_DB=url)
    session = args.session or (_demo_session() if args.demo else None)
    if session:
        env["ENGAGEMENT_DASHBOARD_SESSION"] = session
    cmd = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", args.address,
        "--server.port", str(args.port),
        # The demo opens a browser tab where there is one; a served dashboard never does.
        "--server.headless", "false" if args.demo else "true",
        # Privacy: no usage statistics leave the machine (DESIGN.md).
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        # Users never see a stack trace; pages show a message and the server log keeps the detail.
        "--client.showErrorDetails", "none",
        "--client.toolbarMode", "minimal",
        # No source watching on a served dashboard (saves CPU on small machines).
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
    ]  # fmt: skip
    from engagement.store import safe_url

    print(f"dashboard: http://{args.address}:{args.port}  (database {safe_url(url)}; Ctrl+C stops)", flush=True)
    try:
        return subprocess.call(cmd, env=env, cwd=str(APP.parent))
    except KeyboardInterrupt:
        return 130


def _startup_purge(store) -> None:
    """Apply the retention policy when the dashboard starts (privacy.retention.startup_purge)."""
    try:
        from privacy.retention import startup_purge
    except ImportError:
        return
    receipt = startup_purge(store, trigger="dashboard")
    if receipt.total:
        print(f"retention: purged {receipt.total} rows past their period (receipt {receipt.receipt_id})")


def _demo_account(store) -> None:
    from dashboard import auth, services

    user = auth.ensure_demo_account(store)
    if user is not None:
        services.audit(store, services.USER_CREATED, "system:dashboard-demo", {"account": user.name, "role": user.role, "demo": True})
    print(f"demo: sign in as {auth.DEMO_USER} / {auth.DEMO_PASSWORD}")


def _demo_session() -> str:
    try:
        from engagement.demo import DEMO_SESSION
    except ImportError:
        return "demo"
    return DEMO_SESSION


def users_add(args: argparse.Namespace) -> int:
    from dashboard import auth, queries, services

    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            raise ConfigError("the two passwords differ; nothing was created")
    store = queries.open_store(_url(args))
    try:
        user = auth.create_user(store, args.name, args.role, password)
        try:
            from privacy.audit import default_actor

            actor = default_actor()
        except ImportError:
            actor = "cli"
        services.audit(store, services.USER_CREATED, actor, {"account": user.name, "role": user.role, "via": "cli"})
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
