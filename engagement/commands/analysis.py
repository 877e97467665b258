"""`engagement analyze`, `engagement sessions`, `engagement export` (filled in by the pipeline)."""

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    pass
