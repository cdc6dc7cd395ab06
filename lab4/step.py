"""One training step's loss for a batch of clips: the posterior path of the CVAE.

Everything that does not depend on the model's own previous prediction runs once for
the whole clip as one call over (batch x time): encoding every ground-truth frame and
label, and the posterior (and a learned prior, when teacher forced). A teacher-forced
clip has no time loop at all; otherwise the loop holds only what needs the previous
prediction (encode it, the learned prior from it, fuse, generate).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lab4.device import autocast
from lab4.layers import flatten_steps
from lab4.model import VideoCVAE, kl_between_gaussians, kl_to_standard_normal, reparameterize


@dataclass
class ClipLoss:
    loss: torch.Tensor   # mse + kl_weight * kl, what backward() runs on
    mse: torch.Tensor    # per-step MSE (mean over batch and pixels), summed over the T-1 steps
    kl: torch.Tensor     # KL summed over latents and steps, divided by the batch size


def clip_loss(model: VideoCVAE, frames: torch.Tensor, labels: torch.Tensor, teacher_forced: bool,
              kl_weight: float, noise: torch.Tensor | None = None, per_frame_labels: bool = False) -> ClipLoss:
    """frames, labels: (B, T, 3, H, W) in [0, 1]. Predicts frames 1..T-1 from frame 0.

    `noise` (B*(T-1), N, H, W) fixes the reparameterisation noise, for tests.
    `per_frame_labels`: the label encoder's BatchNorm normalises each label by its own
    statistics (config train_label_norm="frame"), else all B*(T-1) labels together.
    The loss is the template's: per step MSE + beta * KL, summed over the steps. The KL is
    to N(0, I), or with a learned prior to p(z_t | x_{t-1}, p_t), predicted from the same
    previous-frame features the decoder fuses at that step.
    """
    batch, length = frames.shape[:2]
    steps = length - 1
    frame_feat = model.encode_frames(frames.flatten(0, 1)).unflatten(0, (batch, length))
    label_feat = model.encode_labels(labels[:, 1:].flatten(0, 1), per_frame=per_frame_labels)
    mu, logvar = model.posterior(flatten_steps(frame_feat[:, 1:]), label_feat)
    z = reparameterize(mu, logvar, noise)
    prior: tuple[torch.Tensor, torch.Tensor] | None = None  # (mu_p, logvar_p) laid out as (mu, logvar)

    if teacher_forced:
        # Every step's previous frame is the true one, known up front: one call for the whole clip.
        prev_feat = flatten_steps(frame_feat[:, :-1])
        pred = model.fit_output(model.decode(prev_feat, label_feat, z)).unflatten(0, (batch, steps))
        if model.learned_prior:
            prior = model.prior(prev_feat, label_feat)
    else:
        label_feat = label_feat.unflatten(0, (batch, steps))
        z = z.unflatten(0, (batch, steps))
        prev_feat = frame_feat[:, 0]
        outputs, prior_mus, prior_logvars = [], [], []
        for t in range(steps):
            if model.learned_prior:
                mu_p, logvar_p = model.prior(prev_feat, label_feat[:, t])
                prior_mus.append(mu_p)
                prior_logvars.append(logvar_p)
            raw = model.decode(prev_feat, label_feat[:, t], z[:, t])
            outputs.append(model.fit_output(raw))
            if t + 1 < steps:
                # The prediction is fed back as an image, detached: the template does
                # not backpropagate through the chain of predictions.
                prev_feat = model.encode_frames(model.to_image(raw).detach())
        pred = torch.stack(outputs, dim=1)
        if model.learned_prior:
            prior = (torch.stack(prior_mus, dim=1).flatten(0, 1), torch.stack(prior_logvars, dim=1).flatten(0, 1))

    mse = F.mse_loss(pred, frames[:, 1:].float()) * steps
    if prior is None:
        kl = kl_to_standard_normal(mu.float(), logvar.float(), batch)
    else:
        # No stop-gradient on either side: the KL pulls the posterior towards the prior and
        # trains the prior to predict the posterior, as SVG-LP does.
        kl = kl_between_gaussians(mu.float(), logvar.float(), prior[0].float(), prior[1].float(), batch)
    return ClipLoss(loss=mse + kl_weight * kl, mse=mse, kl=kl)


class ClipLossModule(torch.nn.Module):
    """`clip_loss` as a module's forward, so that DistributedDataParallel can wrap it."""

    def __init__(self, model: VideoCVAE, per_frame_labels: bool = False):
        super().__init__()
        self.model = model
        self.per_frame_labels = per_frame_labels

    def forward(self, frames: torch.Tensor, labels: torch.Tensor, teacher_forced: bool,
                kl_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = clip_loss(self.model, frames, labels, teacher_forced, kl_weight, per_frame_labels=self.per_frame_labels)
        return out.loss, out.mse, out.kl


def train_step(step_module: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               frames: torch.Tensor, labels: torch.Tensor, teacher_forced: bool, kl_weight: float,
               device: torch.device, amp_dtype: torch.dtype | None, grad_clip: float) -> torch.Tensor:
    """One optimiser step on a batch of clips; returns the detached (loss, mse, kl).

    `step_module` is a ClipLossModule, possibly wrapped in DistributedDataParallel.
    """
    with autocast(device, amp_dtype):
        loss, mse, kl = step_module(frames, labels, teacher_forced, kl_weight)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        params = [p for group in optimizer.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    scaler.step(optimizer)
    scaler.update()
    return torch.stack([loss.detach(), mse.detach(), kl.detach()])
