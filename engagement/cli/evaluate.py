"""`engagement evaluate ...`: score a shipped model on a data set (ONNX Runtime, no torch).

Each job prints its report on stdout; the LAST line is exactly `accuracy=<value>` (fer2013,
images) or `mse=<value>` (engagewild), which scripts read. A failure is an EngagementError: one
`error: ...` line and exit code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from engagement.cli.common import command, group, option, say
from engagement.core.errors import EngagementError
from engagement.temporal import evaluate as temporal_eval
from engagement.temporal.model import DEFAULT_MODEL as TEMPORAL_MODEL
from engagement.vision import expression_eval, expression_images
from engagement.vision.expression import DEFAULT_MODEL as EXPRESSION_MODEL
from engagement.vision.expression_images import LABELS_CSV

Npz = Annotated[Path, typer.Argument(metavar="NPZ")]
ModelsDir = Annotated[Path | None, typer.Option("--models-dir")]


def register(app: typer.Typer) -> None:
    evaluate = group("evaluate")
    command(evaluate, "fer2013", fer2013, "cli.evaluate.fer2013", description="cli.evaluate.fer2013.description")
    command(evaluate, "images", images, "cli.evaluate.images", description="cli.evaluate.images.description")
    command(evaluate, "engagewild", engagewild, "cli.evaluate.engagewild")
    app.add_typer(evaluate)


def fer2013(
    npz: Npz,
    split: Annotated[str, typer.Option("--split")] = "PublicTest",
    models_dir: ModelsDir = None,
    model: Annotated[str, typer.Option("--model")] = EXPRESSION_MODEL,
) -> int:
    print(expression_eval.format_fer2013_report(expression_eval.evaluate_fer2013(npz, split, models_dir, model)))
    return 0


def images(
    folder: Annotated[
        Path, typer.Argument(metavar="DIR", help=say("cli.evaluate.images.opt_dir", csv=LABELS_CSV))
    ],
    labels: Annotated[
        Path | None, option("--labels", key="cli.evaluate.images.opt_labels", values={"csv": LABELS_CSV})
    ] = None,
    model: Annotated[
        str, option("--model", key="cli.evaluate.opt_model", values={"model": EXPRESSION_MODEL})
    ] = EXPRESSION_MODEL,
    models_dir: ModelsDir = None,
) -> int:
    if not folder.is_dir():
        raise EngagementError(say("cli.evaluate.no_folder", path=folder))
    result = expression_images.evaluate_images(labels or folder / LABELS_CSV, model, models_dir)
    print(expression_images.format_images_report(result))
    return 0


def engagewild(
    npz: Npz,
    split: Annotated[str, typer.Option("--split")] = "train",
    models_dir: ModelsDir = None,
    model: Annotated[
        str, option("--model", key="cli.evaluate.opt_model", values={"model": TEMPORAL_MODEL})
    ] = TEMPORAL_MODEL,
) -> int:
    result = temporal_eval.evaluate_engagewild(npz, split, models_dir, model)
    print(temporal_eval.format_engagewild_report(result))
    return 0
