"""`engagement train ...` and `engagement evaluate ...`: model training (torch extra) and scoring.

Each subcommand hands its own arguments to the module that owns the job, so the options are
defined once, next to the code they drive (`engagement train expression --help` shows them).
"""

from __future__ import annotations

import importlib

import typer

from engagement.commands.common import command, group, say
from engagement.errors import ConfigError

# Module paths, not imports: the training modules import torch at their top, and torch is an
# optional extra that `engagement --help` (and every other command) must not need or wait for.
TRAIN = {
    "expression": "engagement.training.expression",
    "export-expression": "engagement.training.export_expression",
    "temporal": "engagement.training.temporal",
}
EVALUATE = {
    "fer2013": "engagement.vision.expression_eval",
    "images": "engagement.vision.expression_images",
    "engagewild": "engagement.temporal.evaluate",
}
# Everything after the job's name belongs to the job's own parser, --help included.
FORWARD = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def register(app: typer.Typer) -> None:
    for verb, jobs in (("train", TRAIN), ("evaluate", EVALUATE)):
        verb_group = group(verb)
        for job, module in jobs.items():
            command(verb_group, job, _forward(module, f"engagement {verb} {job}"), f"cli.{verb}.{job}",
                    context_settings=FORWARD, add_help_option=False)
        app.add_typer(verb_group)


def _forward(module_name: str, prog: str):
    def handler(ctx: typer.Context) -> int:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == "torch" or (exc.name or "").startswith("onnx"):
                raise ConfigError(say("cli.train.needs_extra", prog=prog, missing=exc.name)) from None
            raise
        return int(module.main(list(ctx.args)) or 0)

    return handler
