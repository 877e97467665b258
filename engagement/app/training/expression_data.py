"""FER2013 for training: the npz, FER+ vote targets, pixel normalisation and batch augmentation
with torch ops (torchvision cannot be imported with the CPU torch build here)."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from engagement.app.training.expression_nets import LABELS, PIXEL_MEAN, PIXEL_STD

NPZ_NAME = "fer2013_train_publictest.npz"


AUG_PRESETS: dict[str, dict] = {
    # First cycle from scratch: strong regularisation.
    "strong": dict(rotate_deg=15.0, scale=(0.85, 1.15), shift=0.10, hflip=0.5, erase_p=0.5,
                   erase_area=(0.02, 0.15), brightness=0.25, contrast=0.35),
    # Second cycle: after 55 epochs of "strong" the net still underfit (train accuracy under
    # augmentation 0.735 vs 0.68 on PublicTest), so the fine-tuning cycle eases off.
    "light": dict(rotate_deg=10.0, scale=(0.9, 1.1), shift=0.08, hflip=0.5, erase_p=0.25,
                  erase_area=(0.02, 0.12), brightness=0.2, contrast=0.25),
}
# v2's fine-tuning cycle: "light" geometry plus what classroom webcams do to a face: gamma
# (under/over-exposure), defocus blur, sensor noise and JPEG compression.
AUG_PRESETS["webcam"] = {
    **AUG_PRESETS["light"],
    "gamma": (0.6, 1.6),
    "blur_p": 0.3,
    "blur_sigma": (0.4, 1.2),
    "noise_p": 0.3,
    "noise_std": (0.01, 0.05),
    "jpeg_p": 0.3,
    "jpeg_quality": (25, 90),
}


def load_fer2013(data: Path) -> dict[str, np.ndarray]:
    """Read the shared npz once; `data` may be the folder or the file itself."""
    path = data / NPZ_NAME if data.is_dir() else data
    if not path.exists():
        raise FileNotFoundError(f"FER2013 npz not found: {path}")
    with np.load(path, allow_pickle=False) as z:
        # Each array is read exactly once (every z[...] access decompresses it again).
        arrays = {"pixels": z["pixels"], "usage": z["usage"], "fer_label": z["fer_label"]}
        if "ferplus_votes" in z.files:  # only --ferplus-weight needs them
            arrays["ferplus_votes"] = z["ferplus_votes"]
        return arrays


# FER+ vote columns (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt,
# unknown, not-a-face) -> FER2013 label index; contempt, unknown and not-a-face have no FER2013
# class and are dropped.
FERPLUS_TO_FER = {0: 6, 1: 3, 2: 5, 3: 4, 4: 0, 5: 1, 6: 2}


def soft_targets(labels: np.ndarray, votes: np.ndarray, weight: float) -> np.ndarray:
    """(N, 7) float32 targets: (1 - weight) * one-hot(original label) + weight * FER+ vote shares.

    Rows with no vote for any FER2013 class keep their one-hot label.
    """
    onehot = np.eye(len(LABELS), dtype=np.float32)[labels]
    shares = np.zeros_like(onehot)
    for src, dst in FERPLUS_TO_FER.items():
        shares[:, dst] = votes[:, src]
    total = shares.sum(1, keepdims=True)
    shares = np.where(total > 0, shares / np.maximum(total, 1), onehot)
    return (1.0 - weight) * onehot + weight * shares


def split_arrays(arrays: dict[str, np.ndarray], split: str) -> tuple[np.ndarray, np.ndarray]:
    mask = arrays["usage"] == split
    if not mask.any():
        raise ValueError(f"split {split!r} has no rows")
    return arrays["pixels"][mask], arrays["fer_label"][mask].astype(np.int64)


def normalise(pixels_u8: torch.Tensor) -> torch.Tensor:
    """(N, 48, 48) uint8 -> (N, 1, 48, 48) float normalised like the exported graph does."""
    return (pixels_u8.float().unsqueeze(1) / 255.0 - PIXEL_MEAN) / PIXEL_STD


def jpeg_roundtrip(pixels_u8: torch.Tensor, aug: dict, gen: torch.Generator) -> torch.Tensor:
    """Re-encode a random share of a uint8 batch (N, H, W) as JPEG at a random quality."""
    if not aug.get("jpeg_p"):
        return pixels_u8
    n = pixels_u8.shape[0]
    chosen = (torch.rand(n, generator=gen) < aug["jpeg_p"]).tolist()
    lo, hi = aug["jpeg_quality"]
    quality = torch.randint(lo, hi + 1, (n,), generator=gen).tolist()
    out = pixels_u8.numpy().copy()
    for i in range(n):
        if chosen[i]:
            ok, buf = cv2.imencode(".jpg", out[i], [cv2.IMWRITE_JPEG_QUALITY, int(quality[i])])
            out[i] = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE)
    return torch.from_numpy(out)


def _gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image Gaussian blur of (N, 1, H, W) with a 5-tap separable kernel of std `sigma` (N,)."""
    taps = torch.arange(-2, 3, dtype=x.dtype).view(1, 5)
    k = torch.exp(-(taps**2) / (2 * sigma.view(-1, 1) ** 2))
    k = k / k.sum(1, keepdim=True)  # (N, 5)
    n, _, h, w = x.shape
    xg = x.reshape(1, n, h, w)
    xg = F.conv2d(F.pad(xg, (2, 2, 0, 0), mode="replicate"), k.view(n, 1, 1, 5), groups=n)
    xg = F.conv2d(F.pad(xg, (0, 0, 2, 2), mode="replicate"), k.view(n, 1, 5, 1), groups=n)
    return xg.reshape(n, 1, h, w)


