"""How far eyes-only aversion moves the gaze estimate, and how far to trust a face: the
measurements behind the eye-in-head gain (engagement/vision/geometry.py IRIS_LANDMARK_GAIN) and
the measurability thresholds (engagement/vision/attention.py). Figures: docs/attention.md.

    python benchmarks/eye_gaze_check.py [--quality]

1. Constructed: in real face images, both irises are moved sideways by a known fraction of the
   eye's half width (iris disc cut out and pasted shifted, the opening refilled with sclera
   colour); how far does MediaPipe's iris landmark follow? (gain = landmark shift / true shift)
2. Real, head moving while the eyes hold a target (vestibulo-ocular reflex): on clips of people
   facing a camera or screen, the eyes counter-rotate the head; the total-least-squares slope of
   head yaw on eye-in-head yaw is the eye scale that makes gaze = head + eye steady.
3. Real eyes-only aversion (WolfgangLanger_Pexels.mp4, frames labelled by eye): how far the gaze
   estimate moves between "eyes turned aside, head near frontal" and "looking towards the
   camera" frames, for the eye gain before (1) and now; and, against that, how much a still
   participant's gaze (d9) scatters around its own median.
4. --quality: faces made small, blurred or dark on purpose; how well gaze, eye-in-head angle
   and eye openness still follow the original (correlation), against face size, sharpness and
   brightness as the vision stage measures them.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from clips import read_frames as read  # noqa: E402
from engagement.core.config import shared_data_dir  # noqa: E402
from engagement.vision import geometry  # noqa: E402
from engagement.vision.landmarks import FaceLandmarker, LandmarkerOptions  # noqa: E402
from engagement.vision.quality import face_box, face_quality  # noqa: E402

VIDEOS = shared_data_dir() / "videos"
# Eye contours (FaceMesh), outer corner first, inner corner at index 8.
CONTOURS = (
    [33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7],
    [263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249],
)


def raw_eye_offset(lm: np.ndarray) -> float:
    """Mean horizontal iris offset in half eye widths (the landmark's, before any scale)."""
    return -math.sin(geometry.eye_features(lm)["eye_yaw"]) * geometry.EYE_SCALE_YAW


def shift_irises(img: np.ndarray, lm: np.ndarray, fraction: float) -> np.ndarray:
    """Both irises moved along the image x axis by `fraction` of each eye's half width."""
    out = img.copy()
    yy, xx = np.mgrid[: img.shape[0], : img.shape[1]]
    for contour in CONTOURS:
        poly = lm[contour, :2].astype(np.int32)
        opening = np.zeros(img.shape[:2], np.uint8)
        cv2.fillPoly(opening, [poly], 255)
        centre = (lm[contour[0], :2] + lm[contour[8], :2]) / 2
        iris, ring = (468, range(469, 473))
        if np.linalg.norm(lm[473, :2] - centre) < np.linalg.norm(lm[468, :2] - centre):
            iris, ring = (473, range(474, 478))
        ic = lm[iris, :2]
        radius = 1.05 * np.mean([np.linalg.norm(lm[j, :2] - ic) for j in ring])
        half = np.linalg.norm(lm[contour[0], :2] - lm[contour[8], :2]) / 2
        dx = fraction * half
        inside = opening > 0
        sclera = inside & ((xx - ic[0]) ** 2 + (yy - ic[1]) ** 2 > radius**2)
        colour = np.percentile(img[sclera], 85, axis=0) if sclera.sum() > 5 else np.array([210, 210, 210])
        moved = cv2.warpAffine(img, np.float32([[1, 0, dx], [0, 1, 0]]), (img.shape[1], img.shape[0]))
        disc = inside & ((xx - ic[0] - dx) ** 2 + (yy - ic[1]) ** 2 <= radius**2)
        out[inside] = colour
        out[disc] = moved[disc]
    return out


def constructed() -> None:
    print("1. constructed: irises moved by a known fraction of the half eye width")
    # scikit-image ships a public-domain portrait (NASA); used when installed.
    spec = importlib.util.find_spec("skimage")
    astronaut = Path(spec.origin).parent / "data" / "astronaut.png" if spec and spec.origin else None
    bases = {}
    if astronaut is not None and astronaut.exists():
        bases["astronaut (x2)"] = cv2.resize(cv2.imread(str(astronaut)), None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)
    for name, rel, index in (
        ("d9 frame 72", "liveportrait/d9.mp4", 72),
        ("single_face frame 60", "pyfeat/single_face.mp4", 60),
        ("GRID brbk7n frame 30", "grid/brbk7n.mpg", 30),
        ("GRID lbax4n frame 30", "grid/lbax4n.mpg", 30),
    ):
        frames, _ = read(VIDEOS / rel, index + 1)
        bases[name] = frames[index]
    fractions = (-0.4, -0.3, -0.2, -0.1, 0.1, 0.2, 0.3, 0.4)
    medians = []
    with FaceLandmarker(LandmarkerOptions(max_faces=1, static_images=True)) as landmarker:
        for name, img in bases.items():
            (lm,) = landmarker.detect(img)[:1]
            base = raw_eye_offset(lm)
            gains = []
            for f in fractions:
                found = landmarker.detect(shift_irises(img, lm, f))
                gains.append((raw_eye_offset(found[0]) - base) / f if found else math.nan)
            medians.append(float(np.nanmedian(gains)))
            iod = geometry.eye_features(lm)["iod"]
            print(f"   {name:22s} iod {iod:5.1f} px  gain median {medians[-1]:.2f}"
                  f"  (per shift {' '.join(f'{g:.2f}' for g in gains)})")
    print(f"   median over faces: {np.median(medians):.2f}")


def pose_series(path: Path) -> np.ndarray:
    """Per frame: head yaw, eye-in-head yaw (current scale), head pitch, eye pitch, ear; NaN if no face."""
    frames, _ = read(path)
    rows = []
    with FaceLandmarker(LandmarkerOptions(max_faces=1)) as landmarker:
        for img in frames:
            found = landmarker.detect(img)
            if not found:
                rows.append([math.nan] * 5)
                continue
            h, w = img.shape[:2]
            yaw, pitch, _, _ = geometry.head_pose(found[0], w, h)
            e = geometry.eye_features(found[0])
            rows.append([yaw, e["eye_yaw"], pitch, e["eye_pitch"], (e["ear_left"] + e["ear_right"]) / 2])
    out = np.array(rows)
    out[:, :4] = np.degrees(out[:, :4])
    return out


def tls_slope(x: np.ndarray, y: np.ndarray) -> float:
    _, vectors = np.linalg.eigh(np.cov(np.vstack([x, y])))
    return vectors[1, -1] / vectors[0, -1]


def vestibulo_ocular() -> None:
    from scipy.ndimage import median_filter

    print("2. real: head moving, eyes holding a target; eye scale k making head + k * eye steady")
    print(f"   (eye angles as measured now, with the landmark gain {geometry.IRIS_LANDMARK_GAIN:.2f}:"
          " k near 1 means the gain is right)")
    rng = np.random.default_rng(0)
    for rel in ("liveportrait/d9.mp4", "pyfeat/single_face.mp4", "grid/lbax4n.mpg"):
        s = pose_series(VIDEOS / rel)
        ok = np.isfinite(s[:, 0]) & (s[:, 4] > 0.15)
        head, eye = median_filter(s[ok, 0], 5), median_filter(s[ok, 1], 5)
        k = -tls_slope(eye, head)
        n, block = len(head), 30
        boot = []
        for _ in range(300):
            starts = rng.integers(0, max(1, n - block), size=max(1, n // block))
            pick = np.concatenate([np.arange(a, a + block) for a in starts])
            boot.append(-tls_slope(eye[pick], head[pick]))
        print(f"   {rel:26s} frames {n:4d}  corr(head, eye) {np.corrcoef(head, eye)[0, 1]:+.2f}"
              f"  head sd {head.std():.1f} deg  k {k:.2f} (95 % block bootstrap {np.percentile(boot, 2.5):.2f}"
              f"..{np.percentile(boot, 97.5):.2f})")


# Frames of WolfgangLanger_Pexels.mp4 labelled by eye (24 fps).
AVERTED = [*range(224, 245), *range(294, 307), *range(344, 393)]  # eyes turned aside, head near frontal
TOWARDS = [*range(254, 283), *range(310, 339)]  # looking towards the camera


def eyes_only_aversion() -> None:
    print("3. real eyes-only aversion (WolfgangLanger, labelled frames) against a still participant's scatter (d9)")
    wl = pose_series(VIDEOS / "pyfeat/WolfgangLanger_Pexels.mp4")
    d9 = pose_series(VIDEOS / "liveportrait/d9.mp4")
    now = geometry.IRIS_LANDMARK_GAIN
    for label, gain in (("eye gain 1 (before)", 1.0), (f"eye gain {now:.2f} (now)", now)):
        scale = now / gain  # eye angles were measured with the current gain
        av = [i for i in AVERTED if wl[i, 4] > 0.15]
        to = [i for i in TOWARDS if wl[i, 4] > 0.15]
        g = wl[:, 0] + scale * wl[:, 1]
        ok = np.isfinite(d9[:, 0]) & (d9[:, 4] > 0.15)
        yaw = d9[ok, 0] + scale * d9[ok, 1]
        dg = np.abs(yaw - np.median(yaw))
        print(f"   {label:22s} aversion moves gaze yaw {g[to].mean() - g[av].mean():5.1f} deg"
              f" (eye part {scale * (wl[to, 1].mean() - wl[av, 1].mean()):4.1f}, head part"
              f" {wl[to, 0].mean() - wl[av, 0].mean():4.1f});  d9 gaze yaw around its median:"
              f" p95 {np.percentile(dg, 95):.1f}, p99 {np.percentile(dg, 99):.1f} deg")
    print(f"   screen cone half-width (34 cm at 60 cm, + 3 deg margin): {math.degrees(math.atan(17 / 60)) + 3:.1f} deg")


def quality() -> None:
    print("4. faces made small, blurred or dark: does the signal still follow the original? (correlation)")

    def run(frames, f=1.0, sigma=0.0, gain=1.0):
        rows = []
        with FaceLandmarker(LandmarkerOptions(max_faces=1)) as landmarker:
            for img in frames:
                im = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA) if f != 1 else img
                im = cv2.GaussianBlur(im, (0, 0), sigma) if sigma else im
                im = np.clip(im.astype(np.float32) * gain, 0, 255).astype(np.uint8) if gain != 1 else im
                h, w = im.shape[:2]
                found = landmarker.detect(im)
                if not found:
                    rows.append([math.nan] * 6)
                    continue
                yaw, _, _, _ = geometry.head_pose(found[0], w, h)
                e = geometry.eye_features(found[0])
                sharp, bright = face_quality(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), face_box(found[0], w, h))
                rows.append([yaw + e["eye_yaw"], e["eye_yaw"], (e["ear_left"] + e["ear_right"]) / 2, e["iod"], sharp, bright])
        return np.array(rows)

    def corr(a, b):
        ok = np.isfinite(a) & np.isfinite(b)
        return np.corrcoef(a[ok], b[ok])[0, 1] if ok.sum() > 10 else math.nan

    for name, rel, n in (("d9", "liveportrait/d9.mp4", 400), ("WolfgangLanger", "pyfeat/WolfgangLanger_Pexels.mp4", 472)):
        frames, _ = read(VIDEOS / rel, n)
        ref = run(frames)
        cases = [(f"scale {f}", {"f": f}) for f in (0.5, 0.3, 0.2, 0.15, 0.1)]
        cases += [(f"blur sigma {s}", {"sigma": s}) for s in (2, 3, 4, 6)]
        cases += [(f"light x{g}", {"gain": g}) for g in (0.3, 0.15, 0.08)]
        for label, kw in cases:
            out = run(frames, **kw)
            print(f"   {name:14s} {label:14s} found {np.isfinite(out[:, 0]).mean():4.0%}  iod {np.nanmedian(out[:, 3]):5.1f}"
                  f"  sharpness {np.nanmedian(out[:, 4]):6.1f}  brightness {np.nanmedian(out[:, 5]):5.1f}"
                  f" | corr gaze {corr(ref[:, 0], out[:, 0]):.2f}  eye {corr(ref[:, 1], out[:, 1]):.2f}"
                  f"  openness {corr(ref[:, 2], out[:, 2]):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quality", action="store_true", help="also the small / blurred / dark face table (slow)")
    args = parser.parse_args()
    if not VIDEOS.exists():
        sys.exit(f"shared clips not found: {VIDEOS} (set ENGAGEMENT_SHARED_DATA)")
    constructed()
    vestibulo_ocular()
    eyes_only_aversion()
    if args.quality:
        quality()


if __name__ == "__main__":
    main()
