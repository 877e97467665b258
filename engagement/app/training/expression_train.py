"""One training cycle of the expression CNN: seeded, resumable, EMA weights, best epoch kept by
PublicTest accuracy (the design choices are in engagement.app.training.expression)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from engagement.app.training.expression_align import cached_product_crops, product_crops
from engagement.app.training.expression_data import (
    AUG_PRESETS,
    augment,
    jpeg_roundtrip,
    load_fer2013,
    normalise,
    soft_targets,
    split_arrays,
)
from engagement.app.training.expression_nets import INPUT_SIZE, LABELS, PIXEL_MEAN, PIXEL_STD, ExpressionCNN
from engagement.app.training.expression_teacher import cached_teacher_probs, teacher_probs

FRAMED_CACHE = "fer2013-framed.npz"  # in the run's folder: the product-path crops, computed once
TEACHER_CACHE = "teacher-{framing}.npz"  # in the run's folder: the teachers' view of each training face

@dataclass
class TrainConfig:
    epochs: int = 70
    batch_size: int = 128
    lr: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    label_smoothing: float = 0.1
    ema_decay: float = 0.999
    widths: tuple[int, ...] = (32, 64, 128, 256)
    convs_per_stage: int = 2
    dropout: float = 0.4
    seed: int = 0
    bf16: bool = True
    threads: int = 2
    limit_train: int = 0  # >0: use only the first N training rows (smoke tests)
    init_from: str = ""  # a checkpoint whose EMA weights start this run (a second, fine-tuning cycle)
    aug_preset: str = "strong"
    aug: dict = field(default_factory=dict)
    # Share of the target taken from the FER+ crowd votes (10 annotators per image) instead of
    # the single original label: 0 = the original one-hot label only (v1). The votes carry the
    # ambiguity of an image (a face that is half sad, half neutral), which a one-hot label hides.
    ferplus_weight: float = 0.0
    # Share of training faces shown in the product's framing (Face Landmarker + align_face, see
    # engagement.app.training.expression_align) instead of FER2013's own crop: 0 = FER2013 crops only
    # (v1, v2). Faces the landmarker misses always keep their FER2013 crop.
    framed_share: float = 0.0
    # Distillation (engagement.app.training.expression_teacher): registered expression models whose
    # mean probabilities on each training face, in the framing it is shown in, make up
    # `teacher_weight` of the target. () = no teacher (v1-v3).
    teacher: tuple[str, ...] = ()
    teacher_weight: float = 0.0
    # Whether the exported graph averages the mirrored face (twice the cost a face): checkpoints
    # are chosen on the accuracy of the graph that will be exported.
    tta_flip: bool = True

    def __post_init__(self) -> None:
        self.teacher = tuple(self.teacher)
        if bool(self.teacher) != (self.teacher_weight > 0):
            raise ValueError("teacher and teacher_weight go together: name teacher models and a weight > 0")
        if not self.aug:
            if self.aug_preset not in AUG_PRESETS:
                raise ValueError(f"aug_preset must be one of {sorted(AUG_PRESETS)}, got {self.aug_preset!r}")
            self.aug = dict(AUG_PRESETS[self.aug_preset])


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, k: int = len(LABELS)) -> np.ndarray:
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def summarise(cm: np.ndarray) -> dict:
    tp = np.diag(cm).astype(float)
    recall = tp / np.maximum(cm.sum(1), 1)
    precision = tp / np.maximum(cm.sum(0), 1)
    f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return {
        "accuracy": float(tp.sum() / max(cm.sum(), 1)),
        "macro_f1": float(f1.mean()),
        "recall": {name: float(r) for name, r in zip(LABELS, recall)},
    }


@torch.no_grad()
def predict_probs(net: nn.Module, pixels: torch.Tensor, flip: bool, batch: int = 512) -> torch.Tensor:
    net.eval()
    out = []
    for i in range(0, len(pixels), batch):
        x = normalise(pixels[i : i + batch]).contiguous(memory_format=torch.channels_last)
        p = torch.softmax(net(x).float(), 1)
        if flip:
            p = 0.5 * (p + torch.softmax(net(torch.flip(x, dims=[3])).float(), 1))
        out.append(p)
    return torch.cat(out)


# ----------------------------------------------------------------------------- training


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except Exception:
        return "unknown"


def _save_last(out: Path, net, ema, opt, sched, epoch: int, best_acc: float, meta: dict) -> None:
    state = {
        "model": net.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "epoch": epoch,
        "best_acc": best_acc,
        "meta": meta,
    }
    tmp = out / "last.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, out / "last.pt")  # atomic: a kill mid-save never leaves a broken last.pt


def build_model(cfg: TrainConfig) -> ExpressionCNN:
    return ExpressionCNN(tuple(cfg.widths), cfg.convs_per_stage, cfg.dropout)


@dataclass
class _Inputs:
    """The tensors one training run reads: Training rows (pixels, labels, soft targets, the
    product's framing and the teachers' answers where asked for) and PublicTest rows."""

    x_tr: torch.Tensor
    y_tr: torch.Tensor
    x_va: torch.Tensor
    y_va: np.ndarray
    target_tr: torch.Tensor | None = None
    framed_tr: torch.Tensor | None = None
    found_tr: torch.Tensor | None = None
    framed_va: torch.Tensor | None = None
    y_va_framed: np.ndarray | None = None
    teacher_tr: torch.Tensor | None = None
    teacher_framed_tr: torch.Tensor | None = None


def train_expression(
    data: Path,
    out: Path,
    epochs: int = 70,
    seed: int = 0,
    resume: bool = False,
    reschedule: bool = False,
    **overrides,
) -> Path:
    """Train on FER2013 Training, select on PublicTest; return the path of OUT/best.pt.

    `reschedule` lets --resume change the epoch count (the one-cycle schedule is re-laid over
    the new total from the current step). `overrides` sets any other TrainConfig field (e.g.
    limit_train=512 for a smoke test).
    """
    data, out = Path(data), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = TrainConfig(epochs=epochs, seed=seed, **overrides)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)

    inputs = _load_inputs(data, out, cfg)
    net = build_model(cfg).to(memory_format=torch.channels_last)
    ema = build_model(cfg).to(memory_format=torch.channels_last)
    ema.load_state_dict(net.state_dict())
    for p in ema.parameters():
        p.requires_grad_(False)
    steps_per_epoch = math.ceil(len(inputs.x_tr) / cfg.batch_size)
    opt, sched = _optimiser(net, cfg, steps_per_epoch)
    if cfg.init_from:
        init = torch.load(cfg.init_from, map_location="cpu", weights_only=False)
        net.load_state_dict(init["ema"])
        ema.load_state_dict(init["ema"])
        print(f"initialised from the EMA weights of {cfg.init_from} (epoch {init['epoch'] + 1})", flush=True)
    start_epoch, best_acc, meta_history = _resume(out / "last.pt", cfg, resume, reschedule, net, ema, opt, sched)

    meta = _meta(cfg, len(inputs.x_tr), meta_history)
    (out / "config.json").write_text(json.dumps(meta, indent=2))
    _epochs(out, cfg, meta, inputs, net, ema, opt, sched, steps_per_epoch, start_epoch, best_acc)
    return out / "best.pt"


def _meta(cfg: TrainConfig, train_rows: int, reschedules: list[dict]) -> dict:
    """What every checkpoint carries about how it was made (also written to config.json)."""
    meta = {
        "config": asdict(cfg),
        "labels": list(LABELS),
        "pixel_mean": PIXEL_MEAN,
        "pixel_std": PIXEL_STD,
        "input_size": INPUT_SIZE,
        "git_commit": git_commit(),
        "train_rows": int(train_rows),
    }
    if reschedules:
        meta["reschedules"] = reschedules
    return meta


def _epochs(out: Path, cfg: TrainConfig, meta: dict, inputs: _Inputs, net, ema, opt, sched, steps_per_epoch: int,
            start_epoch: int, best_acc: float) -> None:
    """Train from `start_epoch` to the end: score, log and checkpoint each epoch (last.pt always,
    best.pt when the selection score improves)."""
    log = open(out / "metrics.jsonl", "a")
    t_run = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        tot_loss, tot_correct, seen = _train_epoch(net, ema, opt, sched, inputs, cfg, epoch, steps_per_epoch, t0)
        train_s = time.time() - t0
        if epoch + 1 < cfg.epochs * 0.6 and (epoch + 1) % 5:
            # Early epochs are never the best ones: score every 5th only, which saves ~10% of
            # the run's time; from 60% of the run on, every epoch is scored and may be kept.
            print(f"== epoch {epoch + 1}: train loss {tot_loss / max(seen, 1):.4f} {train_s:.0f}s", flush=True)
            _save_last(out, net, ema, opt, sched, epoch, best_acc, meta)
            continue
        res, sel = _score(ema, inputs, cfg)
        rec = _epoch_record(epoch, sched, res, sel, tot_loss, tot_correct, seen, train_s, t0)
        log.write(json.dumps(rec) + "\n")
        log.flush()
        is_best = sel > best_acc
        best_acc = max(best_acc, sel)
        _save_last(out, net, ema, opt, sched, epoch, best_acc, meta)
        if is_best:
            torch.save({"ema": ema.state_dict(), "epoch": epoch, "metrics": rec, "meta": meta}, out / "best.pt.tmp")
            os.replace(out / "best.pt.tmp", out / "best.pt")
        print(
            f"== epoch {epoch + 1}: val ema {rec['val_acc_ema']:.4f} "
            f"ema+flip {rec['val_acc_ema_flip']:.4f} framed {rec.get('val_acc_framed_flip', rec.get('val_acc_framed', float('nan'))):.4f} "
            f"selected by {sel:.4f} (best {best_acc:.4f}) f1 {rec['val_macro_f1_ema_flip']:.4f} "
            f"{rec['epoch_s']:.0f}s, total {time.time() - t_run:.0f}s",
            flush=True,
        )
    log.close()


def _load_inputs(data: Path, out: Path, cfg: TrainConfig) -> _Inputs:
    """Training and PublicTest rows as tensors, with the FER+ soft targets, the product's framing
    and the teachers' answers when the config asks for them."""
    arrays = load_fer2013(data)
    x_tr, y_tr = split_arrays(arrays, "Training")
    x_va, y_va = split_arrays(arrays, "PublicTest")
    if cfg.limit_train:
        x_tr, y_tr = x_tr[: cfg.limit_train], y_tr[: cfg.limit_train]
        x_va, y_va = x_va[: cfg.limit_train], y_va[: cfg.limit_train]
    inputs = _Inputs(x_tr=torch.from_numpy(x_tr), y_tr=torch.from_numpy(y_tr), x_va=torch.from_numpy(x_va), y_va=y_va)
    if cfg.ferplus_weight > 0:
        if "ferplus_votes" not in arrays:
            raise ValueError(f"{data}: --ferplus-weight needs the FER+ votes (array 'ferplus_votes')")
        votes = arrays["ferplus_votes"][arrays["usage"] == "Training"]
        if cfg.limit_train:
            votes = votes[: cfg.limit_train]
        inputs.target_tr = torch.from_numpy(soft_targets(y_tr, votes, cfg.ferplus_weight))
    framed_tr = None
    if cfg.framed_share > 0:
        framed_tr = _add_framing(inputs, arrays, x_tr, x_va, y_va, out, cfg)
    if cfg.teacher:
        _add_teachers(inputs, x_tr, framed_tr, out, cfg)
    return inputs


