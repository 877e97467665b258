"""Geometry with known answers: a synthetic 3D face rotated by known angles, projected through
the documented camera model, must give back those angles (within 3 degrees)."""

import math

import numpy as np
import pytest

from engagement.vision.geometry import (
    POSE_INDICES,
    POSE_MODEL,
    BlinkDetector,
    camera_matrix,
    euler_from_matrix,
    head_pose,
    matrix_from_euler,
    matrix_pose,
)

W, H = 640, 480


def synthetic_landmarks(yaw, pitch, roll, t=(0.0, 0.0, 550.0), noise_px=0.0, seed=0):
    rot = matrix_from_euler(yaw, pitch, roll)
    points = (rot @ POSE_MODEL.T).T + np.asarray(t)
    uv = (camera_matrix(W, H) @ points.T).T
    uv = uv[:, :2] / uv[:, 2:]
    if noise_px:
        uv += np.random.default_rng(seed).normal(0, noise_px, uv.shape)
    landmarks = np.zeros((478, 3), np.float32)
    landmarks[POSE_INDICES, :2] = uv
    return landmarks


ANGLES_DEG = [
    (0, 0, 0),
    (30, 0, 0),
    (-30, 0, 0),
    (0, 20, 0),
    (0, -20, 0),
    (0, 0, 25),
    (25, -15, 10),
    (-40, 10, -15),
    (10, 25, 5),
]


@pytest.mark.parametrize("angles", ANGLES_DEG)
@pytest.mark.parametrize("offset", [(0, 0), (-120, 60), (150, -80)])
def test_head_pose_recovers_known_rotation(angles, offset):
    yaw, pitch, roll = (math.radians(a) for a in angles)
    lm = synthetic_landmarks(yaw, pitch, roll, t=(offset[0], offset[1], 550.0), noise_px=0.5)
    got = head_pose(lm, W, H)
    for want, have in zip(angles, got[:3]):
        assert abs(math.degrees(have) - want) < 3.0, (angles, [math.degrees(g) for g in got[:3]])
    assert 500 < got[3] < 600  # distance in mm under the camera model


def test_euler_round_trip():
    for angles in ANGLES_DEG:
        rads = tuple(math.radians(a) for a in angles)
        assert np.allclose(euler_from_matrix(matrix_from_euler(*rads)), rads)


def test_yaw_sign_follows_the_documented_convention():
    # Positive yaw turns the face to the image's left: the nose tip moves left of the eyes' midpoint.
    lm = synthetic_landmarks(math.radians(20), 0, 0)
    nose_x = lm[1, 0]
    eyes_mid_x = (lm[33, 0] + lm[263, 0]) / 2
    assert nose_x < eyes_mid_x


def test_blink_detector_counts_short_closures_only():
    det = BlinkDetector()
    t = 0.0
    blinks = 0
    series = [0.3] * 10 + [0.08] * 3 + [0.3] * 10 + [0.08] * 40 + [0.3] * 10  # a blink, then eyes closed 1.3 s
    for ear in series:
        blinks += det.update(ear, t)
        t += 33.3
    assert blinks == 1


def test_blink_detector_ignores_missing_values():
    det = BlinkDetector()
    assert det.update(float("nan"), 0.0) is False


def test_head_pivot_stays_put_when_the_head_turns_and_moves_when_the_camera_turns():
    # The attention stage tells a moved camera from a turned head by the head's turning point.
    from engagement.vision.geometry import HEAD_PIVOT_MM, solve_head

    def pivot(yaw_deg, camera_deg=0.0):
        rot = matrix_from_euler(math.radians(yaw_deg), 0.0, 0.0)
        points = (rot @ (POSE_MODEL - HEAD_PIVOT_MM).T).T + HEAD_PIVOT_MM + np.array([0.0, 0.0, 600.0])
        turn = matrix_from_euler(0.0, math.radians(camera_deg), 0.0)
        points = (turn.T @ points.T).T
        uv = (camera_matrix(W, H) @ points.T).T
        lm = np.zeros((478, 3), np.float32)
        lm[POSE_INDICES, :2] = uv[:, :2] / uv[:, 2:]
        return solve_head(lm, W, H)[4]

    still = pivot(0.0)
    assert np.linalg.norm(pivot(40.0) - still) < 5.0  # mm
    moved = pivot(0.0, camera_deg=10.0)
    angle = math.degrees(math.acos(moved @ still / (np.linalg.norm(moved) * np.linalg.norm(still))))
    assert angle == pytest.approx(10.0, abs=0.5)


@pytest.mark.parametrize("angles", [(0.3, -0.2, 0.1), (-0.5, 0.25, -0.3), (0.0, 0.0, 0.0)])
def test_matrix_pose_reads_a_transform_in_the_documented_convention(angles):
    """MediaPipe's facial transformation matrix uses y up and z towards the viewer; read back in
    OpenCV's frame it gives the same angles as `solve_head` would."""
    flip = np.diag([1.0, -1.0, -1.0])
    transform = np.eye(4)
    transform[:3, :3] = flip @ matrix_from_euler(*angles) @ flip
    transform[:3, 3] = (1.0, -2.0, -40.0)
    assert np.allclose(matrix_pose(transform), angles, atol=1e-9)
