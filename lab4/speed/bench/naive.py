"""The naive reference, written as the assignment's template (and most solutions of it) would.

Its training step is the template's loop, `lab4.step.training_one_step`: a Python loop over the
time steps in which every module runs once per step on the batch, fp32, NCHW, one backward per
clip. Its rollout is a per-step loop over one sequence at a time that copies every frame to the
host as it goes. `tests/test_bench.py` uses them as its oracle, and `lab4 bench` times them
against the project's step and rollouts.
"""

from __future__ import annotations

import torch

from lab4.model import VideoCVAE
from lab4.step import training_one_step


def naive_clip_loss(model: VideoCVAE, frames: torch.Tensor, labels: torch.Tensor, teacher_forced: bool,
                    kl_weight: float, noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor,
                                                                                   torch.Tensor]:
    """The template's loop, `lab4.step.training_one_step`, as (loss, mse, kl)."""
    out = training_one_step(model, frames, labels, teacher_forced, kl_weight, noise)
    return out.loss, out.mse, out.kl


def naive_train_step(model: VideoCVAE, optimizer: torch.optim.Optimizer, frames: torch.Tensor,
                     labels: torch.Tensor, teacher_forced: bool = True, kl_weight: float = 1.0,
                     grad_clip: float = 1.0) -> torch.Tensor:
    """One optimiser step of the naive reference: zero_grad, loop loss, backward, clip, Adam.
    Returns the detached (loss, mse, kl), as lab4.step.train_step does."""
    optimizer.zero_grad()
    loss, mse, kl = naive_clip_loss(model, frames, labels, teacher_forced, kl_weight)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return torch.stack([loss.detach(), mse.detach(), kl.detach()])


@torch.no_grad()
def naive_rollout(model: VideoCVAE, first_frame: torch.Tensor, labels: torch.Tensor,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """The template's test loop for ONE sequence: first_frame (3, H, W), labels (T, 3, H, W).

    Per step: encode the label and the last prediction, z from the prior, fuse, generate,
    and copy the frame to the host (`.cpu()`), as the template's decoded_frame_list does.
    Tester.py never enters eval mode, so its BatchNorm normalises each label by that label's own
    statistics: the same here (`per_frame`), with the buffers left as they are.
    """
    was_training = model.training
    model.eval()
    out = first_frame[None]
    decoded = [out.cpu()]
    for i in range(1, labels.shape[0]):
        z = torch.randn((1, model.N_dim) + tuple(out.shape[-2:]), generator=generator,
                        device=out.device)
        label_feat = model.label_transformation(labels[i][None], per_frame=True)
        human_feat_hat = model.frame_transformation(out)
        parm = model.Decoder_Fusion(human_feat_hat, label_feat, z)
        out = model.to_image(model.Generator(parm))
        decoded.append(out.cpu())
    model.train(was_training)
    return torch.cat(decoded)


def naive_rollouts(model: VideoCVAE, first_frames: torch.Tensor, labels: torch.Tensor, z_mode: str = "prior",
                   samples: int = 1, generator: torch.Generator | None = None, dtype: torch.dtype | None = None,
                   truth: torch.Tensor | None = None, label_norm: str = "frame") -> torch.Tensor:
    """`lab4.rollout.rollout`'s signature the naive way: `naive_rollout` once per sequence, in turn."""
    if z_mode != "prior" or dtype is not None or label_norm != "frame":
        raise ValueError(f"the naive rollout samples the prior in fp32 with per-frame label statistics, as "
                         f"Tester.py; got z_mode={z_mode!r}, dtype={dtype}, label_norm={label_norm!r}")
    return torch.stack([naive_rollout(model, first_frames[s], labels[s], generator).to(first_frames.device)
                        for s in range(first_frames.shape[0])])


def naive_train_step_as_trainer(step_module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                                scaler: torch.amp.GradScaler, frames: torch.Tensor, labels: torch.Tensor,
                                teacher_forced: bool, kl_weight: float, device: torch.device,
                                amp_dtype: torch.dtype | None, grad_clip: float) -> torch.Tensor:
    """`lab4.step.train_step`'s signature the naive way (fp32, the time loop), for a whole run."""
    return naive_train_step(step_module.model, optimizer, frames, labels, teacher_forced, kl_weight, grad_clip)
