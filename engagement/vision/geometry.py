"""Head pose, gaze and eye openness from MediaPipe's 478 face landmarks. Numbers only.

Camera model (documented, used everywhere): a pinhole camera with focal length equal to the
image width in pixels (about 53 degrees horizontal field of view, typical of laptop webcams),
principal point at the image centre, no lens distortion. Absolute distances (head_tz) are only
as right as that guess; angles are insensitive to it for faces near the image centre.

Coordinates follow OpenCV's camera frame: x to the image's right, y down, z away from the
camera. A head looking straight into the camera has yaw = pitch = roll = 0.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# A generic adult head (mm) in the camera frame for a face looking at the camera, nose tip at
# the origin. Measured from MediaPipe's own 3D landmarks on a real frontal face (scikit-image's
# public-domain astronaut photo), rotated so the eye line is horizontal and the eye-mouth plane
# faces the camera, mirrored to be left-right symmetric, and scaled to 90 mm between the outer
# eye corners (adult average). Matching the landmarker's own notion of depth matters more than
# textbook anthropometry: a flatter textbook model gave +-15 degree yaw on frontal faces.
# Keys are MediaPipe face landmark indices (the FaceMesh topology the Face Landmarker keeps); "right"/"left" are the participant's own.
MODEL_POINTS_MM: dict[int, tuple[float, float, float]] = {
    1: (0.0, 0.0, 0.0),  # nose tip
    152: (0.0, 75.6, 35.8),  # chin
    168: (0.0, -41.3, 23.2),  # nose bridge between the eyes
    33: (-45.0, -35.3, 45.1),  # right eye, outer corner (image left)
    133: (-17.6, -33.4, 39.9),  # right eye, inner corner
    263: (45.0, -35.3, 45.1),  # left eye, outer corner (image right)
    362: (17.6, -33.4, 39.9),  # left eye, inner corner
    61: (-32.1, 20.5, 42.5),  # mouth, right corner
    291: (32.1, 20.5, 42.5),  # mouth, left corner
}
POSE_INDICES = np.array(list(MODEL_POINTS_MM), dtype=np.int64)
POSE_MODEL = np.array(list(MODEL_POINTS_MM.values()), dtype=np.float64)

# Eye contours (FaceMesh): corners and five upper/lower lid pairs from outer to inner corner.
RIGHT_EYE = {"outer": 33, "inner": 133, "lids": ((161, 163), (160, 144), (159, 145), (158, 153), (157, 154))}
LEFT_EYE = {"outer": 263, "inner": 362, "lids": ((388, 390), (387, 373), (386, 374), (385, 380), (384, 381))}
IRIS_CENTRES = (468, 473)  # with refine_landmarks; which eye each belongs to is decided by distance

# Eyeball radius over half the corner-to-corner eye width: ~12 mm over ~15 mm. Turns an iris
# offset within the eye opening into an eye rotation angle.
EYEBALL_RADIUS_RATIO = 0.8
# How far MediaPipe's iris landmark moves sideways per unit of real iris movement: measured
# (docs/attention.md, benchmarks/eye_gaze_check.py), irises moved sideways by a known amount in
# real face images moved the landmark by 0.31-0.66 of it (median 0.50); on a real clip where the
# head moves while the eyes hold a target (d9), the eyes' counter-rotation matched the head's
# with the gain near 1 (0.68-1.2). 2/3 lies between; with it a real eyes-only aversion moves the
# gaze estimate by 27 deg instead of 19 (outside the screen cone rather than on its edge). Up and
# down, the lids move with the iris and no measurement here says more, so that axis keeps 1.
IRIS_LANDMARK_GAIN = 2.0 / 3.0
# Landmark offset in half eye widths per sin(eye angle), sideways and up/down.
EYE_SCALE_YAW = EYEBALL_RADIUS_RATIO * IRIS_LANDMARK_GAIN
EYE_SCALE_PITCH = EYEBALL_RADIUS_RATIO


def camera_matrix(width: int, height: int) -> np.ndarray:
    f = float(width)
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def euler_from_matrix(rot: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in radians for rot = Rz(roll) @ Ry(yaw) @ Rx(pitch)."""
    yaw = math.asin(max(-1.0, min(1.0, -rot[2, 0])))
    pitch = math.atan2(rot[2, 1], rot[2, 2])
    roll = math.atan2(rot[1, 0], rot[0, 0])
    return yaw, pitch, roll


