"""`engagement train ...`: train and export the models (needs the [train] extra: torch, onnx).

The training modules import torch at their top, so they are imported when a job runs: neither
`engagement --help` nor any other command needs torch or waits for it. For the same reason the
defaults that the training code owns (its TrainConfig fields, the augmentation presets, the
recipes) are not repeated here: such an option is None when not given and the training code's
value applies; its choices are checked once that code is loaded.
"""

from __future__ import annotations

import enum
import importlib.util
import json
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperCommand

from engagement.cli.common import command, group, option, say
from engagement.core.config import models_dir, shared_data_dir
from engagement.core.errors import ConfigError
from engagement.core.registry import sha256_file as sha256_of

FER2013 = Path("../shared/data/fer2013")  # relative to where the command runs, as the README has it


class Kind(str, enum.Enum):
    linear = "linear"
    gru = "gru"


class BareRecipeIsV1(TyperCommand):
    """`--recipe` alone means `--recipe v1`. typer has no option whose value is optional, so a
    bare `--recipe` (last, or followed by another option) gets its value before parsing."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        args = list(args)
        for i, arg in enumerate(args):
            if arg == "--":
                break
            if arg == "--recipe" and (i + 1 == len(args) or args[i + 1].startswith("-")):
                args.insert(i + 1, "v1")
        return super().parse_args(ctx, args)


def register(app: typer.Typer) -> None:
    train = group("train")
    command(train, "expression", expression, "cli.train.expression",
            description="cli.train.expression.description", cls=BareRecipeIsV1)
    command(train, "export-expression", export_expression, "cli.train.export-expression",
            description="cli.train.export-expression.description")
    command(train, "float-expression", float_expression, "cli.train.float-expression",
            description="cli.train.float-expression.description")
    command(train, "temporal", temporal, "cli.train.temporal", description="cli.train.temporal.description")
    app.add_typer(train)


def expression(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out")],
    data: Annotated[Path, typer.Option("--data")] = FER2013,
    epochs: Annotated[int | None, typer.Option("--epochs")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    resume: Annotated[bool, typer.Option("--resume")] = False,
    reschedule: Annotated[bool, option("--reschedule", key="cli.train.expression.opt_reschedule")] = False,
    lr: Annotated[float | None, option("--lr", key="cli.train.expression.opt_lr")] = None,
    aug: Annotated[str, typer.Option("--aug", metavar="PRESET")] = "strong",
    init_from: Annotated[str, option("--init-from", key="cli.train.expression.opt_init_from")] = "",
    limit_train: Annotated[int, option("--limit-train", metavar="N", key="cli.train.expression.opt_limit_train")] = 0,
    recipe: Annotated[str | None, option("--recipe", metavar="[v1|v2|v3|v4]", key="cli.train.expression.opt_recipe")] = None,
    ferplus_weight: Annotated[float, option("--ferplus-weight", key="cli.train.expression.opt_ferplus_weight")] = 0.0,
    framed_share: Annotated[float, option("--framed-share", key="cli.train.expression.opt_framed_share")] = 0.0,
) -> int:
    # The training modules import torch (the [train] extra) at their top, so they are imported
    # here, when a job runs, and not at the top: `engagement --help` must work without torch.
    _require_extra(ctx, "onnx", "torch")
    from engagement.app.training.expression import RECIPES as recipes
    from engagement.app.training.expression_data import AUG_PRESETS
    from engagement.app.training.expression_train import TrainConfig, train_expression

    _one_of(ctx, "--aug", aug, AUG_PRESETS)
    if recipe is not None:
        _one_of(ctx, "--recipe", recipe, recipes)
        print(f"best checkpoint: {recipes[recipe](data, out, seed, resume)}")
        return 0
    best = train_expression(
        data, out, TrainConfig.epochs if epochs is None else epochs, seed, resume, reschedule,
        limit_train=limit_train, lr=TrainConfig.lr if lr is None else lr, aug_preset=aug, init_from=init_from,
        ferplus_weight=ferplus_weight, framed_share=framed_share,
    )
    print(f"best checkpoint: {best}")
    return 0


def export_expression(
    ctx: typer.Context,
    ckpt: Annotated[Path, typer.Option("--ckpt")],
    version: Annotated[str, option("--version", key="cli.train.export-expression.opt_version")],
    models_dir_: Annotated[Path | None, typer.Option("--models-dir")] = None,
    no_tta: Annotated[bool, option("--no-tta", key="cli.train.export-expression.opt_no_tta")] = False,
    int8: Annotated[bool, option("--int8", key="cli.train.export-expression.opt_int8")] = False,
    data: Annotated[Path, option("--data", key="cli.train.export-expression.opt_data")] = FER2013,
    calibrate: Annotated[bool, option("--calibrate", key="cli.train.export-expression.opt_calibrate")] = False,
) -> int:
    _require_extra(ctx, "onnx", "torch")  # imported when the job runs (see expression)
    from engagement.app.training import export_expression as export
    export.export_checkpoint(ckpt, version, models_dir_ or models_dir(), tta_flip=False if no_tta else None, int8=int8,
                             data=data, calibrate=calibrate)
    return 0


def float_expression(
    ctx: typer.Context,
    src: Annotated[Path, typer.Argument(metavar="INT8_ONNX")],
    name: Annotated[str, option("--name", key="cli.train.float-expression.opt_name")],
    models_dir_: Annotated[Path | None, typer.Option("--models-dir")] = None,
) -> int:
    _require_extra(ctx, "onnx")  # torch is not needed by this job
    from engagement.app.training.expression_float import replace_registered
    out = replace_registered(src, name, models_dir_ or models_dir())
    print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB), sha256 {sha256_of(out)}")
    return 0


def temporal(
    ctx: typer.Context,
    data: Annotated[Path | None, typer.Option("--data")] = None,
    out: Annotated[Path | None, typer.Option("--out")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    kind: Annotated[Kind | None, typer.Option("--kind")] = None,
    folds: Annotated[int, option("--folds", key="cli.train.temporal.opt_folds")] = 5,
    repeats: Annotated[int, option("--repeats", key="cli.train.temporal.opt_repeats")] = 20,
    epochs: Annotated[int | None, typer.Option("--epochs")] = None,
    hidden: Annotated[int | None, option("--hidden", key="cli.train.temporal.opt_hidden")] = None,
    members: Annotated[int | None, option("--members", key="cli.train.temporal.opt_members")] = None,
    decay: Annotated[float | None, option("--decay", key="cli.train.temporal.opt_decay")] = None,
    no_export: Annotated[bool, option("--no-export", key="cli.train.temporal.opt_no_export")] = False,
) -> int:
    _require_extra(ctx, "torch", "onnx")  # imported when the job runs (see expression)
    from engagement.app.training import temporal as training
    data = data or shared_data_dir() / "engagewild" / "engagewild_train_test.npz"
    if not data.exists():
        raise ConfigError(say("cli.train.no_data", path=data))
    given = {"kind": kind.value if kind else None, "epochs": epochs, "hidden": hidden, "decay": decay,
             "members": members}
    try:
        cfg = training.TrainConfig(**{k: v for k, v in given.items() if v is not None})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        _, _, y = training.load_engagewild(data)  # one clear line for a file that is not the data set
    except (OSError, ValueError, EOFError, KeyError) as exc:
        raise ConfigError(say("cli.train.unreadable", path=data, reason=exc)) from None
    if y is None:
        raise ConfigError(say("cli.train.no_labels", path=data))
    report = training.train_temporal(data, None if no_export else out or models_dir(), seed, folds, repeats, cfg)
    report.pop("ensemble", None)
    print(json.dumps({k: v for k, v in report.items() if k not in ("norm_mean", "norm_std")}, indent=None))
    return 0


def _require_extra(ctx: typer.Context, *modules: str) -> None:
    """One clear line when a third-party module of the [train] extra is not installed. Checked
    before the project's training modules are imported, so those are imported plainly and any
    other missing module (a bug) keeps its traceback."""
    for module in modules:
        if importlib.util.find_spec(module) is None:
            raise ConfigError(say("cli.train.needs_extra", prog=ctx.command_path, missing=module))


def _one_of(ctx: typer.Context, name: str, value: str, choices) -> None:
    """argparse's `choices`, checked once the training code that defines them is loaded."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in sorted(choices))
        raise typer.BadParameter(f"{value!r} is not one of {listed}.", ctx=ctx, param_hint=f"'{name}'")
