"""PSNR and SSIM, on tensors in [0, 1], per frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# A perfect frame has infinite PSNR; capping keeps means finite (a frame copied exactly,
# such as the given first frame, would otherwise swamp every average).
PSNR_CAP_DB = 100.0

# SSIM as Wang et al. (2004) define it and torchmetrics/skimage compute it with Gaussian
# weights: an 11x11 window of sigma 1.5, stability constants K1, K2, 'valid' filtering.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1, SSIM_K2 = 0.01, 0.03
# Frames per conv call: bounds the memory of the 5 filtered maps on long rollouts.
_SSIM_CHUNK = 256


def psnr_per_frame(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """PSNR in dB of each frame: the last three axes (C, H, W) are one frame."""
    mse = (pred.float() - target.float()).pow(2).mean(dim=(-3, -2, -1))
    psnr = 20 * torch.log10(torch.tensor(data_range)) - 10 * torch.log10(mse.clamp_min(1e-30))
    return psnr.clamp(max=PSNR_CAP_DB)


def gaussian_window(size: int = SSIM_WINDOW, sigma: float = SSIM_SIGMA) -> torch.Tensor:
    """The normalised 1-D Gaussian (the 2-D window is its outer product)."""
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def ssim_per_frame(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM of each frame (the last three axes, C x H x W, are a frame; any leading batch).

    Per channel, local means, variances and covariance under the Gaussian window (separable,
    only where the window fits: 'valid'), then
    SSIM = (2 mu_x mu_y + C1)(2 cov_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(var_x + var_y + C2)),
    averaged over channels and positions. Computed in float32 whatever the inputs' dtype.
    """
    if pred.shape != target.shape:
        raise ValueError(f"ssim_per_frame: shapes differ, {tuple(pred.shape)} vs {tuple(target.shape)}")
    lead, (channels, height, width) = pred.shape[:-3], pred.shape[-3:]
    if min(height, width) < SSIM_WINDOW:
        raise ValueError(f"ssim_per_frame: frames of {height}x{width} are smaller than the {SSIM_WINDOW}x{SSIM_WINDOW} window")
    x = pred.float().reshape(-1, channels, height, width)
    y = target.float().reshape(-1, channels, height, width)
    g = gaussian_window().to(x.device)
    rows = g.view(1, 1, SSIM_WINDOW, 1).repeat(channels, 1, 1, 1)
    cols = g.view(1, 1, 1, SSIM_WINDOW).repeat(channels, 1, 1, 1)

    def blur(image: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(image, rows, groups=channels), cols, groups=channels)

    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    out = []
    for start in range(0, x.shape[0], _SSIM_CHUNK):
        a, b = x[start:start + _SSIM_CHUNK], y[start:start + _SSIM_CHUNK]
        mu_a, mu_b = blur(a), blur(b)
        var_a = blur(a * a) - mu_a**2
        var_b = blur(b * b) - mu_b**2
        cov = blur(a * b) - mu_a * mu_b
        ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
        out.append(ssim_map.mean(dim=(1, 2, 3)))
    return torch.cat(out).reshape(lead)
