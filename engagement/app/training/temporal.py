"""Train the temporal engagement model on Engagement-in-the-Wild and export it to ONNX.

    engagement train temporal --data ../shared/data/engagewild/engagewild_train_test.npz \
        --out models --seed 0 [--kind linear|gru]

(`python -m engagement.app.training.temporal ...` runs the same command.)

Two model kinds, served the same way (one ONNX graph, streaming state, masks):
- `linear` (shipped as engagement-linear.v2): an ordinal logistic model on exponentially weighted
  running means of the segment inputs. Every weight is constrained so that more of an input
  (away share, offset, movement) never raises the score.
- `gru`: a small GRU over the same inputs (the v1 architecture, new inputs).

Cross-validation (printed, stored in the ONNX metadata): the label-shift hold-out, repeated
(test sets over-sample the extreme labels, 40 % of levels 0 and 1, 15 % of level 2 and 50 % of
level 3, so predicting the training mean scores about 0.095 there, as it does on the official
validation split, whose labels are more extreme than the training split's), and a plain
stratified 5-fold CV. Each reports per-split MSE with mean and spread, the training-mean
predictor and a ridge regression on video means of the same inputs, on the same splits.
The shipped members are then trained on all training videos. Needs torch (the `train` extra);
the runtime never imports this module.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engagement.app.training.temporal_export import export_onnx
from engagement.app.training.temporal_nets import (
    LEVEL_VALUES,
    MODEL_NAME,
    SCREEN_CONE,
    Ensemble,
    TrainConfig,
    new_member,
    transform_numpy,
)
from engagement.temporal.features import INPUT_NAMES, engagewild_inputs

# Label-shift hold-out: share of each level's videos drawn into the test set.
SHIFT_TEST_SHARE = {0: 0.4, 1: 0.4, 2: 0.15, 3: 0.5}


def load_engagewild(path: Path, split: str = "train", cone: tuple[float, float] = SCREEN_CONE
                    ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
    """(xs, masks, y): xs/masks hold the seg15 and seg21 versions, each (N, S, N_INPUTS)."""
    with np.load(path, allow_pickle=False) as d:
        xs, masks = [], []
        for s in (15, 21):
            key = f"of_seg{s}_{split}"
            if key in d.files:
                x, m = engagewild_inputs(d[key], cone)
                xs.append(x)
                masks.append(m)
        if not xs:
            raise ValueError(f"{path} has no of_seg15_{split} / of_seg21_{split} arrays")
        y = d[f"y_{split}"].astype(np.float32) if f"y_{split}" in d.files else None
    return xs, masks, y


def select(xs: list[np.ndarray], inputs: tuple[str, ...]) -> list[np.ndarray]:
    cols = [INPUT_NAMES.index(n) for n in inputs]
    return [np.ascontiguousarray(x[..., cols]) for x in xs]


def fit_normaliser(xs: list[np.ndarray], masks: list[np.ndarray],
                   inputs: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Mean/std per input over observed values, after the log transform."""
    f = len(inputs)
    flat_x = transform_numpy(np.concatenate([x.reshape(-1, f) for x in xs]), inputs)
    flat_m = np.concatenate([m.reshape(-1, f) for m in masks]) > 0
    mean, std = np.zeros(f), np.ones(f)
    for j in range(f):
        v = flat_x[flat_m[:, j], j]
        if v.size >= 2:
            mean[j], std[j] = v.mean(), max(v.std(), 1e-6)
    return mean.astype(np.float32), std.astype(np.float32)


def _pad(seqs: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(seqs), length, seqs[0].shape[-1]), dtype=np.float32)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


