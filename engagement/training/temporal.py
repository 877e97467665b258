"""Train the temporal engagement model on Engagement-in-the-Wild and export it to ONNX.

    python -m engagement.training.temporal --data ../shared/data/engagewild/engagewild_train_test.npz \
        --out models --seed 0 [--kind linear|gru]

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

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engagement.temporal.features import (
    BASELINE_MIN_S,
    BASELINE_S,
    ENGAGEWILD_DIMS,
    HOP_S,
    INPUT_NAMES,
    MIN_PRESENT_S,
    SEGMENT_S,
    engagewild_inputs,
)
from engagement.config import models_dir, shared_data_dir
from engagement.registry import InputSpec, ModelRecord, register, sha256_file
from engagement.temporal.model import LEVEL_LABELS
from engagement.vision.attention import AttentionOptions

MODEL_NAME = "engagement-linear.v2"
MODEL_VERSION = "2.0.0"
LEVEL_VALUES = (0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0)
# The inputs of v2, chosen on the label-shift CV (see the model card): the on-screen share, the
# two offsets from the participant's own direction, and the head movement that carried over.
V2_INPUTS: tuple[str, ...] = ("on_screen_share", "gaze_offset", "head_offset", "head_pitch_std", "head_yaw_std")
# Before standardising: stds, CVs and offsets are skewed, so log(v + LOG_EPS); the on-screen
# share is near 1 on engagewild, so its complement is taken: log(1 - v + SHARE_EPS), the log of
# the share of time away. Both grow with "less attention", which the linear model's signs use.
LOG_EPS = 1e-3
SHARE_EPS = 1e-2
SHARE_INPUTS = ("on_screen_share",)
# The screen cone of the on-screen share on engagewild: the vision stage's default (yaw, pitch)
# half-angles, so training and live call the same gaze "on the screen".
SCREEN_CONE = (AttentionOptions().half_width, AttentionOptions().half_height)
# Label-shift hold-out: share of each level's videos drawn into the test set.
SHIFT_TEST_SHARE = {0: 0.4, 1: 0.4, 2: 0.15, 3: 0.5}
# A fully missing step (no face in the whole segment) drives the GRU's update gate to 1 through
# this fixed weight, so the state passes through unchanged: missing is missing, not "low".
HOLD_WEIGHT = 60.0
# The citations of models.json; the model card repeats them word for word (a test checks).
CARD_CITATIONS = (
    'Dhall et al., "EmotiW 2019: Automatic emotion, engagement and cohesion prediction tasks", ICMI 2019',
    'Kaur et al., "Prediction and localization of student engagement in the wild", DICTA 2018',
)
DATA_CITATION = (
    "EmotiW 2019 Engagement in the Wild (Dhall et al., 'EmotiW 2019: Automatic emotion, engagement "
    "and cohesion prediction tasks', ICMI 2019; Kaur et al., 'Prediction and localization of student "
    "engagement in the wild', DICTA 2018); per-segment OpenFace features from an EmotiW 2019 "
    "entry's public repository (no license file); videos belong to the challenge organisers."
)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; all stored in the ONNX metadata and the returned report."""

    kind: str = "linear"  # linear | gru
    inputs: tuple[str, ...] = V2_INPUTS
    decay: float = 0.9  # linear: weight of the running mean's past per segment with a face
    l2: float = 0.001  # linear: L2 penalty on the weights (logit scale, standardised inputs)
    monotone: bool = True  # linear: weights <= 0 on every input (all grow with inattention)
    hidden: int = 4  # gru
    noise: float = 0.1  # gru: Gaussian noise on observed normalised inputs
    epochs: int = 200
    lr: float = 0.01
    weight_decay: float = 1e-2  # gru (AdamW)
    level_loss: float = 0.05  # weight of the ordinal-level cross-entropy beside the score MSE
    # Shipped members (seeds averaged), each trained on all training videos. The linear fit is
    # deterministic, so one; a GRU ensemble would take several.
    members: int = 1

    def __post_init__(self) -> None:
        if self.kind not in ("linear", "gru"):
            raise ValueError(f"kind must be linear or gru, got {self.kind!r}")
        unknown = [n for n in self.inputs if n not in INPUT_NAMES]
        if unknown or not self.inputs:
            raise ValueError(f"inputs must be a non-empty subset of {INPUT_NAMES}, got unknown {unknown}")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError("decay must be within (0, 1]")
        if self.members < 1 or self.epochs < 1:
            raise ValueError("members and epochs must be at least 1")


