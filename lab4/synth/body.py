"""The body: a 3-D stick figure from proportions and joint angles, projected to the image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab4.synth import pose
from lab4.synth.choreography import Params
from lab4.synth.look import Appearance
from lab4.synth.sizes import FRAME_H, FRAME_W

# Named points of the figure; the first 18 are the OpenPose keypoints in their order.
_POINT_NAMES: tuple[str, ...] = (
    "nose", "neck", "r_sh", "r_el", "r_wr", "l_sh", "l_el", "l_wr",
    "r_hip", "r_knee", "r_ank", "l_hip", "l_knee", "l_ank",
    "r_eye", "l_eye", "r_ear", "l_ear",
    "pelvis", "head", "r_hand", "l_hand", "r_toe", "l_toe", "waist", "crotch", "hair",
)  # fmt: skip
P = {name: i for i, name in enumerate(_POINT_NAMES)}

# Proportions in standing heights (head top to soles is about 0.97).
_TORSO = 0.29
_HEAD_OFFSET = 0.085  # neck to head centre
HEAD_RX, HEAD_RY = 0.05, 0.062
_UPPER_ARM, _FOREARM, _HAND = 0.165, 0.145, 0.055
_THIGH, _SHIN, _ANKLE_H, _FOOT = 0.24, 0.235, 0.04, 0.085
CHEST_DEPTH, HIP_DEPTH = 0.07, 0.065


@dataclass
class Figure:
    """A video's figure, frame by frame, in output pixels (pixel centres at integers)."""

    xy: np.ndarray  # (n, len(_POINT_NAMES), 2)
    depth: np.ndarray  # (n, len(_POINT_NAMES)) towards the camera, in standing heights
    yaw: np.ndarray  # (n,)
    keypoints: np.ndarray  # (n, 18, 2), NaN where OpenPose would not see the point
    scale: float  # pixels per standing height
    feet_line: float  # image y of the floor contact line
    bounce: np.ndarray  # (n,)


def _direction(side: float, abd: np.ndarray, flex: np.ndarray) -> np.ndarray:
    return np.stack([side * np.sin(abd) * np.cos(flex), -np.cos(abd) * np.cos(flex), np.sin(flex)], axis=-1)


def _tilt(v: np.ndarray, angle: np.ndarray) -> np.ndarray:
    # Rotate in the picture plane so that "up" leans by `angle` towards +x.
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x, y, z = v[:, 0:1], v[:, 1:2], v[:, 2:3]
    return np.concatenate([x * c + y * s, -x * s + y * c, z], axis=1)


