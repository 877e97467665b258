"""Which Face Landmarker output to use per attention signal: evidence on real and constructed cases.

    python benchmarks/signal_choice.py

1. Eye closure: eye aspect ratio from the lid landmarks (today) against the eyeBlink
   blendshapes, on WolfgangLanger_Pexels.mp4's frames labelled by eye (closed from 18.5 s; open
   while looking aside or back at 9.3-10.2, 13.0-14.0, 15.0-16.3 s) and on d9 (a man at a desk,
   eyes open but for blinks). Figure: separation of closed from open frames (AUC, and d' = gap of
   the means over the pooled std), each signal scaled to the person's own open level as the
   attention tracker does.
2. Eyes-only aversion: iris offset (today's eye_yaw) against the eyeLook* blendshapes (left
   minus right), WolfgangLanger's eyes-only aversion frames against her look-back frames; and
   the still participant's scatter (d9: p95 of |value - median|) in units of that aversion effect.
3. Head pose: solvePnP on the nine-point template (today) against the facial transformation
   matrix: frontal GRID speakers (mean |yaw|, |pitch|), agreement on d9, and constructed cases
   with a known answer: the astronaut photo rolled in the image plane by -30..30 deg (roll must
   follow) and mirrored (yaw must change sign, pitch and roll stay).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from clips import read_frames  # noqa: E402

from engagement.core.config import shared_data_dir  # noqa: E402
from engagement.core.records import BLENDSHAPE_NAMES  # noqa: E402
from engagement.vision.geometry import eye_features, matrix_pose, solve_head  # noqa: E402
from engagement.vision.landmarks import FaceLandmarker, LandmarkerOptions  # noqa: E402

BS = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}


def measure(frames: list[np.ndarray], fps: float, still: bool = False) -> dict[str, np.ndarray]:
    rows = []
    with FaceLandmarker(LandmarkerOptions(max_faces=1, static_images=still)) as lm:
        for i, img in enumerate(frames):
            faces = lm.detect_faces(img, i * 1000.0 / fps)
            if not faces:
                rows.append([math.nan] * 12)
                continue
            f = faces[0]
            h, w = img.shape[:2]
            eyes = eye_features(f.landmarks)
            yaw, pitch, roll, _, _ = solve_head(f.landmarks, w, h)
            m = matrix_pose(f.transform)
            b = f.blendshapes
            look_left = (b[BS["eyeLookOutLeft"]] + b[BS["eyeLookInRight"]]) / 2  # towards the person's left
            look_right = (b[BS["eyeLookInLeft"]] + b[BS["eyeLookOutRight"]]) / 2
            rows.append([
                (eyes["ear_left"] + eyes["ear_right"]) / 2,
                (b[BS["eyeBlinkLeft"]] + b[BS["eyeBlinkRight"]]) / 2,
                eyes["eye_yaw"], look_left - look_right, yaw, pitch, roll, *m,
                (b[BS["eyeLookUpLeft"]] + b[BS["eyeLookUpRight"]] - b[BS["eyeLookDownLeft"]] - b[BS["eyeLookDownRight"]]) / 2,
                eyes["eye_pitch"],
            ])  # fmt: skip
    names = ["ear", "blink", "iris_yaw", "look_yaw", "pnp_yaw", "pnp_pitch", "pnp_roll", "mat_yaw", "mat_pitch",
             "mat_roll", "look_pitch", "iris_pitch"]  # fmt: skip
    table = np.array(rows, dtype=np.float64)
    return {n: table[:, j] for j, n in enumerate(names)}


def read(relative: str) -> tuple[list[np.ndarray], float]:
    return read_frames(shared_data_dir() / "videos" / relative)


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(a positive scores above a negative), ties half."""
    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    greater = (pos[:, None] > neg[None, :]).mean()
    ties = (pos[:, None] == neg[None, :]).mean()
    return float(greater + ties / 2)