def transform_numpy(x: np.ndarray, inputs: tuple[str, ...]) -> np.ndarray:
    """The in-graph input transform, on raw statistics (..., len(inputs))."""
    out = np.empty_like(np.asarray(x, dtype=np.float64))
    for j, name in enumerate(inputs):
        v = np.asarray(x[..., j], dtype=np.float64)
        if name in SHARE_INPUTS:
            out[..., j] = np.log(1.0 - np.clip(v, 0.0, 1.0) + SHARE_EPS)
        else:
            out[..., j] = np.log(np.maximum(v, 0.0) + LOG_EPS)
    return out


class InputTransform(nn.Module):
    """Raw segment statistics -> standardised z (log transforms as `transform_numpy`), in the graph,
    so the runtime feeds raw statistics and has no transform to get wrong."""

    def __init__(self, inputs: tuple[str, ...], mean: np.ndarray, std: np.ndarray) -> None:
        super().__init__()
        share = np.array([n in SHARE_INPUTS for n in inputs], dtype=np.float32)
        self.register_buffer("share", torch.tensor(share))
        self.register_buffer("mean", torch.tensor(np.asarray(mean), dtype=torch.float32))
        self.register_buffer("std", torch.tensor(np.asarray(std), dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        as_share = torch.log(1.0 - torch.clamp(x, 0.0, 1.0) + SHARE_EPS)
        as_stat = torch.log(torch.clamp(x, min=0.0) + LOG_EPS)
        return (self.share * as_share + (1.0 - self.share) * as_stat - self.mean) / self.std


def _ordinal_probs(eta: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """P(level = k), k = 0..3, of a proportional-odds model: P(level >= k) = sigmoid(eta - t_k)."""
    at_least = torch.sigmoid(eta.unsqueeze(-1) - thresholds)  # (..., 3), decreasing in k
    ones = torch.ones_like(at_least[..., :1])
    zeros = torch.zeros_like(at_least[..., :1])
    upper = torch.cat([ones, at_least], -1)
    lower = torch.cat([at_least, zeros], -1)
    return torch.clamp(upper - lower, min=0.0)


class StreamingLinear(nn.Module):
    """Ordinal logistic model on exponentially weighted running means of z (one member).

    State per input: S (weighted sum of observed z) and C (weighted count), (1, batch, 2F).
    A step with any observed input multiplies both by `decay` and adds the observation; a step
    with nothing observed leaves them unchanged (missing is missing). The feature is S / C, 0
    (the training mean) for an input never observed. Computed in closed form over the time axis
    (weights decay ** (segments with a face in between)), so the ONNX graph needs no loop.
    """

    def __init__(self, inputs: tuple[str, ...], mean: np.ndarray, std: np.ndarray, decay: float,
                 monotone: bool = True) -> None:
        super().__init__()
        self.n_inputs = len(inputs)
        self.hidden = 2 * self.n_inputs
        self.monotone = monotone
        self.log_decay = math.log(decay)
        self.transform = InputTransform(inputs, mean, std)
        self.raw_w = nn.Parameter(torch.full((self.n_inputs,), -1.0 if monotone else -0.1))
        self.bias = nn.Parameter(torch.zeros(()))
        self.t0 = nn.Parameter(torch.tensor(-2.0))
        self.gaps = nn.Parameter(torch.tensor([1.0, 1.0]))

    def weights(self) -> torch.Tensor:
        # softplus keeps monotone weights <= 0: more away time or movement never raises the score
        return -nn.functional.softplus(self.raw_w) if self.monotone else self.raw_w

    def thresholds(self) -> torch.Tensor:
        return torch.cumsum(torch.cat([self.t0[None], nn.functional.softplus(self.gaps)]), 0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, h0: torch.Tensor):
        z = self.transform(x * mask) * mask
        f = self.n_inputs
        present = mask.amax(-1)  # (B, T)
        steps = torch.cumsum(present, 1)  # segments with a face so far, this call
        t = x.shape[1]
        lower = torch.tril(torch.ones(t, t, dtype=x.dtype, device=x.device))
        gap = (steps.unsqueeze(2) - steps.unsqueeze(1)) * lower  # (B, T, T), >= 0 where i <= t
        w = torch.exp(gap * self.log_decay) * lower
        carry = torch.exp(steps * self.log_decay).unsqueeze(-1)  # (B, T, 1)
        s = torch.einsum("bti,bif->btf", w, z) + carry * h0[0, :, None, :f]
        c = torch.einsum("bti,bif->btf", w, mask) + carry * h0[0, :, None, f:]
        feat = torch.where(c > 0, s / torch.clamp(c, min=1e-12), torch.zeros_like(s))
        eta = feat @ self.weights() + self.bias
        p = _ordinal_probs(eta, self.thresholds())
        hn = torch.cat([s[:, -1], c[:, -1]], -1).unsqueeze(0)
        return p, hn


class TemporalGRU(nn.Module):
    """One GRU: raw segment statistics -> z (in the graph) -> 4 level probabilities.

    Per step the GRU sees [z * mask, mask, hold]; hold = 1 when nothing was observed drives the
    update gate to 1, so a segment without a face leaves the state exactly as it was.
    """

    def __init__(self, inputs: tuple[str, ...], hidden: int, mean: np.ndarray, std: np.ndarray,
                 noise: float = 0.0) -> None:
        super().__init__()
        self.n_inputs = len(inputs)
        self.hidden = hidden
        self.noise = noise
        self.transform = InputTransform(inputs, mean, std)
        self.gru = nn.GRU(2 * self.n_inputs + 1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, len(LEVEL_VALUES))
        self.fix_weights()

    @torch.no_grad()
    def fix_weights(self) -> None:
        """Pin the hold column (gate order r, z, n: only the update gate sees it)."""
        w = self.gru.weight_ih_l0
        h = self.hidden
        w[:, -1] = 0.0
        w[h : 2 * h, -1] = HOLD_WEIGHT

    def forward(self, x: torch.Tensor, mask: torch.Tensor, h0: torch.Tensor):
        z = self.transform(x * mask)
        if self.training and self.noise:
            z = z + self.noise * torch.randn_like(z)
        present = mask.amax(dim=-1, keepdim=True)
        out, hn = self.gru(torch.cat([z * mask, mask, 1.0 - present], dim=-1), h0)
        return torch.softmax(self.head(out), dim=-1), hn


class Ensemble(nn.Module):
    """Average of M members; streaming signature (x, mask, h0) -> (score, levels, uncertainty, hN).

    x, mask: (batch, time, F) raw statistics of the model's inputs; h0: (M, batch, hidden).
    The uncertainty is the std of the averaged level distribution: each member's own spread
    plus the members' disagreement.
    """

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        self.members = nn.ModuleList(members)
        self.register_buffer("values", torch.tensor(LEVEL_VALUES, dtype=torch.float32))

    def forward(self, x: torch.Tensor, mask: torch.Tensor, h0: torch.Tensor):
        ps, hs = [], []
        for i, m in enumerate(self.members):
            p, hn = m(x, mask, h0[i : i + 1])
            ps.append(p)
            hs.append(hn)
        p = torch.stack(ps, 0).mean(0)
        score = (p * self.values).sum(-1)
        var = (p * (self.values - score.unsqueeze(-1)) ** 2).sum(-1)
        return score, p, torch.sqrt(var + 1e-12), torch.cat(hs, 0)


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


def new_member(cfg: TrainConfig, mean: np.ndarray, std: np.ndarray) -> nn.Module:
    if cfg.kind == "gru":
        return TemporalGRU(cfg.inputs, cfg.hidden, mean, std, cfg.noise)
    return StreamingLinear(cfg.inputs, mean, std, cfg.decay, cfg.monotone)


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


def _metadata(report: dict, cfg: TrainConfig, n_members: int, hidden: int) -> dict[str, str]:
    cv = {k: report[k] for k in ("label_shift_cv", "stratified_cv") if k in report}
    return {
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "kind": cfg.kind,
        "input_names": json.dumps(list(cfg.inputs)),
        "trained_inputs": json.dumps(list(cfg.inputs)),
        "uses_expression": "false",
        "engagewild_dims": json.dumps({k: list(v) for k, v in ENGAGEWILD_DIMS.items() if k in cfg.inputs}),
        "normalisation": json.dumps(
            {"in_graph": True, "log_eps": LOG_EPS, "share_eps": SHARE_EPS,
             "share_inputs": [n for n in cfg.inputs if n in SHARE_INPUTS],
             "mean": report.get("norm_mean"), "std": report.get("norm_std"),
             "formula": "inside the graph: z = (log(1 - clip(v,0,1) + share_eps) - mean) / std for share_inputs, "
                        "(log(max(v,0) + log_eps) - mean) / std otherwise; z = 0 where mask = 0. "
                        "Feed raw segment statistics."}
        ),
        "level_values": json.dumps(list(LEVEL_VALUES)),
        "members": str(n_members),
        "hidden": str(hidden),
        "segment_s": str(SEGMENT_S),
        "hop_s": str(HOP_S),
        "min_present_s": str(MIN_PRESENT_S),
        "baseline_s": str(BASELINE_S),
        "baseline_min_s": str(BASELINE_MIN_S),
        "screen_cone_rad": json.dumps(list(SCREEN_CONE)),
        "cv": json.dumps(cv),
        "train_config": json.dumps(asdict(cfg)),
        "data_citation": DATA_CITATION,
    }


def export_onnx(ensemble: Ensemble, out: Path, report: dict, cfg: TrainConfig,
                check_inputs: tuple[np.ndarray, np.ndarray] | None = None) -> dict:
    """Write models/<MODEL_NAME>.onnx with metadata and register it in models.json (merging)."""
    import onnx

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{MODEL_NAME}.onnx"
    m, f, hidden = len(ensemble.members), len(cfg.inputs), ensemble.members[0].hidden
    torch.onnx.export(
        ensemble,
        (torch.zeros(1, 3, f), torch.ones(1, 3, f), torch.zeros(m, 1, hidden)),
        str(path),
        input_names=["x", "mask", "h0"],
        output_names=["score", "levels", "uncertainty", "hN"],
        dynamic_axes={
            "x": {0: "batch", 1: "time"},
            "mask": {0: "batch", 1: "time"},
            "h0": {1: "batch"},
            "score": {0: "batch", 1: "time"},
            "levels": {0: "batch", 1: "time"},
            "uncertainty": {0: "batch", 1: "time"},
            "hN": {1: "batch"},
        },
        opset_version=17,
        dynamo=False,
    )
    model = onnx.load(str(path))
    for key, value in _metadata(report, cfg, m, hidden).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    max_diff = check_streaming(ensemble, path, check_inputs)
    if max_diff > 1e-4:
        raise RuntimeError(f"exported model differs from torch by {max_diff:.2e} (> 1e-4); not registered")
    digest = sha256_file(path)
    register(out, ModelRecord(
        name=MODEL_NAME, version=MODEL_VERSION, kind="temporal", format="onnx", file=path.name, sha256=digest,
        card=f"{MODEL_NAME}.MODEL_CARD.md", labels=LEVEL_LABELS,
        input=InputSpec(("batch", "time", f), "float32", "(batch, time, features) raw per-segment statistics with a "
                        "same-shaped mask; normalisation inside the graph", tuple(cfg.inputs)),
        data_citation=CARD_CITATIONS,
    ))
    return {"onnx": str(path), "sha256": digest, "onnx_vs_torch_max_abs_diff": max_diff}


@torch.no_grad()
def check_streaming(ensemble: Ensemble, path: Path, inputs: tuple[np.ndarray, np.ndarray] | None = None,
                    seed: int = 0) -> float:
    """Largest |ONNX Runtime fed one step at a time (state carried) - torch on whole sequences|
    over score, levels and uncertainty. Uses `inputs` (x, mask) if given, plus random sequences
    with random gaps (whole segments and single inputs missing)."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    f = ensemble.members[0].n_inputs
    x = np.abs(rng.normal(0.1, 0.1, (8, 21, f))).astype(np.float32)
    m = (rng.random(x.shape) > 0.1).astype(np.float32)
    m[rng.random((8, 21)) < 0.2] = 0.0
    cases = [(x, m)] + ([inputs] if inputs is not None else [])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    worst = 0.0
    members, hidden = len(ensemble.members), ensemble.members[0].hidden
    for cx, cm in cases:
        cx, cm = np.asarray(cx, np.float32), np.asarray(cm, np.float32)
        ref = ensemble(torch.from_numpy(cx), torch.from_numpy(cm), torch.zeros(members, len(cx), hidden))
        h = np.zeros((members, len(cx), hidden), dtype=np.float32)
        for step in range(cx.shape[1]):
            score, levels, unc, h = session.run(None, {"x": cx[:, step : step + 1], "mask": cm[:, step : step + 1], "h0": h})
            for a, b in ((score, ref[0]), (levels, ref[1]), (unc, ref[2])):
                worst = max(worst, float(np.abs(a[:, 0] - b[:, step].numpy()).max()))
    return worst


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m engagement.training.temporal", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=shared_data_dir() / "engagewild" / "engagewild_train_test.npz")
    ap.add_argument("--out", type=Path, default=models_dir())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kind", choices=("linear", "gru"), default=TrainConfig.kind)
    ap.add_argument("--folds", type=int, default=5, help="stratified CV folds (0: skip)")
    ap.add_argument("--repeats", type=int, default=20, help="label-shift hold-out repeats (0: skip)")
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument("--hidden", type=int, default=TrainConfig.hidden, help="GRU hidden size")
    ap.add_argument("--members", type=int, default=TrainConfig.members, help="seeds averaged in the shipped model")
    ap.add_argument("--decay", type=float, default=TrainConfig.decay, help="linear: running-mean decay per segment")
    ap.add_argument("--no-export", action="store_true", help="cross-validate only")
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"error: training data not found: {args.data}", file=sys.stderr)
        return 2
    try:
        cfg = TrainConfig(kind=args.kind, epochs=args.epochs, hidden=args.hidden, decay=args.decay,
                          members=args.members)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        _, _, y = load_engagewild(args.data)  # one clear line for a file that is not the data set
    except (OSError, ValueError, EOFError, KeyError) as e:
        print(f"error: cannot read {args.data}: {e}", file=sys.stderr)
        return 2
    if y is None:
        print(f"error: {args.data} has no y_train labels", file=sys.stderr)
        return 2
    report = train_temporal(args.data, None if args.no_export else args.out, args.seed, args.folds, args.repeats, cfg)
    report.pop("ensemble", None)
    print(json.dumps({k: v for k, v in report.items() if k not in ("norm_mean", "norm_std")}, indent=None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