def _add_framing(inputs: _Inputs, arrays: dict, x_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, out: Path,
                 cfg: TrainConfig) -> np.ndarray:
    """The faces in the product's framing (aligned from landmarks); returns the Training crops."""
    if cfg.limit_train:  # a smoke test frames only its own rows, and keeps no cache
        framed_tr, found_tr = product_crops(x_tr)
        framed_va, found_va = product_crops(x_va)
    else:
        crops, found = cached_product_crops(arrays, out / FRAMED_CACHE)
        train_rows, val_rows = arrays["usage"] == "Training", arrays["usage"] == "PublicTest"
        framed_tr, found_tr = crops[train_rows], found[train_rows]
        framed_va, found_va = crops[val_rows], found[val_rows]
    inputs.framed_tr, inputs.found_tr = torch.from_numpy(framed_tr), torch.from_numpy(found_tr)
    # PublicTest in the product's framing: the faces it finds, with their labels.
    inputs.framed_va, inputs.y_va_framed = torch.from_numpy(framed_va[found_va]), y_va[found_va]
    return framed_tr


def _add_teachers(inputs: _Inputs, x_tr: np.ndarray, framed_tr: np.ndarray | None, out: Path,
                  cfg: TrainConfig) -> None:
    """The teachers' probabilities for each Training face, in each framing it is shown in."""
    def taught(pixels: np.ndarray, framing: str) -> np.ndarray:
        if cfg.limit_train:  # a smoke test asks its teachers directly, and keeps no cache
            return teacher_probs(cfg.teacher, pixels)
        return cached_teacher_probs(cfg.teacher, pixels, out / TEACHER_CACHE.format(framing=framing))

    teacher_tr = taught(x_tr, "raw")
    inputs.teacher_tr = torch.from_numpy(teacher_tr)
    if inputs.framed_tr is not None:
        found = inputs.found_tr.numpy()
        teacher_framed = teacher_tr.copy()  # faces never framed keep their raw-crop target
        teacher_framed[found] = taught(framed_tr[found], "framed")
        inputs.teacher_framed_tr = torch.from_numpy(teacher_framed)


