"""Train the temporal engagement model (GRU over segment statistics) and export it to ONNX.

    python -m engagement.training.temporal --data ../shared/data/engagewild/engagewild_train_test.npz \
        --out models --seed 0

Runs a stratified k-fold cross-validation on the Engagement-in-the-Wild training videos (prints
per-fold and mean MSE), then ships the ensemble of the k fold models as one ONNX graph: each fold
model has seen 4/5 of the videos, and averaging them is steadier than one model on all of them.
Needs torch (the `train` extra); the runtime never imports this module.
"""

from __future__ import annotations

import argparse
import hashlib
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
    ATTENTION_INPUTS,
    ENGAGEWILD_DIMS,
    HOP_S,
    INPUT_NAMES,
    MIN_PRESENT_S,
    N_ATTENTION,
    N_INPUTS,
    SEGMENT_S,
    engagewild_inputs,
)

MODEL_NAME = "engagement-gru.v1"
MODEL_VERSION = "1.0.0"
LEVEL_VALUES = (0.0, 1.0 / 3.0, 2.0 / 3.0, 1.0)
# A fully missing step (no face in the whole segment) drives the update gate to 1 through this
# fixed weight, so the GRU state passes through unchanged: missing is missing, not "low".
# sigmoid(x) is exactly 1.0 in float32 for x > ~17; 60 leaves room for the other gate terms.
HOLD_WEIGHT = 60.0
DATA_CITATION = (
    "EmotiW 2019 Engagement in the Wild (Dhall et al., 'EmotiW 2019: Automatic emotion, engagement "
    "and cohesion prediction tasks', ICMI 2019; Kaur et al., 'Prediction and localization of student "
    "engagement in the wild', DICTA 2018); per-segment OpenFace features from an EmotiW 2019 "
    "entry's public repository (no license file); videos belong to the challenge organisers."
)


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters; all stored in the ONNX metadata and the returned report."""

    hidden: int = 16
    epochs: int = 100
    lr: float = 3e-3
    weight_decay: float = 1e-2
    level_loss: float = 0.05  # weight of the ordinal-level cross-entropy beside the score MSE
    drop_step: float = 0.15  # augmentation: a segment goes missing
    drop_input: float = 0.05  # augmentation: one input of a segment goes missing
    crop: float = 0.5  # augmentation: share of sequences cut to a random contiguous span
    min_crop: int = 3
    log_inputs: bool = True  # log(v + eps) before standardising: stds and CVs are skewed
    batch_size: int = 0  # 0: full batch
    noise: float = 0.3  # std of Gaussian noise added to observed normalised inputs
    bag: int = 1  # GRUs per fold, differing only in seed; averaged


LOG_EPS = 1e-3


class TemporalGRU(nn.Module):
    """One GRU: raw segment statistics -> normalised (in the graph) -> 4 level probabilities.

    The input transform lives in the graph, as buffers fitted on this member's training fold,
    so the exported ensemble is exactly the cross-validated members and the runtime has no
    transform to get wrong: z = (log(max(v, 0) + eps) - mean) / std, zero where masked.
    """

    def __init__(self, n_inputs: int = N_INPUTS, hidden: int = 16, mean: np.ndarray | None = None,
                 std: np.ndarray | None = None, log_inputs: bool = True, noise: float = 0.0) -> None:
        super().__init__()
        self.n_inputs = n_inputs
        self.hidden = hidden
        self.noise = noise
        self.register_buffer("mean", torch.tensor(np.zeros(n_inputs) if mean is None else mean, dtype=torch.float32))
        self.register_buffer("std", torch.tensor(np.ones(n_inputs) if std is None else std, dtype=torch.float32))
        log_mask = np.zeros(n_inputs, dtype=np.float32)
        if log_inputs:
            log_mask[:N_ATTENTION] = 1.0
        self.register_buffer("log_mask", torch.tensor(log_mask))
        self.gru = nn.GRU(2 * n_inputs + 1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, len(LEVEL_VALUES))
        self.fix_weights()

    @torch.no_grad()
    def fix_weights(self) -> None:
        """Pin the hold column and zero the expression channel (the training data has none)."""
        w = self.gru.weight_ih_l0
        h = self.hidden
        w[:, -1] = 0.0
        w[h : 2 * h, -1] = HOLD_WEIGHT  # gate order r, z, n: only the update gate sees it
        for j in range(N_ATTENTION, self.n_inputs):
            w[:, j] = 0.0
            w[:, self.n_inputs + j] = 0.0

    def forward(self, x: torch.Tensor, mask: torch.Tensor, h0: torch.Tensor):
        x = x * mask  # masked entries may hold anything finite; they must not reach the GRU
        logged = torch.log(torch.clamp(x, min=0.0) + LOG_EPS)
        z = (self.log_mask * logged + (1.0 - self.log_mask) * x - self.mean) / self.std
        if self.training and self.noise:
            z = z + self.noise * torch.randn_like(z)
        present = mask[..., :N_ATTENTION].amax(dim=-1, keepdim=True)
        inp = torch.cat([z * mask, mask, 1.0 - present], dim=-1)
        out, hn = self.gru(inp, h0)
        p = torch.softmax(self.head(out), dim=-1)
        return p, hn


class Ensemble(nn.Module):
    """Average of M GRUs; streaming signature (x, mask, h0) -> (score, levels, uncertainty, hN).

    x, mask: (batch, time, N_INPUTS), x raw segment statistics; h0: (M, batch, hidden).
    The uncertainty is the std of the averaged level distribution, which by the law of total
    variance is each member's own spread plus the members' disagreement.
    """

    def __init__(self, members: list[TemporalGRU]) -> None:
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


def load_engagewild(path: Path, split: str = "train") -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray | None]:
    """(xs, masks, y): xs/masks hold the seg15 and seg21 versions, each (N, S, N_INPUTS)."""
    with np.load(path, allow_pickle=False) as d:
        xs, masks = [], []
        for s in (15, 21):
            key = f"of_seg{s}_{split}"
            if key in d.files:
                x, m = engagewild_inputs(d[key])
                xs.append(x)
                masks.append(m)
        if not xs:
            raise ValueError(f"{path} has no of_seg15_{split} / of_seg21_{split} arrays")
        y = d[f"y_{split}"].astype(np.float32) if f"y_{split}" in d.files else None
    return xs, masks, y


def fit_normaliser(xs: list[np.ndarray], masks: list[np.ndarray], log_inputs: bool) -> tuple[np.ndarray, np.ndarray]:
    """Mean/std per input over observed values (after the log transform); identity for unseen inputs."""
    mean = np.zeros(N_INPUTS, dtype=np.float64)
    std = np.ones(N_INPUTS, dtype=np.float64)
    flat_x = np.concatenate([x.reshape(-1, N_INPUTS) for x in xs])
    flat_m = np.concatenate([m.reshape(-1, N_INPUTS) for m in masks]) > 0
    for j in range(N_INPUTS):
        v = flat_x[flat_m[:, j], j].astype(np.float64)
        if v.size < 2:
            continue
        if log_inputs and j < N_ATTENTION:
            v = np.log(np.maximum(v, 0.0) + LOG_EPS)
        mean[j], std[j] = v.mean(), max(v.std(), 1e-6)
    return mean.astype(np.float32), std.astype(np.float32)


def _pad(seqs: list[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(seqs), length, seqs[0].shape[-1]), dtype=np.float32)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


def _augment(x: np.ndarray, m: np.ndarray, cfg: TrainConfig, rng: np.random.Generator):
    """Random crops (a live session starts anywhere) and dropped segments/inputs (faces get lost)."""
    xs, ms, ws = [], [], []
    for xi, mi in zip(x, m):
        t = len(xi)
        if rng.random() < cfg.crop and t > cfg.min_crop:
            length = int(rng.integers(cfg.min_crop, t + 1))
            start = int(rng.integers(0, t - length + 1))
            xi, mi = xi[start : start + length], mi[start : start + length]
        mi = mi.copy()
        mi[:, :N_ATTENTION] *= rng.random((len(mi), N_ATTENTION)) >= cfg.drop_input
        mi[rng.random(len(mi)) < cfg.drop_step] = 0.0
        # Per-step loss, heavier late in the sequence: early steps have seen little. Steps with
        # no input carry the previous output and are not counted twice.
        w = np.arange(1, len(mi) + 1, dtype=np.float32) * (mi[:, :N_ATTENTION].max(1) > 0)
        xs.append(xi)
        ms.append(mi)
        ws.append(w / max(w.sum(), 1e-6))
    length = max(len(s) for s in xs)
    return _pad(xs, length), _pad(ms, length), _pad([w[:, None] for w in ws], length)[..., 0]


def train_member(
    x: np.ndarray, m: np.ndarray, y: np.ndarray, cfg: TrainConfig, seed: int, mean: np.ndarray, std: np.ndarray
) -> TemporalGRU:
    """Train one GRU on raw sequences x/m (N, T, F) with video labels y (N,); mean/std: its normaliser."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = TemporalGRU(N_INPUTS, cfg.hidden, mean, std, cfg.log_inputs, cfg.noise)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.epochs)
    values = torch.tensor(LEVEL_VALUES)
    level = torch.tensor(np.rint(y * 3).astype(np.int64))
    yt = torch.tensor(y)
    batch = cfg.batch_size or len(x)
    for _ in range(cfg.epochs):
        order = rng.permutation(len(x))
        for start in range(0, len(x), batch):
            b = order[start : start + batch]
            xb, mb, wb = (torch.from_numpy(a) for a in _augment(x[b], m[b], cfg, rng))
            h0 = torch.zeros(1, len(xb), cfg.hidden)
            p, _ = net(xb, mb, h0)
            score = (p * values).sum(-1)
            mse = ((score - yt[b, None]) ** 2 * wb).sum(1).mean()
            lv = level[b, None, None].expand(-1, p.shape[1], 1)
            nll = (-torch.log(p.gather(-1, lv)[..., 0] + 1e-8) * wb).sum(1).mean()
            loss = mse + cfg.level_loss * nll
            opt.zero_grad()
            loss.backward()
            opt.step()
            net.fix_weights()
        sched.step()
    net.eval()
    return net


