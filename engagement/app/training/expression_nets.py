"""The expression CNN and its export wrapper, in torch (training only; the runtime serves the ONNX
export through engagement.vision.expression)."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

LABELS: tuple[str, ...] = ("Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral")
INPUT_SIZE = 48
# Mean/std of the FER2013 Training pixels scaled to [0, 1] (computed once, fixed so that the
# exported model and the runtime agree without reading the data).
PIXEL_MEAN = 0.5076
PIXEL_STD = 0.2544


class ExpressionCNN(nn.Module):
    """VGG-style CNN over a normalised (N, 1, 48, 48) gray face; returns (N, 7) logits."""

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128, 256),
        convs_per_stage: int = 2,
        dropout: float = 0.4,
        num_classes: int = len(LABELS),
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for width in widths:
            for _ in range(convs_per_stage):
                layers += [
                    nn.Conv2d(c_in, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                c_in = width
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c_in, num_classes)
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class ExportWrapper(nn.Module):
    """What goes into the ONNX file: raw gray pixels (0..255 float32) in, probabilities out.

    Normalisation lives inside the graph so that no caller can get it wrong; with `tta_flip`
    the graph also averages the prediction of the horizontally mirrored face.
    """

    def __init__(self, net: nn.Module, tta_flip: bool = True) -> None:
        super().__init__()
        self.net = net
        self.tta_flip = tta_flip

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels / 255.0 - PIXEL_MEAN) / PIXEL_STD
        logits = self.net(x)
        probs = torch.softmax(logits, dim=1)
        if self.tta_flip:
            probs = 0.5 * (probs + torch.softmax(self.net(torch.flip(x, dims=[3])), dim=1))
        return probs


# ----------------------------------------------------------------------------- data


def load_checkpoint_model(path: Path) -> tuple[ExpressionCNN, dict]:
    """The EMA network of a best.pt/last.pt checkpoint, in eval mode, plus its meta."""
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = ck["meta"]["config"]
    net = ExpressionCNN(tuple(cfg["widths"]), cfg["convs_per_stage"], cfg["dropout"])
    net.load_state_dict(ck["ema"])
    net.eval()
    return net, ck