def _optimiser(net: nn.Module, cfg: TrainConfig, steps_per_epoch: int):
    """SGD with Nesterov momentum and a one-cycle learning rate over the whole run."""
    decay, no_decay = [], []
    for name, p in net.named_parameters():
        (no_decay if p.ndim == 1 else decay).append(p)  # no weight decay on BN and biases
    opt = torch.optim.SGD(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=True,
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch, pct_start=0.15,
        div_factor=20, final_div_factor=200,
    )
    return opt, sched


def _resume(last_path: Path, cfg: TrainConfig, resume: bool, reschedule: bool, net, ema, opt,
            sched) -> tuple[int, float, list[dict]]:
    """(first epoch to train, best selection score so far, reschedules so far): from
    `last_path` when resuming, else a fresh start."""
    if not resume or not last_path.exists():
        if resume:
            print(f"--resume: no {last_path}, starting fresh", flush=True)
        return 0, -1.0, []
    ck = torch.load(last_path, map_location="cpu", weights_only=False)
    old_epochs = ck["meta"]["config"]["epochs"]
    meta_history = list(ck["meta"].get("reschedules", []))
    if old_epochs != cfg.epochs and not reschedule:
        # The one-cycle schedule is laid out over the whole run; changing its length is a
        # deliberate act (--reschedule), never an accident of a mistyped --epochs.
        raise ValueError(
            f"{last_path} was trained for --epochs {old_epochs}; resume with the same value "
            "(or --reschedule to shorten or lengthen the remaining schedule)"
        )
    net.load_state_dict(ck["model"])
    ema.load_state_dict(ck["ema"])
    opt.load_state_dict(ck["optimizer"])
    if old_epochs == cfg.epochs:
        sched.load_state_dict(ck["scheduler"])
    else:
        # Same step count, new total: the learning rate continues from the point of the new
        # one-cycle curve that corresponds to the steps already taken.
        sched.last_epoch = ck["scheduler"]["last_epoch"] - 1
        sched._step_count = ck["scheduler"].get("_step_count", 1)
        sched.step()
        print(f"rescheduled from {old_epochs} to {cfg.epochs} epochs; lr now {sched.get_last_lr()[0]:.4f}", flush=True)
        meta_history.append(
            {"at_epoch": ck["epoch"] + 1, "from_epochs": old_epochs, "to_epochs": cfg.epochs}
        )
    start_epoch = ck["epoch"] + 1
    print(f"resumed from {last_path} at epoch {start_epoch}", flush=True)
    return start_epoch, ck["best_acc"], meta_history


