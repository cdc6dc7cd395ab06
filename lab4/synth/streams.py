"""The random streams: one per (seed, split, video, purpose), so that videos are independent of each
other and of the order in which workers render them, and the bytes written do not depend on the
number of workers."""

from __future__ import annotations

import numpy as np

SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}
STUDIO_STREAM = 3  # in place of a split: the one performer and studio of a `studio` dataset, shared by every split
# Purposes: what a video's stream draws.
APPEARANCE_STREAM = 0
CHOREOGRAPHY_STREAM = 1
LABEL_STREAM = 2  # the pose estimator's errors in the labels


def stream(seed: int, split: str, index: int, purpose: int) -> np.random.Generator:
    return np.random.default_rng([seed, SPLIT_STREAM[split], index, purpose])
