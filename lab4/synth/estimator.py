"""The pose estimator's errors: what OpenPose gets wrong in the labels of real footage.

The labels of the real data are not the body's true joints: an estimator found them in each frame
on its own, so its points jitter from frame to frame about where the joint is, a limb it loses
sight of goes missing for a few frames, and now and then it takes the left arm or leg for the
right. A model that renders the performer from such a label cannot place every limb exactly, as it
can from a perfect one. The rendered frames keep the true figure; only the labels carry the errors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab4.synth import pose


@dataclass(frozen=True)
class EstimatorErrors:
    """How often and how far the estimated keypoints are wrong (lengths in output pixels)."""

    jitter_px: float = 0.0        # sd of an elbow's or knee's own offset in each frame (see _REACH)
    drift_px: float = 0.0         # sd of a slowly wandering offset per point (AR(1) over frames)
    drift_frames: float = 15.0    # the drift's correlation time
    miss_rate: float = 0.0        # per frame, the chance that a limb starts to go missing
    miss_frames: float = 4.0      # mean length of a miss
    swap_rate: float = 0.0        # per frame, the chance that a left-right swap of a limb pair starts
    swap_frames: float = 3.0      # mean length of a swap


NONE = EstimatorErrors()

# How far each keypoint's jitter and drift reach, relative to the errors' sizes: an estimator
# finds the torso most steadily, the face less so, and the hands and feet least.
_REACH = np.ones(pose.NUM_KEYPOINTS)
_REACH[[pose.NECK, pose.R_SHOULDER, pose.L_SHOULDER, pose.R_HIP, pose.L_HIP]] = 0.3
_REACH[[pose.NOSE, pose.R_EYE, pose.L_EYE, pose.R_EAR, pose.L_EAR]] = 0.5
_REACH[[pose.R_WRIST, pose.L_WRIST, pose.R_ANKLE, pose.L_ANKLE]] = 1.5
# The errors in the `studio` style's labels, chosen with the studio's structure
# (lab4.synth.look.STUDIO_STRUCTURE) by what they do to the learning pace: about 5 % of the frames
# lose a hand or foot for a few frames, and an arm or leg pair swaps sides about once in 200 frames.
STUDIO_ERRORS = EstimatorErrors(jitter_px=0.5, drift_px=0.7, miss_rate=0.02, swap_rate=0.005)

# The limbs that go missing or swap sides: an arm (elbow and wrist) or a leg (knee and ankle).
_ARMS = ((pose.R_ELBOW, pose.R_WRIST), (pose.L_ELBOW, pose.L_WRIST))
_LEGS = ((pose.R_KNEE, pose.R_ANKLE), (pose.L_KNEE, pose.L_ANKLE))
_LIMBS = _ARMS + _LEGS


def _episodes(rng: np.random.Generator, n: int, rate: float, mean_frames: float) -> np.ndarray:
    """(n,) bool: frames inside episodes that start with chance `rate` per frame and last a
    geometric number of frames with mean `mean_frames`."""
    inside = np.zeros(n, dtype=bool)
    if rate <= 0.0:
        return inside
    for start in np.flatnonzero(rng.random(n) < rate):
        inside[start:start + int(rng.geometric(1.0 / max(mean_frames, 1.0)))] = True
    return inside


def _drift(rng: np.random.Generator, shape: tuple[int, ...], sd: float, frames: float) -> np.ndarray:
    """An AR(1) offset over the first axis with stationary sd `sd` and correlation time `frames`."""
    keep = float(np.exp(-1.0 / max(frames, 1.0)))
    steps = rng.normal(0.0, sd * np.sqrt(1.0 - keep**2), shape)
    out = np.empty(shape)
    out[0] = rng.normal(0.0, sd, shape[1:])
    for i in range(1, shape[0]):
        out[i] = keep * out[i - 1] + steps[i]
    return out


def estimate(keypoints: np.ndarray, rng: np.random.Generator, errors: EstimatorErrors = NONE) -> np.ndarray:
    """The keypoints (n, 18, 2) an estimator with `errors` reports for the true `keypoints` (NaN: not
    found), its random errors drawn from `rng`."""
    n = len(keypoints)
    found = np.array(keypoints, dtype=np.float64)
    jitter = rng.normal(0.0, 1.0, found.shape) * errors.jitter_px
    drift = _drift(rng, found.shape, 1.0, errors.drift_frames) * errors.drift_px if n else np.zeros(found.shape)
    found = found + (jitter + drift) * _REACH[:, None]
    for (a_elbow, a_end), (b_elbow, b_end) in (_ARMS, _LEGS):
        swapped = _episodes(rng, n, errors.swap_rate, errors.swap_frames)
        for a, b in ((a_elbow, b_elbow), (a_end, b_end)):
            found[swapped, a], found[swapped, b] = found[swapped, b].copy(), found[swapped, a].copy()
    for elbow, end in _LIMBS:
        missing = _episodes(rng, n, errors.miss_rate, errors.miss_frames)
        # A lost limb loses its end first: the elbow (or knee) goes with it half the time.
        found[missing, end] = np.nan
        found[missing & (rng.random(n) < 0.5), elbow] = np.nan
    return found
