"""PSNR, on tensors in [0, 1], per frame."""

from __future__ import annotations

import torch

# A perfect frame has infinite PSNR; capping keeps means finite (a frame copied exactly,
# such as the given first frame, would otherwise swamp every average).
PSNR_CAP_DB = 100.0


def psnr_per_frame(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB of each frame: the last three axes (C, H, W) are one frame."""
    mse = (pred.float() - target.float()).pow(2).mean(dim=(-3, -2, -1))
    psnr = 20 * torch.log10(torch.tensor(data_range)) - 10 * torch.log10(mse.clamp_min(1e-30))
    return psnr.clamp(max=PSNR_CAP_DB)
