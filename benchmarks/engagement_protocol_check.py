"""Does the label-shift cross-validation predict MSE on videos it never saw?

    python benchmarks/engagement_protocol_check.py [--repeats 6]

Each repeat takes a label-shifted 42 of EngageWild's 146 training videos away (the same draw as
the label-shift protocol, SHIFT_TEST_SHARE), runs the label-shift CV (8 repeats) on the other
104, then trains on all 104 and scores the unseen 42. Figures in
models/engagement-linear.v2.MODEL_CARD.md ("Held-out result"). Reads the shared data directory
(ENGAGEMENT_SHARED_DATA); never reads the official validation split.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from engagement.app.training import temporal as T
from engagement.app.training.temporal_nets import TrainConfig
from engagement.core.config import shared_data_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = TrainConfig()
    xs_all, ms_all, y = T.load_engagewild(shared_data_dir() / "engagewild" / "engagewild_train_test.npz", "train")
    xs, ms = T.select(xs_all, cfg.inputs), T.select(ms_all, cfg.inputs)
    quiet = lambda *_: None  # noqa: E731
    rows = []
    for outer in range(args.repeats):
        unseen = T.label_shift_splits(y, 1, 100 + outer)[0]
        sub = np.setdiff1d(np.arange(len(y)), unseen)
        cv = T.cross_validate([x[sub] for x in xs], [m[sub] for m in ms], y[sub],
                              T.label_shift_splits(y[sub], 8, outer), cfg, outer, quiet)
        real = T.cross_validate(xs, ms, y, [unseen], cfg, outer, quiet)
        rows.append((cv["model"]["mean"], real["model"]["mean"], real["mean_predictor"]["mean"]))
        print(f"repeat {outer}: train {len(sub)}, unseen {len(unseen)} | CV predicts {rows[-1][0]:.4f} | "
              f"unseen MSE {rows[-1][1]:.4f} (training mean {rows[-1][2]:.4f})", flush=True)
    a = np.array(rows)
    print(f"mean: CV {a[:, 0].mean():.4f}, unseen {a[:, 1].mean():.4f}, "
          f"mean |difference| {np.abs(a[:, 0] - a[:, 1]).mean():.4f}, largest {np.abs(a[:, 0] - a[:, 1]).max():.4f}")


if __name__ == "__main__":
    main()