def _train_epoch(net, ema, opt, sched, inputs: _Inputs, cfg: TrainConfig, epoch: int, steps_per_epoch: int,
                 t0: float) -> tuple[float, int, int]:
    """One pass over the Training rows; (summed loss, correct answers, rows seen)."""
    # Shuffle and augmentation randomness derive from (seed, epoch): a resumed run
    # sees the same batches as an uninterrupted one.
    gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
    perm = torch.randperm(len(inputs.x_tr), generator=gen)
    net.train()
    tot_loss, tot_correct, seen = 0.0, 0, 0
    for step in range(steps_per_epoch):
        idx = perm[step * cfg.batch_size : (step + 1) * cfg.batch_size]
        if len(idx) < 2:
            continue  # BatchNorm needs more than one sample
        pixels = inputs.x_tr[idx]
        framed = None
        if inputs.framed_tr is not None:
            framed = inputs.found_tr[idx] & (torch.rand(len(idx), generator=gen) < cfg.framed_share)
            pixels = torch.where(framed.view(-1, 1, 1), inputs.framed_tr[idx], pixels)
        xb = augment(normalise(jpeg_roundtrip(pixels, cfg.aug, gen)), cfg.aug, gen)
        xb = xb.contiguous(memory_format=torch.channels_last)
        yb = inputs.y_tr[idx]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = net(xb)
        loss = F.cross_entropy(logits.float(), _batch_target(inputs, idx, yb, framed, cfg),
                               label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        _update_ema(ema, net, cfg.ema_decay, sched.last_epoch)
        tot_loss += float(loss.detach()) * len(idx)
        tot_correct += int((logits.argmax(1) == yb).sum())
        seen += len(idx)
        if step % 50 == 0 or step == steps_per_epoch - 1:
            print(
                f"epoch {epoch + 1}/{cfg.epochs} step {step + 1}/{steps_per_epoch} "
                f"loss {tot_loss / seen:.4f} acc {tot_correct / seen:.4f} "
                f"lr {sched.get_last_lr()[0]:.4f} {time.time() - t0:.0f}s",
                flush=True,
            )
    return tot_loss, tot_correct, seen


def _batch_target(inputs: _Inputs, idx: torch.Tensor, yb: torch.Tensor, framed: torch.Tensor | None,
                  cfg: TrainConfig) -> torch.Tensor:
    """The batch's target: the label (or FER+ soft target), mixed with the teachers' answer for
    the framing each face was shown in."""
    target = yb if inputs.target_tr is None else inputs.target_tr[idx]
    if inputs.teacher_tr is not None:
        taught = inputs.teacher_tr[idx]
        if framed is not None:
            taught = torch.where(framed.view(-1, 1), inputs.teacher_framed_tr[idx], taught)
        if target.ndim == 1:
            target = F.one_hot(target, len(LABELS)).float()
        target = (1.0 - cfg.teacher_weight) * target + cfg.teacher_weight * taught
    return target


@torch.no_grad()
def _update_ema(ema: nn.Module, net: nn.Module, ema_decay: float, step: int) -> None:
    # Warm-up EMA decay so early epochs are not dominated by the random init.
    d = min(ema_decay, (1 + step) / (10 + step))
    for pe, pn in zip(ema.parameters(), net.parameters()):
        pe.mul_(d).add_(pn.detach(), alpha=1 - d)
    for be, bn in zip(ema.buffers(), net.buffers()):
        be.copy_(bn)


def _score(ema: nn.Module, inputs: _Inputs, cfg: TrainConfig) -> tuple[dict, float]:
    """PublicTest results of the EMA net, and the number the best epoch is chosen by."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
        # Only the EMA net is scored (plain and mirrored): that is what gets exported,
        # and a third pass for the raw net would cost ~15% of an epoch.
        p_ema = predict_probs(ema, inputs.x_va, flip=False)
        p_mir = predict_probs(ema, torch.flip(inputs.x_va, dims=[2]), flip=False)
    res = {
        name: summarise(confusion_matrix(inputs.y_va, p.argmax(1).numpy()))
        for name, p in (("ema", p_ema), ("ema_flip", 0.5 * (p_ema + p_mir)))
    }
    # The exported graph: EMA weights, with or without the mirror average.
    sel = res["ema_flip" if cfg.tta_flip else "ema"]["accuracy"]
    if inputs.framed_va is not None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.bf16):
            p_framed = predict_probs(ema, inputs.framed_va, flip=cfg.tta_flip)
        framed_key = "framed_flip" if cfg.tta_flip else "framed"
        res[framed_key] = summarise(confusion_matrix(inputs.y_va_framed, p_framed.argmax(1).numpy()))
        # Both framings count: FER2013's own crops (what `evaluate fer2013` and the
        # acceptance split score) and the product's (what the pipeline serves).
        sel = 0.5 * (sel + res[framed_key]["accuracy"])
    return res, sel


def _epoch_record(epoch: int, sched, res: dict, sel: float, tot_loss: float, tot_correct: int, seen: int,
                  train_s: float, t0: float) -> dict:
    """The epoch's line of metrics.jsonl."""
    return {
        "epoch": epoch + 1,
        "lr": sched.get_last_lr()[0],
        "train_loss": tot_loss / max(seen, 1),
        "train_acc": tot_correct / max(seen, 1),
        "val_acc_ema": res["ema"]["accuracy"],
        "val_acc_ema_flip": res["ema_flip"]["accuracy"],
        "val_macro_f1_ema_flip": res["ema_flip"]["macro_f1"],
        "val_recall_ema_flip": res["ema_flip"]["recall"],
        **{f"val_acc_{key}": res[key]["accuracy"] for key in ("framed", "framed_flip") if key in res},
        **{f"val_macro_f1_{key}": res[key]["macro_f1"] for key in ("framed", "framed_flip") if key in res},
        "selected_by": sel,
        "train_s": round(train_s, 1),
        "epoch_s": round(time.time() - t0, 1),
    }
