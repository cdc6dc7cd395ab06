"""Validation: the full autoregressive rollout of the val video, scored frame by frame."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lab4.metrics import psnr_per_frame, ssim_per_frame
from lab4.model import VideoCVAE
from lab4.rollout import rollout


@dataclass
class Validation:
    psnr: np.ndarray            # PSNR of frames 1..T-1 (frame 0 is given)
    baseline_psnr: np.ndarray   # the same for repeating frame 0 (the trivial baseline)
    ssim: np.ndarray            # SSIM of frames 1..T-1 (11x11 Gaussian window, data range 1)
    baseline_ssim: np.ndarray   # the same for repeating frame 0
    mse: float                  # mean per-pixel MSE over frames 1..T-1
    predictions: torch.Tensor   # (T, 3, H, W) in [0, 1], frame 0 included

    @property
    def mean_psnr(self) -> float:
        return float(self.psnr.mean())

    @property
    def mean_baseline_psnr(self) -> float:
        return float(self.baseline_psnr.mean())

    @property
    def mean_ssim(self) -> float:
        return float(self.ssim.mean())

    @property
    def mean_baseline_ssim(self) -> float:
        return float(self.baseline_ssim.mean())


def validate(model: VideoCVAE, frames: torch.Tensor, labels: torch.Tensor, z_mode: str = "prior",
             seed: int = 0, dtype: torch.dtype | None = None) -> Validation:
    """frames, labels: (T, 3, H, W) in [0, 1] on the model's device: one video."""
    generator = torch.Generator(device=frames.device).manual_seed(seed)
    pred = rollout(model, frames[:1], labels[None], z_mode=z_mode, generator=generator, dtype=dtype)[0]
    # Scored once, after the rollout, on the device: nothing leaves it inside the loop.
    repeated = frames[:1].expand_as(frames[1:])
    psnr, baseline = psnr_per_frame(pred[1:], frames[1:]), psnr_per_frame(repeated, frames[1:])
    ssim, baseline_ssim = ssim_per_frame(pred[1:], frames[1:]), ssim_per_frame(repeated, frames[1:])
    mse = (pred[1:] - frames[1:]).pow(2).mean()
    return Validation(psnr=psnr.cpu().numpy(), baseline_psnr=baseline.cpu().numpy(), ssim=ssim.cpu().numpy(),
                      baseline_ssim=baseline_ssim.cpu().numpy(), mse=float(mse), predictions=pred)