def augment(x: torch.Tensor, aug: dict, gen: torch.Generator) -> torch.Tensor:
    """Batch augmentation on normalised images (N, 1, H, W); all randomness from `gen`."""
    n = x.shape[0]

    def u(lo: float, hi: float, size: int = n) -> torch.Tensor:
        return torch.rand(size, generator=gen) * (hi - lo) + lo

    if "gamma" in aug:
        # Exposure: gamma on [0, 1] intensities, then back to the normalised scale.
        g = u(*aug["gamma"]).view(n, 1, 1, 1)
        x = (((x * PIXEL_STD + PIXEL_MEAN).clamp(0, 1)) ** g - PIXEL_MEAN) / PIXEL_STD
    if aug.get("blur_p"):
        blurred = _gaussian_blur(x, u(*aug["blur_sigma"]))
        x = torch.where((torch.rand(n, generator=gen) < aug["blur_p"]).view(n, 1, 1, 1), blurred, x)
    if aug.get("noise_p"):
        std = u(*aug["noise_std"]).view(n, 1, 1, 1) / PIXEL_STD
        noisy = x + torch.randn(x.shape, generator=gen) * std
        x = torch.where((torch.rand(n, generator=gen) < aug["noise_p"]).view(n, 1, 1, 1), noisy, x)

    # Photometric first (on [0,1]-like values): low light and contrast changes are what
    # classroom webcams add to faces.
    b = u(-aug["brightness"], aug["brightness"]).view(n, 1, 1, 1) / PIXEL_STD
    c = u(1 - aug["contrast"], 1 + aug["contrast"]).view(n, 1, 1, 1)
    mean = x.mean(dim=(2, 3), keepdim=True)
    x = (x - mean) * c + mean + b

    # Geometric: one affine per image (rotation, isotropic scale, shift, mirror).
    ang = u(-aug["rotate_deg"], aug["rotate_deg"]) * math.pi / 180
    scale = u(*aug["scale"])
    flip = torch.where(torch.rand(n, generator=gen) < aug["hflip"], -1.0, 1.0)
    tx, ty = u(-aug["shift"], aug["shift"]) * 2, u(-aug["shift"], aug["shift"]) * 2
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack(
        [torch.stack([cos * flip, -sin, tx], 1), torch.stack([sin * flip, cos, ty], 1)], 1
    )
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Border padding: the replicated edge looks like the rest of the photo, zeros would not.
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    # Random erasing (one rectangle per chosen image), filled with noise.
    h, w = x.shape[2], x.shape[3]
    area = u(*aug["erase_area"]) * h * w
    ratio = torch.exp(u(math.log(0.3), math.log(3.3)))
    eh = torch.sqrt(area * ratio).clamp(1, h - 1).long()
    ew = torch.sqrt(area / ratio).clamp(1, w - 1).long()
    y0 = (torch.rand(n, generator=gen) * (h - eh)).long()
    x0 = (torch.rand(n, generator=gen) * (w - ew)).long()
    ys = torch.arange(h).view(1, h, 1)
    xs = torch.arange(w).view(1, 1, w)
    box = (
        (ys >= y0.view(n, 1, 1))
        & (ys < (y0 + eh).view(n, 1, 1))
        & (xs >= x0.view(n, 1, 1))
        & (xs < (x0 + ew).view(n, 1, 1))
    )
    chosen = (torch.rand(n, generator=gen) < aug["erase_p"]).view(n, 1, 1)
    mask = (box & chosen).unsqueeze(1)
    noise = torch.randn(x.shape, generator=gen)
    return torch.where(mask, noise, x)


# ----------------------------------------------------------------------------- metrics