def matrix_from_euler(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Inverse of `euler_from_matrix` (used by tests and synthetic faces)."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ ry @ rx


# The head turns about the neck, roughly this far behind the nose tip (mm, head frame): the point
# whose position a head turn leaves in place, used to tell a moved camera from a turned head.
HEAD_PIVOT_MM = np.array([0.0, 0.0, 90.0])


def solve_head(landmarks: np.ndarray, width: int, height: int) -> tuple[float, float, float, float, np.ndarray]:
    """(yaw, pitch, roll, tz_mm, pivot) of the head by solvePnP on the model points. `tz_mm` is
    the nose tip's distance from the camera, `pivot` the position (mm, camera frame) of the
    head's turning point. NaNs when no pose is found.

    Signs: with the camera frame above, a rotation about +y (yaw > 0) turns the face towards
    the image's left, about +x (pitch > 0) tips the chin down, about +z (roll > 0) tilts the
    head clockwise in the image.
    """
    image_points = landmarks[POSE_INDICES, :2].astype(np.float64)
    # SQPnP finds the global optimum; the default iterative solver sometimes settles on a
    # mirrored solution behind the camera (roll of 180 degrees) for real faces.
    ok, rvec, tvec = cv2.solvePnP(
        POSE_MODEL, image_points, camera_matrix(width, height), None, flags=cv2.SOLVEPNP_SQPNP
    )
    if not ok or tvec[2, 0] <= 0:
        return math.nan, math.nan, math.nan, math.nan, np.full(3, math.nan)
    rot, _ = cv2.Rodrigues(rvec)
    yaw, pitch, roll = euler_from_matrix(rot)
    return yaw, pitch, roll, float(tvec[2, 0]), rot @ HEAD_PIVOT_MM + tvec[:, 0]


# MediaPipe's facial transformation matrix maps its canonical face (x right, y up, z towards the
# viewer) to a camera with y up and z towards the viewer; OpenCV's camera frame has y and z flipped.
_GL_TO_CV = np.diag([1.0, -1.0, -1.0])


def matrix_pose(transform: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in radians of the Face Landmarker's facial transformation matrix, in
    this module's convention (the same signs as `solve_head`)."""
    return euler_from_matrix(_GL_TO_CV @ np.asarray(transform, np.float64)[:3, :3] @ _GL_TO_CV)


def head_pose(landmarks: np.ndarray, width: int, height: int) -> tuple[float, float, float, float]:
    """(yaw, pitch, roll, tz_mm): `solve_head` without the pivot."""
    return solve_head(landmarks, width, height)[:4]


def _eye_measures(landmarks: np.ndarray, eye: dict, iris: np.ndarray, scale: float):
    outer = landmarks[eye["outer"], :2]
    inner = landmarks[eye["inner"], :2]
    width = float(np.linalg.norm(outer - inner))
    gaps = [float(np.linalg.norm(landmarks[u, :2] - landmarks[d, :2])) for u, d in eye["lids"]]
    # Eye aspect ratio over the three central lid pairs (Soukupova & Cech 2016 style).
    ear = (gaps[1] + gaps[2] + gaps[3]) / (3.0 * width) if width > 0 else math.nan
    # Iris offset from the eye centre, in units of half the eye width, along the eye's own axes
    # (so head roll does not leak into gaze).
    centre = (outer + inner) / 2.0
    x_axis = (inner - outer) if eye is RIGHT_EYE else (outer - inner)  # points to image right
    x_axis = x_axis / (np.linalg.norm(x_axis) or 1.0)
    y_axis = np.array([-x_axis[1], x_axis[0]])  # image down
    offset = iris[:2] - centre
    half = width / 2.0 if width > 0 else math.nan
    return ear, [g / scale for g in gaps], float(offset @ x_axis) / half, float(offset @ y_axis) / half


def eye_features(landmarks: np.ndarray) -> dict[str, float | list[float]]:
    """Eye openness (EAR), five lid gaps per eye / inter-ocular distance, eye-in-head angles."""
    right_centre = (landmarks[RIGHT_EYE["outer"], :2] + landmarks[RIGHT_EYE["inner"], :2]) / 2
    left_centre = (landmarks[LEFT_EYE["outer"], :2] + landmarks[LEFT_EYE["inner"], :2]) / 2
    iod = float(np.linalg.norm(right_centre - left_centre))
    a, b = landmarks[IRIS_CENTRES[0]], landmarks[IRIS_CENTRES[1]]
    if np.linalg.norm(a[:2] - right_centre) > np.linalg.norm(b[:2] - right_centre):
        a, b = b, a
    scale = iod if iod > 0 else math.nan
    ear_r, gaps_r, gx_r, gy_r = _eye_measures(landmarks, RIGHT_EYE, a, scale)
    ear_l, gaps_l, gx_l, gy_l = _eye_measures(landmarks, LEFT_EYE, b, scale)
    gx = (gx_r + gx_l) / 2.0
    gy = (gy_r + gy_l) / 2.0
    return {
        "iod": iod,
        "ear_right": ear_r,
        "ear_left": ear_l,
        "lids_right": gaps_r,
        "lids_left": gaps_l,
        # An iris towards the image's left is a look to the left: positive, like head yaw.
        "eye_yaw": math.asin(max(-1.0, min(1.0, -gx / EYE_SCALE_YAW))),
        "eye_pitch": math.asin(max(-1.0, min(1.0, gy / EYE_SCALE_PITCH))),
    }


class BlinkDetector:
    """Counts blinks of one face from its eye aspect ratio over time.

    A blink is a dip below `close_ratio` of the face's own open-eye level that recovers above
    `open_ratio` within `max_ms`; longer closures are not blinks (eyes closed, looking down).
    The open level adapts slowly, so glasses or narrow eyes set their own baseline.
    """

    def __init__(self, close_ratio: float = 0.65, open_ratio: float = 0.85, max_ms: float = 500.0):
        self.close_ratio = close_ratio
        self.open_ratio = open_ratio
        self.max_ms = max_ms
        self.baseline: float | None = None
        self.closed_since: float | None = None

    def update(self, ear: float, t_ms: float) -> bool:
        if not math.isfinite(ear):
            return False
        if self.baseline is None:
            self.baseline = ear
            return False
        blink = False
        if self.closed_since is None:
            if ear < self.close_ratio * self.baseline:
                self.closed_since = t_ms
            else:
                # Follow the open level: fast up, slow down (a dip must not pull it down).
                rate = 0.2 if ear > self.baseline else 0.02
                self.baseline += rate * (ear - self.baseline)
        elif ear > self.open_ratio * self.baseline:
            blink = (t_ms - self.closed_since) <= self.max_ms
            self.closed_since = None
        return blink
