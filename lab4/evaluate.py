"""Validation: the full autoregressive rollout of the val video, scored frame by frame."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim.swa_utils import update_bn

from lab4.config import Config
from lab4.device import to_float_images
from lab4.io import atomic_path
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

    def frame_rows(self, epoch: int) -> list[dict[str, Any]]:
        """The rows of val_psnr.csv: one per predicted frame, the baseline's beside."""
        return [{"epoch": epoch, "frame": i + 1, "psnr": float(p), "baseline_psnr": float(b), "ssim": float(s),
                 "baseline_ssim": float(bs)}
                for i, (p, b, s, bs) in enumerate(zip(self.psnr, self.baseline_psnr, self.ssim, self.baseline_ssim))]

    def save(self, path: Path, frames: torch.Tensor, labels: torch.Tensor, epoch: int) -> None:
        """val_rollout.npz: the prediction, the truth and the labels as uint8, the per-frame scores, the epoch."""
        def as_u8(x: torch.Tensor) -> np.ndarray:
            return (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()

        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, prediction=as_u8(self.predictions), truth=as_u8(frames), labels=as_u8(labels),
                         psnr=self.psnr, baseline_psnr=self.baseline_psnr, ssim=self.ssim,
                         baseline_ssim=self.baseline_ssim, epoch=epoch)


def epoch_columns(validation: Validation | None) -> dict[str, Any]:
    """The validation's columns of train_log.csv, empty in an epoch that did not validate."""
    if validation is None:
        return dict.fromkeys(("val_mse", "val_psnr", "baseline_psnr", "val_ssim", "baseline_ssim"), "")
    return {"val_mse": validation.mse, "val_psnr": validation.mean_psnr, "baseline_psnr": validation.mean_baseline_psnr,
            "val_ssim": validation.mean_ssim, "baseline_ssim": validation.mean_baseline_ssim}


# What each choice of config.CHOICES["label_norm"] means, as `train` and `predict` print it.
LABEL_NORM_MEANING = {
    "frame": "each label normalised by its own statistics, as the template's Tester.py generates",
    "running": "the label BatchNorm's running averages from training (PyTorch's eval mode)",
    "precise": "the label BatchNorm's population statistics over the training labels",
}

def validation_seed(seed: int, epoch: int) -> int:
    """The seed of the z draws of the validation after `epoch` epochs (counted from 1) of a run seeded `seed`."""
    return seed + 1000 * (epoch - 1)


# Training labels per forward pass when recomputing the label statistics: bounds the memory.
PRECISE_BATCH = 512


def precise_label_stats(model: VideoCVAE, train_labels: np.ndarray, device: torch.device) -> None:
    """label_norm="precise": the label encoder's BatchNorm running buffers set to the statistics of
    every training label (uint8 (N, 3, H, W)) under the current weights, not the moving averages
    of the last updates: update_bn's average of the statistics of batches of PRECISE_BATCH labels
    (the population's, up to the spread between batches). Deterministic: the same weights and
    labels give the same buffers."""
    batches = (to_float_images(train_labels[i:i + PRECISE_BATCH], device)
               for i in range(0, len(train_labels), PRECISE_BATCH))
    with torch.no_grad():
        update_bn(batches, model.label_transformation)


def validate(model: VideoCVAE, frames: torch.Tensor, labels: torch.Tensor, z_mode: str = "prior",
             seed: int = 0, dtype: torch.dtype | None = None, label_norm: str = "frame") -> Validation:
    """frames, labels: (T, 3, H, W) in [0, 1] on the model's device: one video. label_norm: see
    lab4.rollout.rollout (for "precise", precise_label_stats has run)."""
    generator = torch.Generator(device=frames.device).manual_seed(seed)
    pred = rollout(model, frames[:1], labels[None], z_mode=z_mode, generator=generator, dtype=dtype,
                   label_norm=label_norm)[0]
    # Scored once, after the rollout, on the device: nothing leaves it inside the loop.
    repeated = frames[:1].expand_as(frames[1:])
    psnr, baseline = psnr_per_frame(pred[1:], frames[1:]), psnr_per_frame(repeated, frames[1:])
    ssim, baseline_ssim = ssim_per_frame(pred[1:], frames[1:]), ssim_per_frame(repeated, frames[1:])
    mse = (pred[1:] - frames[1:]).pow(2).mean()
    return Validation(psnr=psnr.cpu().numpy(), baseline_psnr=baseline.cpu().numpy(), ssim=ssim.cpu().numpy(),
                      baseline_ssim=baseline_ssim.cpu().numpy(), mse=float(mse), predictions=pred)


def validate_as_logged(model: VideoCVAE, cfg: Config, epoch: int, frames: torch.Tensor, labels: torch.Tensor,
                       dtype: torch.dtype | None = None, label_norm: str = "frame") -> Validation:
    """The validation `train` logs after `epoch` epochs (counted from 1): the run's val_z, drawn
    with that epoch's seed. label_norm: see `validate`."""
    return validate(model, frames, labels, cfg.val_z, seed=validation_seed(cfg.seed, epoch), dtype=dtype,
                    label_norm=label_norm)
