"""PSNR and SSIM against plain reference computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lab4.metrics import psnr_per_frame, ssim_per_frame

pytestmark = pytest.mark.usefixtures("one_thread")


def reference_ssim(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> float:
    """SSIM of one C x H x W frame, deliberately plain: the 11x11 Gaussian window (sigma 1.5)
    written out, a loop over every position where it fits, weighted moments by hand."""
    coords = np.arange(11) - 5
    g = np.exp(-(coords**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    values = []
    for c in range(x.shape[0]):
        for i in range(x.shape[1] - 10):
            for j in range(x.shape[2] - 10):
                a, b = x[c, i:i + 11, j:j + 11], y[c, i:i + 11, j:j + 11]
                mu_a, mu_b = (window * a).sum(), (window * b).sum()
                var_a = (window * (a - mu_a) ** 2).sum()
                var_b = (window * (b - mu_b) ** 2).sum()
                cov = (window * (a - mu_a) * (b - mu_b)).sum()
                values.append((2 * mu_a * mu_b + c1) * (2 * cov + c2) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)))
    return float(np.mean(values))


def test_ssim_matches_the_plain_reference():
    gen = torch.Generator().manual_seed(0)
    truth = torch.rand((2, 3, 16, 20), generator=gen, dtype=torch.float64)
    noisy = (truth + 0.1 * torch.randn(truth.shape, generator=gen, dtype=torch.float64)).clamp(0, 1)
    ours = ssim_per_frame(noisy, truth)
    assert ours.shape == (2,)
    for k in range(2):
        assert ours[k].item() == pytest.approx(reference_ssim(noisy[k].numpy(), truth[k].numpy()), abs=1e-5)


def test_ssim_properties():
    gen = torch.Generator().manual_seed(1)
    frames = torch.rand((4, 5, 3, 32, 64), generator=gen)  # any leading batch
    assert torch.allclose(ssim_per_frame(frames, frames), torch.ones(4, 5), atol=1e-5)
    other = torch.rand(frames.shape, generator=gen)
    assert torch.allclose(ssim_per_frame(frames, other), ssim_per_frame(other, frames), atol=1e-6)
    noise = torch.randn(frames.shape, generator=gen)
    a, b = ssim_per_frame(frames + 0.02 * noise, frames), ssim_per_frame(frames + 0.2 * noise, frames)
    assert (b < a).all() and (a < 1).all()
    assert (ssim_per_frame(frames, other).abs() <= 1).all()
    assert ssim_per_frame(frames.bfloat16(), frames.bfloat16()).dtype == torch.float32
    with pytest.raises(ValueError, match="shapes differ"):
        ssim_per_frame(frames, frames[:2])
    with pytest.raises(ValueError, match="window"):
        ssim_per_frame(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 8))


def test_psnr_by_hand():
    truth = torch.zeros(2, 3, 4, 4)
    pred = truth.clone()
    pred[0] += 0.1  # MSE 0.01 -> 20 dB
    psnr = psnr_per_frame(pred, truth)
    assert psnr[0].item() == pytest.approx(20.0, abs=1e-4)
    assert psnr[1].item() == 100.0  # identical frames: capped, not infinite
    assert math.isfinite(psnr.mean().item())
