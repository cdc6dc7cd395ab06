"""KL-weight (beta) annealing and the teacher-forcing ratio, as pure functions of progress.

Pure functions of (epoch, iteration) mean a resumed run needs no schedule state: it
recomputes exactly the values the uninterrupted run would have used.
"""

from __future__ import annotations

import math

import numpy as np


def kl_beta(kind: str, progress: float, total: float, n_cycle: int = 10, ratio: float = 1.0,
            beta_max: float = 1.0) -> float:
    """The KL weight at `progress` (an epoch or iteration index) of a run `total` long.

    - Cyclical (Fu et al., NAACL 2019): `n_cycle` cycles over the run; in each, beta rises
      linearly from 0 to 1 over the first `ratio` of the cycle, then stays at 1.
    - Monotonic: one rise from 0 to 1 over the first cycle (as long as a Cyclical
      cycle, so the two share their first cycle), then 1.
    - Sigmoid: like Cyclical, with an S-shaped rise instead of a straight one.
    - None: 1 throughout.
    All scaled by `beta_max`.
    """
    if kind == "None":
        return beta_max
    period = total / n_cycle
    if kind == "Monotonic":
        position = min(progress / period, 1.0)
    elif kind in ("Cyclical", "Sigmoid"):
        position = (progress % period) / period
    else:
        raise ValueError(f"kl_anneal_type {kind!r}: expected Cyclical, Monotonic, Sigmoid or None")
    rise = min(position / ratio, 1.0)
    if kind == "Sigmoid" and rise < 1.0:
        # 0 at the start of the rise, 1 at its end, steepest in the middle.
        lo, hi = _sigmoid(-6.0), _sigmoid(6.0)
        rise = (_sigmoid(12.0 * rise - 6.0) - lo) / (hi - lo)
    return beta_max * rise


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def warmup_factor(iteration: int, warmup_iters: int) -> float:
    """The share of the scheduled LR in force at `iteration` (0-based): a linear ramp
    (1/N, 2/N, ..., 1) over the first `warmup_iters` iterations, then 1; 0 turns it off."""
    if warmup_iters <= 0:
        return 1.0
    return min(1.0, (iteration + 1) / warmup_iters)


def teacher_forcing_ratio(epoch: int, tfr: float, tfr_sde: int, tfr_d_step: float) -> float:
    """The ratio in force during `epoch` (0-based).

    The template lowers the ratio by `tfr_d_step` at the end of every epoch whose
    1-based number is at least `tfr_sde`, never below 0.
    """
    decays = max(0, epoch - tfr_sde + 1)
    return max(tfr - tfr_d_step * decays, 0.0)


def teacher_forcing_draw(ratio: float, seed: int, epoch: int, batch: int = 0) -> bool:
    """Whether this epoch (or batch) is teacher-forced: random() < ratio, reproducibly.

    Seeded by (seed, epoch, batch) rather than drawn from a global generator, so that
    a resumed run makes the same decisions.
    """
    return bool(np.random.default_rng([seed, epoch, batch, 7]).random() < ratio)
