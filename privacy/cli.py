"""`engagement privacy ...` subcommands (consent, purge, audit, subject requests, DPIA)."""

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("privacy", help="consent, retention and purge, audit log, subject requests")
    parser.set_defaults(handler=lambda args: parser.print_help())
