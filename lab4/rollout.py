"""Autoregressive generation from the prior: the validation and test rollouts.

Given first frames and the labels of every step, each prediction becomes the previous
frame of the next step. All sequences roll out together as one batch, label features are
computed in a few large calls, and nothing leaves the device inside the loop.

The prior is N(0, I) (the template) or, for a model with a learned prior, the Gaussian
p(z_t | x_{t-1}, p_t) it predicts from the previous prediction and the label. z strategies:
- "prior":   one sample z = mu_p + sigma_p * eps per step (eps ~ N(0, I));
- "zero":    z = mu_p, the prior mean (0 for the fixed prior);
- "mean":    decode `samples` prior samples per step and feed back their average;
- "best_of": ORACLE. Decode `samples` prior samples per step and keep, per sequence, the
             one closest (MSE) to the ground-truth frame, as the video-prediction
             literature reports best-of-N (SVG, Denton & Fergus 2018; SAVP, Lee et al. 2018).
             It needs the true frames, so it measures what the samples could reach, not
             what a model can predict: never a validation or test score.
"""

from __future__ import annotations

import torch

from lab4.config import CHOICES
from lab4.device import autocast
from lab4.model import VideoCVAE, reparameterize

# Label features for a 630-step rollout of the full-size model take ~160 MB per
# sequence; encoding them this many steps at a time bounds the memory.
LABEL_CHUNK = 128
ORACLE_Z_MODES = ("best_of",)  # need the ground truth, so no config's val_z or test_z may name them
Z_MODES = CHOICES["test_z"] + ORACLE_Z_MODES
MULTI_SAMPLE_Z_MODES = ("mean", "best_of")  # decode `samples` z per step


def draw_z(model: VideoCVAE, prev_feat: torch.Tensor, label_feat: torch.Tensor, z_mode: str, draws: int,
           generator: torch.Generator | None) -> torch.Tensor:
    """z for one step of every sequence, `draws` per sequence: (S * draws, N, H, W), draws of a sequence adjacent."""
    seqs = prev_feat.shape[0]
    shape = (seqs * draws, model.N_dim) + tuple(prev_feat.shape[-2:])
    if z_mode == "zero":
        eps = torch.zeros(shape, device=prev_feat.device, dtype=prev_feat.dtype)
    else:
        eps = torch.randn(shape, device=prev_feat.device, generator=generator).to(prev_feat.dtype)
    if not model.learned_prior:
        return eps  # p(z) = N(0, I): z = 0 + 1 * eps
    mu_p, logvar_p = (x.repeat_interleave(draws, dim=0) for x in model.prior(prev_feat, label_feat))
    return mu_p if z_mode == "zero" else reparameterize(mu_p, logvar_p, eps)


def closest_to_truth(candidates: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """candidates (S, K, 3, H, W), truth (S, 3, H, W) -> (S, 3, H, W): per sequence the candidate of least MSE."""
    mse = (candidates - truth[:, None]).pow(2).mean(dim=(-3, -2, -1))
    best = mse.argmin(dim=1)
    return candidates[torch.arange(candidates.shape[0], device=candidates.device), best]


@torch.inference_mode()
def rollout(model: VideoCVAE, first_frames: torch.Tensor, labels: torch.Tensor, z_mode: str = "prior",
            samples: int = 1, generator: torch.Generator | None = None,
            dtype: torch.dtype | None = None, truth: torch.Tensor | None = None,
            label_norm: str = "frame") -> torch.Tensor:
    """first_frames (S, 3, H, W), labels (S, T, 3, H, W) in [0, 1] -> frames (S, T, 3, H, W).

    Frame 0 of the result is the given first frame (labels[:, 0] is not used). z_mode is one
    of Z_MODES (see the module's docstring); "mean" and "best_of" decode `samples` z per
    step. "best_of" is an oracle and needs `truth` (S, T, 3, H, W), the ground-truth frames.
    label_norm (config.CHOICES): "frame" normalises each label by its own statistics, as the
    template's Tester.py does; "running" and "precise" use the BatchNorm's running buffers
    (for "precise" the caller has filled them: lab4.evaluate.precise_label_stats).
    """
    if z_mode not in Z_MODES:
        raise ValueError(f"z_mode {z_mode!r}: expected one of {', '.join(Z_MODES)}")
    if label_norm not in CHOICES["label_norm"]:
        raise ValueError(f"label_norm {label_norm!r}: expected one of {', '.join(CHOICES['label_norm'])}")
    if z_mode in ORACLE_Z_MODES and (truth is None or truth.shape[:2] != labels.shape[:2]):
        raise ValueError(f"z_mode {z_mode!r} is an oracle: it needs the ground-truth frames (truth) of every step")
    was_training = model.training
    model.eval()
    device = first_frames.device
    seqs, length = labels.shape[:2]
    draws = samples if z_mode in MULTI_SAMPLE_Z_MODES else 1
    out = torch.empty((seqs, length) + tuple(first_frames.shape[1:]), device=device)
    out[:, 0] = first_frames
    prev = first_frames
    with autocast(device, dtype):
        for start in range(1, length, LABEL_CHUNK):
            stop = min(start + LABEL_CHUNK, length)
            chunk = model.encode_labels(labels[:, start:stop].flatten(0, 1), per_frame=label_norm == "frame")
            chunk = chunk.unflatten(0, (seqs, stop - start))
            for t in range(start, stop):
                label_feat = chunk[:, t - start]
                prev_feat = model.encode_frames(prev)
                z = draw_z(model, prev_feat, label_feat, z_mode, draws, generator)
                if draws > 1:  # laid out as draw_z lays out z: the draws of a sequence adjacent
                    label_feat, prev_feat = (x.repeat_interleave(draws, dim=0) for x in (label_feat, prev_feat))
                frame = model.to_image(model.decode(prev_feat, label_feat, z))
                if draws > 1:
                    frame = _pick(frame.unflatten(0, (seqs, draws)), z_mode, None if truth is None else truth[:, t])
                out[:, t] = frame
                prev = frame
    model.train(was_training)
    return out


def _pick(candidates: torch.Tensor, z_mode: str, truth: torch.Tensor | None) -> torch.Tensor:
    """candidates (S, K, 3, H, W) of one step -> the frame that step shows (S, 3, H, W)."""
    return candidates.mean(dim=1) if z_mode == "mean" else closest_to_truth(candidates, truth)