@torch.no_grad()
def predict_final(model: nn.Module, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Score after the last step of each (padded) sequence."""
    n_members = len(model.members) if isinstance(model, Ensemble) else 1
    hidden = model.members[0].hidden if isinstance(model, Ensemble) else model.hidden
    h0 = torch.zeros(n_members, len(x), hidden)
    xt, mt = torch.from_numpy(x), torch.from_numpy(m)
    if isinstance(model, Ensemble):
        score, _, _, _ = model(xt, mt, h0)
    else:
        p, _ = model(xt, mt, h0)
        score = (p * torch.tensor(LEVEL_VALUES)).sum(-1)
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


def _both_versions(xs: list[np.ndarray], ms: list[np.ndarray], idx: np.ndarray):
    """seg15 and seg21 sequences of the chosen videos, padded to one length (padding is masked)."""
    length = max(x.shape[1] for x in xs)
    seqx, seqm = [], []
    for x, m in zip(xs, ms):
        seqx.append(_pad(list(x[idx]), length))
        seqm.append(_pad(list(m[idx]), length))
    return seqx, seqm


def train_temporal(
    data: Path,
    out: Path | None,
    seed: int = 0,
    folds: int = 5,
    config: TrainConfig | None = None,
    log=print,
) -> dict:
    """Cross-validate on the training videos, export the fold ensemble to `out` (None: no export)."""
    cfg = config or TrainConfig()
    torch.set_num_threads(1)  # tiny model; one thread is fastest and leaves the cores to others
    t0 = time.time()
    xs, ms, y = load_engagewild(Path(data), "train")
    if y is None:
        raise ValueError(f"{data} has no y_train labels")
    fold_idx = stratified_folds(y, folds, seed)
    members, fold_mse = [], []
    oof = np.zeros(len(y), dtype=np.float64)
    for k, test in enumerate(fold_idx):
        train = np.setdiff1d(np.arange(len(y)), test)
        mean, std = fit_normaliser([x[train] for x in xs], [m[train] for m in ms], cfg.log_inputs)
        trx, trm = _both_versions(xs, ms, train)
        # Both segmentations of every training video, as two sequences with the same label.
        nets = [
            train_member(np.concatenate(trx), np.concatenate(trm), np.concatenate([y[train]] * len(trx)), cfg,
                         seed * 1000 + k * 10 + b, mean, std)
            for b in range(cfg.bag)
        ]
        tex, tem = _both_versions(xs, ms, test)
        pred = np.mean([predict_final(net, a, b) for net in nets for a, b in zip(tex, tem)], axis=0)
        oof[test] = pred
        mse = float(np.mean((pred - y[test]) ** 2))
        fold_mse.append(mse)
        members.extend(nets)
        log(f"fold {k + 1}/{folds}: n_test={len(test)} mse={mse:.4f}")
    mean_mse, std_mse = float(np.mean(fold_mse)), float(np.std(fold_mse))
    baseline = float(np.mean([np.mean((y[t] - y[np.setdiff1d(np.arange(len(y)), t)].mean()) ** 2) for t in fold_idx]))
    log(f"cv mse={mean_mse:.4f}±{std_mse:.4f} (predicting the training-fold mean: {baseline:.4f})")
    report = {
        "model": MODEL_NAME,
        "seed": seed,
        "folds": folds,
        "fold_mse": fold_mse,
        "cv_mse_mean": mean_mse,
        "cv_mse_std": std_mse,
        "cv_mse_pooled": float(np.mean((oof - y) ** 2)),
        "mean_baseline_mse": baseline,
        "n_videos": int(len(y)),
        "config": asdict(cfg),
        "train_wall_s": None,
        "norm_mean": [m.mean.tolist() for m in members],
        "norm_std": [m.std.tolist() for m in members],
    }
    ensemble = Ensemble(members).eval()
    report["check_inputs"] = (np.concatenate(xs[1:]), np.concatenate(ms[1:]))  # the seg21 sequences
    report["train_wall_s"] = round(time.time() - t0, 1)
    log(f"training wall time {report['train_wall_s']} s")
    if out is not None:
        report.update(export_onnx(ensemble, Path(out), report, cfg))
    report.pop("check_inputs")
    report["ensemble"] = ensemble
    return report


def train_sequences(x: np.ndarray, m: np.ndarray, y: np.ndarray, out: Path | None, seed: int = 0,
                    folds: int = 5, config: TrainConfig | None = None, log=print) -> dict:
    """Cross-validate and (optionally) export on any (N, T, N_INPUTS) sequences with labels in [0, 1],
    e.g. DAiSEE clips from `engagement.temporal.daisee.extract_sequences`."""
    cfg = config or TrainConfig()
    torch.set_num_threads(1)
    t0 = time.time()
    y = np.asarray(y, np.float32)
    fold_idx = stratified_folds(np.rint(y * 3), folds, seed)
    members, fold_mse = [], []
    for k, test in enumerate(fold_idx):
        train = np.setdiff1d(np.arange(len(y)), test)
        mean, std = fit_normaliser([x[train]], [m[train]], cfg.log_inputs)
        nets = [train_member(x[train], m[train], y[train], cfg, seed * 1000 + k * 10 + b, mean, std) for b in range(cfg.bag)]
        pred = np.mean([predict_final(net, x[test], m[test]) for net in nets], axis=0)
        fold_mse.append(float(np.mean((pred - y[test]) ** 2)))
        members.extend(nets)
        log(f"fold {k + 1}/{folds}: n_test={len(test)} mse={fold_mse[-1]:.4f}")
    report = {"model": MODEL_NAME, "seed": seed, "folds": folds, "fold_mse": fold_mse,
              "cv_mse_mean": float(np.mean(fold_mse)), "cv_mse_std": float(np.std(fold_mse)),
              "n_videos": int(len(y)), "config": asdict(cfg),
              "norm_mean": [n.mean.tolist() for n in members], "norm_std": [n.std.tolist() for n in members]}
    log(f"cv mse={report['cv_mse_mean']:.4f}±{report['cv_mse_std']:.4f}")
    ensemble = Ensemble(members).eval()
    report["train_wall_s"] = round(time.time() - t0, 1)
    if out is not None:
        report["check_inputs"] = (x, m)
        report.update(export_onnx(ensemble, Path(out), report, cfg))
        report.pop("check_inputs")
    report["ensemble"] = ensemble
    return report


def _metadata(report: dict, cfg: TrainConfig, n_members: int) -> dict[str, str]:
    return {
        "name": MODEL_NAME,
        "version": MODEL_VERSION,
        "input_names": json.dumps(list(INPUT_NAMES)),
        "attention_inputs": json.dumps(list(ATTENTION_INPUTS)),
        "trained_inputs": json.dumps(list(ATTENTION_INPUTS)),  # expression channel: untrained, masked
        "expression_trained": "false",
        "engagewild_dims": json.dumps({k: list(v) for k, v in ENGAGEWILD_DIMS.items()}),
        "normalisation": json.dumps(
            {"in_graph": True, "log_eps": LOG_EPS, "log_inputs": list(ATTENTION_INPUTS) if cfg.log_inputs else [],
             "mean_per_member": report["norm_mean"], "std_per_member": report["norm_std"],
             "formula": "inside the graph, per member: z = (log(max(v,0)+log_eps) - mean) / std for log_inputs, "
                        "(v - mean) / std otherwise; z = 0 where mask = 0. Feed raw segment statistics."}
        ),
        "level_values": json.dumps(list(LEVEL_VALUES)),
        "members": str(n_members),
        "hidden": str(cfg.hidden),
        "segment_s": str(SEGMENT_S),
        "hop_s": str(HOP_S),
        "min_present_s": str(MIN_PRESENT_S),
        "cv": json.dumps({"folds": report["folds"], "fold_mse": report["fold_mse"], "mean": report["cv_mse_mean"],
                          "std": report["cv_mse_std"], "seed": report["seed"]}),
        "train_config": json.dumps(asdict(cfg)),
        "data_citation": DATA_CITATION,
    }


def export_onnx(ensemble: Ensemble, out: Path, report: dict, cfg: TrainConfig) -> dict:
    """Write models/engagement-gru.v1.onnx with metadata and register it in models.json (merging)."""
    import onnx

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{MODEL_NAME}.onnx"
    m = len(ensemble.members)
    x = torch.zeros(1, 3, N_INPUTS)
    mask = torch.ones(1, 3, N_INPUTS)
    h0 = torch.zeros(m, 1, cfg.hidden)
    torch.onnx.export(
        ensemble,
        (x, mask, h0),
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
    for key, value in _metadata(report, cfg, m).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    max_diff = check_streaming(ensemble, path, report.get("check_inputs"))
    if max_diff > 1e-4:
        raise RuntimeError(f"exported model differs from torch by {max_diff:.2e} (> 1e-4); not registered")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    register(out / "models.json", MODEL_NAME, path.name, digest)
    return {"onnx": str(path), "sha256": digest, "onnx_vs_torch_max_abs_diff": max_diff}


@torch.no_grad()
def check_streaming(ensemble: Ensemble, path: Path, inputs: tuple[np.ndarray, np.ndarray] | None = None,
                    seed: int = 0) -> float:
    """Largest |ONNX Runtime fed one step at a time (state carried) - torch on whole sequences|
    over score, levels and uncertainty. Uses `inputs` (x, mask) if given, plus random sequences
    with random gaps (whole segments and single inputs missing)."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    n, t = 8, 21
    x = np.abs(rng.normal(0.1, 0.1, (n, t, N_INPUTS))).astype(np.float32)
    m = (rng.random((n, t, N_INPUTS)) > 0.1).astype(np.float32)
    m[rng.random((n, t)) < 0.2] = 0.0
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


def register(registry: Path, name: str, file: str, digest: str) -> None:
    """Add/replace one entry in models.json, keeping every other model's entry as it is."""
    data = {}
    if registry.exists():
        text = registry.read_text()
        data = json.loads(text) if text.strip() else {}
    data[name] = {"file": file, "sha256": digest}
    tmp = registry.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(registry)


def main(argv: list[str] | None = None) -> int:
    from engagement.config import models_dir, shared_data_dir

    ap = argparse.ArgumentParser(prog="python -m engagement.training.temporal", description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=shared_data_dir() / "engagewild" / "engagewild_train_test.npz")
    ap.add_argument("--out", type=Path, default=models_dir())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument("--hidden", type=int, default=TrainConfig.hidden)
    ap.add_argument("--no-export", action="store_true", help="cross-validate only")
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"error: training data not found: {args.data}", file=sys.stderr)
        return 2
    cfg = TrainConfig(epochs=args.epochs, hidden=args.hidden)
    report = train_temporal(args.data, None if args.no_export else args.out, args.seed, args.folds, cfg)
    report.pop("ensemble", None)
    print(json.dumps({k: v for k, v in report.items() if k not in ("norm_mean", "norm_std")}, indent=None))
    return 0


if __name__ == "__main__":
    sys.exit(main())
