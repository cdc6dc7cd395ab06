"""Autoregressive generation from the prior: the validation and test rollouts.

Given first frames and the labels of every step, each prediction becomes the previous
frame of the next step. All sequences roll out together as one batch, label features
are computed in a few large calls, and nothing leaves the device inside the loop.
"""

from __future__ import annotations

import torch

from lab4.device import autocast
from lab4.model import VideoCVAE

# Label features for a 630-step rollout of the full-size model take ~160 MB per
# sequence; encoding them this many steps at a time bounds the memory.
LABEL_CHUNK = 128


@torch.inference_mode()
def rollout(model: VideoCVAE, first_frames: torch.Tensor, labels: torch.Tensor, z_mode: str = "prior",
            samples: int = 1, generator: torch.Generator | None = None,
            dtype: torch.dtype | None = None) -> torch.Tensor:
    """first_frames (S, 3, H, W), labels (S, T, 3, H, W) in [0, 1] -> frames (S, T, 3, H, W).

    Frame 0 of the result is the given first frame; labels[:, 0] is not used.
    z_mode: "prior" samples z ~ N(0, I) per step; "zero" uses the prior mean;
    "mean" decodes `samples` prior samples per step and feeds back their average.
    """
    if z_mode not in ("prior", "zero", "mean"):
        raise ValueError(f"z_mode {z_mode!r}: expected prior, zero or mean")
    was_training = model.training
    model.eval()
    device = first_frames.device
    seqs, length = labels.shape[:2]
    draws = samples if z_mode == "mean" else 1
    out = torch.empty((seqs, length) + tuple(first_frames.shape[1:]), device=device)
    out[:, 0] = first_frames
    prev = first_frames
    with autocast(device, dtype):
        for start in range(1, length, LABEL_CHUNK):
            stop = min(start + LABEL_CHUNK, length)
            chunk = model.encode_labels(labels[:, start:stop].flatten(0, 1))
            chunk = chunk.unflatten(0, (seqs, stop - start))
            for t in range(start, stop):
                label_feat = chunk[:, t - start]
                prev_feat = model.encode_frames(prev)
                if draws > 1:
                    label_feat = label_feat.repeat_interleave(draws, dim=0)
                    prev_feat = prev_feat.repeat_interleave(draws, dim=0)
                shape = (seqs * draws, model.N_dim) + tuple(prev.shape[-2:])
                if z_mode == "zero":
                    z = torch.zeros(shape, device=device, dtype=prev_feat.dtype)
                else:
                    z = torch.randn(shape, device=device, generator=generator).to(prev_feat.dtype)
                frame = model.to_image(model.decode(prev_feat, label_feat, z))
                if draws > 1:
                    frame = frame.unflatten(0, (seqs, draws)).mean(dim=1)
                out[:, t] = frame
                prev = frame
    model.train(was_training)
    return out