def _body_points(p: Params, app: Appearance) -> np.ndarray:
    """3-D points (n, K, 3) with the pelvis at the origin: x to the dancer's left (image
    right when facing the camera), y up, z towards the camera."""
    n = len(p["x"])
    lean, bow = p["lean"], p["bow"]
    up = np.stack([np.zeros(n), np.ones(n), np.zeros(n)], axis=1)
    spine = np.stack([np.sin(lean), np.cos(lean) * np.cos(bow), np.cos(lean) * np.sin(bow)], axis=1)
    across = np.stack([np.cos(lean), -np.sin(lean), np.zeros(n)], axis=1)
    forward = np.array([0.0, 0.0, 1.0])
    pts = np.zeros((n, len(_POINT_NAMES), 3))
    neck = _TORSO * spine
    pts[:, P["neck"]] = neck
    pts[:, P["waist"]] = 0.06 * spine
    pts[:, P["crotch"]] = -0.05 * up

    head_up = _tilt(up, lean + p["head_tilt"])
    head_across = _tilt(np.tile([1.0, 0.0, 0.0], (n, 1)), lean + p["head_tilt"])
    rx, ry = HEAD_RX * app.head_scale, HEAD_RY * app.head_scale
    head = neck + _HEAD_OFFSET * app.head_scale * head_up
    pts[:, P["head"]] = head
    pts[:, P["nose"]] = head + 0.95 * rx * forward - 0.2 * ry * head_up
    pts[:, P["hair"]] = head - 0.7 * rx * forward - 0.5 * ry * head_up

    for prefix, side in (("r", -1.0), ("l", 1.0)):
        pts[:, P[f"{prefix}_eye"]] = head + side * 0.42 * rx * head_across + 0.2 * ry * head_up + 0.8 * rx * forward
        pts[:, P[f"{prefix}_ear"]] = head + side * rx * head_across - 0.1 * rx * forward
        shoulder = neck + side * app.shoulder_half * across - 0.02 * spine
        upper = _tilt(_direction(side, p[f"{prefix}_sh_abd"], p[f"{prefix}_sh_flex"]), lean)
        lower = _tilt(_direction(side, p[f"{prefix}_el_abd"], p[f"{prefix}_el_flex"]), lean)
        elbow = shoulder + _UPPER_ARM * upper
        wrist = elbow + _FOREARM * lower
        pts[:, P[f"{prefix}_sh"]], pts[:, P[f"{prefix}_el"]] = shoulder, elbow
        pts[:, P[f"{prefix}_wr"]], pts[:, P[f"{prefix}_hand"]] = wrist, wrist + _HAND * lower

        hip = np.tile([side * app.hip_half, 0.0, 0.0], (n, 1))
        abd, flex = p[f"{prefix}_hip_abd"], p[f"{prefix}_hip_flex"]
        knee = hip + _THIGH * app.leg_scale * _direction(side, abd, flex)
        ankle = knee + _SHIN * app.leg_scale * _direction(side, abd, flex - p[f"{prefix}_knee"])
        toe = ankle + np.array([side * 0.3 * _FOOT, -0.7 * _ANKLE_H, 0.95 * _FOOT])
        pts[:, P[f"{prefix}_hip"]], pts[:, P[f"{prefix}_knee"]] = hip, knee
        pts[:, P[f"{prefix}_ank"]], pts[:, P[f"{prefix}_toe"]] = ankle, toe

    # Stand on the lower foot (a squat lowers the body, a kick lifts one foot), then hop.
    sole = np.minimum(pts[:, P["r_ank"], 1], pts[:, P["l_ank"], 1]) - _ANKLE_H
    pts[:, :, 1] -= (sole - p["bounce"])[:, None]
    return pts


def _face_visibility(pts: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Which of the 18 keypoints a pose estimator would find: face points turned away
    from the camera are missed (nose and eyes from behind, the far ear in profile)."""
    n = len(yaw)
    visible = np.ones((n, pose.NUM_KEYPOINTS), dtype=bool)
    facing = np.cos(yaw)
    visible[:, pose.NOSE] = facing > -0.1
    head_depth = _rotated_depth(pts[:, P["head"]], yaw)
    for index, name in ((pose.R_EYE, "r_eye"), (pose.L_EYE, "l_eye"), (pose.R_EAR, "r_ear"), (pose.L_EAR, "l_ear")):
        rel = _rotated_depth(pts[:, P[name]], yaw) - head_depth
        threshold = 0.2 * HEAD_RX if name.endswith("eye") else -0.5 * HEAD_RX
        visible[:, index] = rel > threshold
    return visible


def _rotated_depth(points: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    return -points[..., 0] * np.sin(yaw) + points[..., 2] * np.cos(yaw)


def build_figure(p: Params, app: Appearance) -> Figure:
    """Project the figure: turned by yaw about the vertical axis, seen straight on."""
    pts = _body_points(p, app)
    yaw = p["yaw"]
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = pts[..., 0] * c + pts[..., 2] * s
    depth = -pts[..., 0] * s + pts[..., 2] * c
    scale = app.height * FRAME_H
    feet_line = app.feet_row - 0.5
    centre = (p["x"] + p["x_off"]) * FRAME_W - 0.5
    xy = np.stack([centre[:, None] + x * scale, feet_line - pts[..., 1] * scale], axis=-1)
    keypoints = xy[:, : pose.NUM_KEYPOINTS].copy()
    keypoints[~_face_visibility(pts, yaw)] = np.nan
    return Figure(xy, depth, yaw, keypoints, scale, feet_line, p["bounce"])
