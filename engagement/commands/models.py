"""`engagement train ...` and `engagement evaluate ...`: model training (torch extra) and scoring.

Each subcommand hands its own arguments to the module that owns the job, so the options are
defined once, next to the code they drive (`engagement train expression --help` shows them).
Training modules import torch; they are imported only when a training command runs.
"""

from __future__ import annotations

import argparse
import importlib

from engagement.errors import ConfigError

TRAIN = {
    "expression": ("engagement.training.expression", "train the FER2013 expression CNN (seeded, resumable)"),
    "export-expression": ("engagement.training.export_expression", "export an expression checkpoint to ONNX"),
    "temporal": ("engagement.training.temporal", "train the engagement model (label-shift and 5-fold CV) and export it"),
}
EVALUATE = {
    "fer2013": ("engagement.vision.expression_eval", "score the shipped expression model; last line accuracy=..."),
    "images": ("engagement.vision.expression_images", "audit the expression model on your own labelled face images"),
    "engagewild": ("engagement.temporal.evaluate", "score the shipped engagement model; last line mse=..."),
}


def register(sub: argparse._SubParsersAction) -> None:
    for verb, jobs, help_text in (
        ("train", TRAIN, "train a model (needs the [train] extra: torch)"),
        ("evaluate", EVALUATE, "score a shipped model on a data set"),
    ):
        parser = sub.add_parser(verb, help=help_text)
        jobs_sub = parser.add_subparsers(dest=f"{verb}_job", required=True, metavar="MODEL")
        for job, (module, job_help) in jobs.items():
            job_parser = jobs_sub.add_parser(job, help=job_help, add_help=False)
            job_parser.add_argument("args", nargs=argparse.REMAINDER)
            job_parser.set_defaults(handler=_forward(module, f"engagement {verb} {job}"), forward=True)


def _forward(module_name: str, prog: str):
    def handler(args: argparse.Namespace) -> int:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == "torch" or (exc.name or "").startswith("onnx"):
                raise ConfigError(
                    f"`{prog}` needs the training extra: pip install -e '.[train]' (missing {exc.name})"
                ) from None
            raise
        return int(module.main(args.args) or 0)

    return handler