def dprime(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    return float(abs(a.mean() - b.mean()) / math.sqrt((a.var() + b.var()) / 2))


def span(t: np.ndarray, *ranges: tuple[float, float]) -> np.ndarray:
    return np.any([(t >= lo) & (t < hi) for lo, hi in ranges], axis=0)


def main() -> None:
    wl_frames, wl_fps = read("pyfeat/WolfgangLanger_Pexels.mp4")
    wl = measure(wl_frames, wl_fps)
    t = np.arange(len(wl_frames)) / wl_fps
    closed = t >= 18.5
    aside = span(t, (9.3, 10.2), (15.0, 16.3))
    back = span(t, (13.0, 14.0))
    d9_frames, d9_fps = read("liveportrait/d9.mp4")
    d9 = measure(d9_frames, d9_fps)

    print("1. eye closure: closed (WolfgangLanger >= 18.5 s) against open (her labelled open frames)")
    for name, sign in (("ear", -1.0), ("blink", 1.0)):
        # Scaled by the person's open level (p90 of openness), as AttentionTracker does.
        open_level = np.nanpercentile(wl["ear"], 90) if name == "ear" else 1.0
        v = sign * wl[name] / open_level
        print(f"   {name:6} AUC {auc(v[closed], v[aside | back]):.3f}  d' {dprime(v[closed], v[aside | back]):5.2f}"
              f"  closed {np.nanmedian(wl[name][closed]):.3f}  open {np.nanmedian(wl[name][aside | back]):.3f}"
              f"  d9 open p5/p50 {np.nanpercentile(d9[name], 5):.3f}/{np.nanmedian(d9[name]):.3f}")
    print("2. eyes-only aversion: aside (9.3-10.2, 15.0-16.3 s) against back (13.0-14.0 s); d9 scatter")
    for name in ("iris_yaw", "look_yaw", "iris_pitch", "look_pitch"):
        effect = abs(np.nanmedian(wl[name][aside]) - np.nanmedian(wl[name][back]))
        scatter = np.nanpercentile(np.abs(d9[name] - np.nanmedian(d9[name])), 95)
        print(f"   {name:10} AUC {max(auc(wl[name][aside], wl[name][back]), auc(wl[name][back], wl[name][aside])):.3f}"
              f"  d' {dprime(wl[name][aside], wl[name][back]):5.2f}  effect {effect:.3f}"
              f"  d9 p95 scatter / effect {scatter / effect:.2f}")
    print("3. head pose")
    for clip in ("brbk7n", "lbax4n", "lbbc2a", "lwbsza", "sbwe5n"):
        frames, fps = read(f"grid/{clip}.mpg")
        g = measure(frames, fps)
        print(f"   GRID {clip}: pnp |yaw| {math.degrees(np.nanmean(np.abs(g['pnp_yaw']))):5.1f}"
              f" |pitch| {math.degrees(np.nanmean(np.abs(g['pnp_pitch']))):5.1f}   matrix |yaw|"
              f" {math.degrees(np.nanmean(np.abs(g['mat_yaw']))):5.1f} |pitch| {math.degrees(np.nanmean(np.abs(g['mat_pitch']))):5.1f}")
    for axis in ("yaw", "pitch", "roll"):
        a, b = d9[f"pnp_{axis}"], d9[f"mat_{axis}"]
        ok = np.isfinite(a) & np.isfinite(b)
        diff = np.degrees(a[ok] - b[ok])
        print(f"   d9 {axis:5}: corr {np.corrcoef(a[ok], b[ok])[0, 1]:.3f}  mean diff {diff.mean():5.1f} deg"
              f"  frame-to-frame jitter (median |step|) pnp {np.degrees(np.nanmedian(np.abs(np.diff(a)))):.2f}"
              f" matrix {np.degrees(np.nanmedian(np.abs(np.diff(b)))):.2f} deg")
    for k, label in (("pnp", "solvePnP"), ("mat", "matrix")):
        # The attention cone's margin rests on a still participant's gaze scatter (d9).
        gaze = d9[f"{k}_yaw"] + d9["iris_yaw"]
        dev = np.degrees(np.abs(gaze - np.nanmedian(gaze)))
        print(f"   d9 gaze yaw with {label:8} head: p95 / p99 |deviation from median|"
              f" {np.nanpercentile(dev, 95):.1f} / {np.nanpercentile(dev, 99):.1f} deg")
    import skimage.data

    photo = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    h, w = photo.shape[:2]
    errs = {"pnp": [], "mat": []}
    base = measure([photo], 1.0, still=True)
    for angle in (-30, -20, -10, 10, 20, 30):
        # cv2 positive angle turns the image counter-clockwise: the head's roll drops by `angle`.
        rot = cv2.warpAffine(photo, cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0), (w, h),
                             borderMode=cv2.BORDER_REPLICATE)
        m = measure([rot], 1.0, still=True)
        for k in errs:
            errs[k].append(math.degrees(m[f"{k}_roll"][0] - base[f"{k}_roll"][0]) + angle)
    mirrored = measure([cv2.flip(photo, 1)], 1.0, still=True)
    for k, label in (("pnp", "solvePnP"), ("mat", "matrix")):
        print(f"   constructed {label:8}: roll error over +-10..30 deg in-plane turns: max |err|"
              f" {max(abs(e) for e in errs[k]):.1f} deg; mirror: yaw {math.degrees(base[f'{k}_yaw'][0]):5.1f} ->"
              f" {math.degrees(mirrored[f'{k}_yaw'][0]):5.1f}, pitch {math.degrees(base[f'{k}_pitch'][0]):5.1f} ->"
              f" {math.degrees(mirrored[f'{k}_pitch'][0]):5.1f} deg")


if __name__ == "__main__":
    main()
