"""Where a run computes and in which precision."""

from __future__ import annotations

import contextlib
from typing import ContextManager

import torch

from lab4.config import Config


def resolve_device(cfg: Config) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("config device=cuda, but torch sees no CUDA GPU; use device=auto or device=cpu")
    if cfg.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(cfg.device)


def autocast_dtype(cfg: Config, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32.

    auto: bf16 on a CUDA GPU that supports it (no loss scaling needed), else fp16;
    fp32 on CPU, where bf16 is an explicit opt-in (precision=bf16).
    """
    if cfg.precision == "fp32":
        return None
    if cfg.precision == "bf16":
        return torch.bfloat16
    if cfg.precision == "fp16":
        return torch.float16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> ContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def to_float_images(batch_u8, device: torch.device) -> torch.Tensor:
    """uint8 arrays -> float [0, 1] on the device; the division runs there, on 4x fewer bytes moved."""
    if isinstance(batch_u8, torch.Tensor):
        tensor = batch_u8
    else:
        # torch wants writable memory; the cached splits are read-only on purpose.
        tensor = torch.from_numpy(batch_u8 if batch_u8.flags.writeable else batch_u8.copy())
    return tensor.to(device, non_blocking=True).float().div_(255.0)
