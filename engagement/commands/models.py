"""`engagement train ...` and `engagement evaluate ...`: model training (torch extra) and scoring."""

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a model (needs the [train] extra: torch)")
    train.set_defaults(handler=lambda args: train.print_help())
    evaluate = sub.add_parser("evaluate", help="score a shipped model on a dataset")
    evaluate.set_defaults(handler=lambda args: evaluate.print_help())
