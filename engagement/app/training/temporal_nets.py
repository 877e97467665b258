"""The temporal engagement model's networks and hyper-parameters, in torch (training only).

`StreamingLinear` (shipped as engagement-linear.v2) and `TemporalGRU` read raw segment
statistics, normalise them inside the graph and carry a state from segment to segment, so the
exported ONNX graph streams; `Ensemble` averages members into one graph with the runtime's
signature (engagement.temporal.model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from engagement.temporal.features import INPUT_NAMES
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


def new_member(cfg: TrainConfig, mean: np.ndarray, std: np.ndarray) -> nn.Module:
    if cfg.kind == "gru":
        return TemporalGRU(cfg.inputs, cfg.hidden, mean, std, cfg.noise)
    return StreamingLinear(cfg.inputs, mean, std, cfg.decay, cfg.monotone)