def train_member(x: np.ndarray, m: np.ndarray, y: np.ndarray, cfg: TrainConfig, seed: int,
                 mean: np.ndarray, std: np.ndarray) -> nn.Module:
    """Train one member on raw sequences x/m (N, T, F) with video labels y (N,)."""
    torch.manual_seed(seed)
    net = new_member(cfg, mean, std)
    if cfg.kind == "gru":
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)
    values = torch.tensor(LEVEL_VALUES)
    level = torch.tensor(np.rint(y * 3).astype(np.int64))
    yt = torch.tensor(y)
    xt, mt = torch.from_numpy(x), torch.from_numpy(m)
    h0 = torch.zeros(1, len(x), net.hidden)
    for _ in range(cfg.epochs):
        # The label describes the whole video: the loss is on the output after its last segment
        # (padding is masked, so the last step holds that output).
        p = net(xt, mt, h0)[0][:, -1]
        score = (p * values).sum(-1)
        nll = -torch.log(p.gather(-1, level[:, None])[:, 0] + 1e-8).mean()
        loss = ((score - yt) ** 2).mean() + cfg.level_loss * nll
        if cfg.kind == "linear":
            loss = loss + cfg.l2 * (net.weights() ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if cfg.kind == "gru":
            net.fix_weights()
        sched.step()
    net.eval()
    return net


@torch.no_grad()
def predict_final(model: nn.Module, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Score after the last step of each (padded) sequence; padding is masked, so it holds."""
    ens = model if isinstance(model, Ensemble) else Ensemble([model])
    h0 = torch.zeros(len(ens.members), len(x), ens.members[0].hidden)
    score, _, _, _ = ens(torch.from_numpy(x), torch.from_numpy(m), h0)
    return score[:, -1].numpy()


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> list[np.ndarray]:
    """Test indices per fold, each label level spread evenly over the folds."""
    rng = np.random.default_rng(seed)
    out: list[list[int]] = [[] for _ in range(folds)]
    offset = 0
    for level in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == level))
        for k, i in enumerate(idx):
            out[(k + offset) % folds].append(int(i))
        offset += len(idx)
    return [np.sort(np.array(f)) for f in out]


def label_shift_splits(y: np.ndarray, repeats: int, seed: int) -> list[np.ndarray]:
    """Test indices of `repeats` label-shift hold-outs: SHIFT_TEST_SHARE of each level's videos.

    The test sets hold more extreme labels than the videos left for training, the way the
    official validation split differs from the training split.
    """
    rng = np.random.default_rng(seed)
    levels = np.rint(np.asarray(y) * 3).astype(int)
    out = []
    for _ in range(repeats):
        test: list[int] = []
        for level, share in SHIFT_TEST_SHARE.items():
            idx = np.flatnonzero(levels == level)
            if len(idx):
                test += rng.choice(idx, max(1, round(share * len(idx))), replace=False).tolist()
        out.append(np.sort(np.array(test)))
    return out


def _both_versions(xs: list[np.ndarray], ms: list[np.ndarray], idx: np.ndarray):
    """seg15 and seg21 sequences of the chosen videos, padded to one length (padding is masked)."""
    length = max(x.shape[1] for x in xs)
    return [_pad(list(x[idx]), length) for x in xs], [_pad(list(m[idx]), length) for m in ms]


def video_means(xs: list[np.ndarray], ms: list[np.ndarray], inputs: tuple[str, ...]) -> np.ndarray:
    """(N, F): per video, the transformed inputs averaged over segments, then over segmentations."""
    out = []
    for x, m in zip(xs, ms):
        z = transform_numpy(x, inputs)
        out.append((z * m).sum(1) / np.maximum(m.sum(1), 1))
    return np.mean(out, axis=0)


def ridge_predict(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, lam: float = 0.1) -> np.ndarray:
    """Ridge regression on standardised video means (the simple model to beat), clipped to [0, 1]."""
    mu, sd = train_x.mean(0), train_x.std(0) + 1e-9
    z = (train_x - mu) / sd
    w = np.linalg.solve(z.T @ z + lam * len(z) * np.eye(z.shape[1]), z.T @ (train_y - train_y.mean()))
    return np.clip((test_x - mu) / sd @ w + train_y.mean(), 0.0, 1.0)


def cross_validate(xs: list[np.ndarray], ms: list[np.ndarray], y: np.ndarray, splits: list[np.ndarray],
                   cfg: TrainConfig, seed: int, log=print, label: str = "cv") -> dict:
    """Per split: the model's MSE, the training-mean predictor's and ridge on video means'."""
    rows = {"model": [], "mean_predictor": [], "ridge_video_means": []}
    means = video_means(xs, ms, cfg.inputs)
    for k, test in enumerate(splits):
        train = np.setdiff1d(np.arange(len(y)), test)
        mean, std = fit_normaliser([x[train] for x in xs], [m[train] for m in ms], cfg.inputs)
        trx, trm = _both_versions(xs, ms, train)
        net = train_member(np.concatenate(trx), np.concatenate(trm), np.concatenate([y[train]] * len(trx)),
                           cfg, seed * 1000 + k, mean, std)
        tex, tem = _both_versions(xs, ms, test)
        pred = np.mean([predict_final(net, a, b) for a, b in zip(tex, tem)], axis=0)
        rows["model"].append(float(np.mean((pred - y[test]) ** 2)))
        rows["mean_predictor"].append(float(np.mean((y[train].mean() - y[test]) ** 2)))
        ridge = ridge_predict(means[train], y[train], means[test])
        rows["ridge_video_means"].append(float(np.mean((ridge - y[test]) ** 2)))
        log(f"{label} {k + 1}/{len(splits)}: n_test={len(test)} mse={rows['model'][-1]:.4f} "
            f"mean-predictor={rows['mean_predictor'][-1]:.4f} ridge={rows['ridge_video_means'][-1]:.4f}")
    summary = {name: {"per_split": [round(v, 5) for v in vals], "mean": float(np.mean(vals)),
                      "std": float(np.std(vals))} for name, vals in rows.items()}
    summary["model_beats_mean_predictor"] = float(np.mean(np.array(rows["model"]) < np.array(rows["mean_predictor"])))
    log(f"{label}: mse={summary['model']['mean']:.4f}±{summary['model']['std']:.4f} "
        f"(mean predictor {summary['mean_predictor']['mean']:.4f}, ridge on video means "
        f"{summary['ridge_video_means']['mean']:.4f}±{summary['ridge_video_means']['std']:.4f})")
    return summary


def train_temporal(
    data: Path,
    out: Path | None,
    seed: int = 0,
    folds: int = 5,
    repeats: int = 20,
    config: TrainConfig | None = None,
    log=print,
) -> dict:
    """Cross-validate on the training videos (both protocols), train the shipped members on all of
    them and export the ensemble to `out` (None: no export). `repeats=0` or `folds=0` skips a protocol."""
    cfg = config or TrainConfig()
    torch.set_num_threads(1)  # tiny model; one thread is fastest and leaves the cores to others
    t0 = time.time()
    xs_all, ms_all, y = load_engagewild(Path(data), "train")
    if y is None:
        raise ValueError(f"{data} has no y_train labels")
    xs, ms = select(xs_all, cfg.inputs), select(ms_all, cfg.inputs)
    report: dict = {"model": MODEL_NAME, "seed": seed, "n_videos": int(len(y)), "config": asdict(cfg)}
    if repeats:
        report["label_shift_cv"] = cross_validate(xs, ms, y, label_shift_splits(y, repeats, seed), cfg, seed, log,
                                                  "label-shift")
        report["label_shift_cv"].update(repeats=repeats, test_share_per_level=SHIFT_TEST_SHARE)
    if folds:
        report["stratified_cv"] = cross_validate(xs, ms, y, stratified_folds(y, folds, seed), cfg, seed, log,
                                                 "stratified")
        report["stratified_cv"]["folds"] = folds
    report.update(_train_and_export(xs, ms, y, cfg, seed, out, report, log))
    report["train_wall_s"] = round(time.time() - t0, 1)
    return report


def _train_and_export(xs: list[np.ndarray], ms: list[np.ndarray], y: np.ndarray, cfg: TrainConfig, seed: int,
                      out: Path | None, report: dict, log) -> dict:
    """The shipped members, each trained on all sequences; exported (with `report`'s
    cross-validation in the metadata) when `out` is given."""
    mean, std = fit_normaliser(xs, ms, cfg.inputs)
    trx, trm = _both_versions(xs, ms, np.arange(len(y)))
    members = [train_member(np.concatenate(trx), np.concatenate(trm), np.concatenate([y] * len(trx)), cfg,
                            seed * 1000 + 999 - b, mean, std) for b in range(cfg.members)]
    ensemble = Ensemble(members).eval()
    part: dict = {"norm_mean": mean.tolist(), "norm_std": std.tolist(), "ensemble": ensemble}
    if cfg.kind == "linear":
        part["weights"] = [dict(zip(cfg.inputs, mb.weights().tolist())) for mb in members]
    if out is not None:
        part.update(export_onnx(ensemble, Path(out), {**report, **part}, cfg, check_inputs=(trx[-1], trm[-1])))
        log(f"exported {part['onnx']} (ONNX vs torch, streamed: {part['onnx_vs_torch_max_abs_diff']:.1e})")
    return part
