"""`engagement dashboard`: serve the Streamlit dashboard on 127.0.0.1:8501."""

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("dashboard", help="serve the dashboard on http://127.0.0.1:8501")
    parser.set_defaults(handler=lambda args: parser.print_help())
