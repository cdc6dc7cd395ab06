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

from lab4.config import CHOICES
from lab4.device import autocast
from lab4.layers import flatten_steps
from lab4.model import VideoCVAE, kl_between_gaussians, kl_to_standard_normal, reparameterize


# mask_weight's target with mask_target="changed": a pixel has changed when a channel moved by more than this (13/255).
CHANGED = 0.05
MASK_TARGETS = CHOICES["mask_target"]


@dataclass
class ClipLoss:
    loss: torch.Tensor   # mse + kl_weight * kl (+ the composite's paint and mask terms), what backward() runs on
    mse: torch.Tensor    # per-step MSE (mean over batch and pixels), summed over the T-1 steps
    kl: torch.Tensor     # KL summed over latents and steps, divided by the batch size


def clip_loss(model: VideoCVAE, frames: torch.Tensor, labels: torch.Tensor, teacher_forced: bool,
              kl_weight: float, noise: torch.Tensor | None = None, paint_weight: float = 0.0,
              mask_weight: float = 0.0, mask_target: str = "changed") -> ClipLoss:
    """frames, labels: (B, T, 3, H, W) in [0, 1]. Predicts frames 1..T-1 from frame 0.

    With model.reference="first" every step is conditioned on frame 0 itself, not on the
    previous frame, and `teacher_forced` makes no difference.

    `noise` (B*(T-1), N, H, W) fixes the reparameterisation noise, for tests.
    The loss is the template's: per step MSE + beta * KL, summed over the steps. The KL is
    to N(0, I), or with a learned prior to p(z_t | x_{t-1}, p_t), predicted from the same
    previous-frame features the decoder fuses at that step.

    `paint_weight` (output="composite" only) adds paint_weight * the same MSE on the painted
    frame before the mask blends it: the painter then learns to draw the whole frame from the
    first update, whatever the mask does, instead of only through the mask's few open pixels.
    `mask_weight` (composite only) adds mask_weight * the binary cross-entropy of the mask
    against where to paint, summed over the steps like the MSE. `mask_target` says where that is:
    "changed", where the target differs from the conditioning frame (by more than CHANGED); or
    "helps", where the painted frame (as it is now, no gradient) is closer to the target than the
    conditioning frame, so that the mask stays shut where the painter cannot yet beat a copy. The
    blend's own gradient says the same, but faintly.
    """
    batch, length = frames.shape[:2]
    steps = length - 1
    frame_feat = model.encode_frames(frames.flatten(0, 1)).unflatten(0, (batch, length))
    label_feat = model.encode_labels(labels[:, 1:].flatten(0, 1), model.conditioning_labels(labels, 1, length))
    mu, logvar = model.posterior(flatten_steps(frame_feat[:, 1:]), label_feat)
    z = reparameterize(mu, logvar, noise)
    prior: tuple[torch.Tensor, torch.Tensor] | None = None  # (mu_p, logvar_p) laid out as (mu, logvar)

    if teacher_forced or model.reference == "first":
        # Every step's conditioning frame is known up front: the true previous frame, or (with
        # reference="first") the clip's first frame, which also leaves teacher forcing moot.
        if model.reference == "first":
            prev_feat = flatten_steps(frame_feat[:, :1].expand(-1, steps, -1, -1, -1))
            prev_frames = frames[:, :1].expand(-1, steps, -1, -1, -1).flatten(0, 1)
        else:
            prev_feat = flatten_steps(frame_feat[:, :-1])
            prev_frames = frames[:, :-1].flatten(0, 1)
        raw = model.decode(prev_feat, label_feat, z)
        pred = model.fit_output(raw, prev_frames).unflatten(0, (batch, steps))
        raws = raw.unflatten(0, (batch, steps))
        conds = prev_frames.unflatten(0, (batch, steps))
        if model.learned_prior:
            prior = model.prior(prev_feat, label_feat)
    else:
        label_feat = label_feat.unflatten(0, (batch, steps))
        z = z.unflatten(0, (batch, steps))
        prev_feat = frame_feat[:, 0]
        prev = frames[:, 0]
        outputs, raw_steps, cond_steps, prior_mus, prior_logvars = [], [], [], [], []
        for t in range(steps):
            if model.learned_prior:
                mu_p, logvar_p = model.prior(prev_feat, label_feat[:, t])
                prior_mus.append(mu_p)
                prior_logvars.append(logvar_p)
            raw = model.decode(prev_feat, label_feat[:, t], z[:, t])
            outputs.append(model.fit_output(raw, prev))
            raw_steps.append(raw)
            cond_steps.append(prev)
            if t + 1 < steps:
                # The prediction is fed back as an image, detached: the template does
                # not backpropagate through the chain of predictions.
                prev = model.to_image(raw, prev).detach()
                prev_feat = model.encode_frames(prev)
        pred = torch.stack(outputs, dim=1)
        raws = torch.stack(raw_steps, dim=1)
        conds = torch.stack(cond_steps, dim=1)
        if model.learned_prior:
            prior = (torch.stack(prior_mus, dim=1).flatten(0, 1), torch.stack(prior_logvars, dim=1).flatten(0, 1))

    target = frames[:, 1:].float()
    mse = F.mse_loss(pred, target) * steps
    loss = mse
    if paint_weight > 0 or mask_weight > 0:
        painted = model.painted(raws.flatten(0, 1)).unflatten(0, (batch, steps))
    if paint_weight > 0:
        loss = loss + paint_weight * F.mse_loss(painted, target) * steps
    if mask_weight > 0:
        if mask_target == "changed":
            paint_here = (target - conds.float()).abs().amax(dim=2, keepdim=True) > CHANGED
        elif mask_target == "helps":
            painted_error = (painted.detach() - target).pow(2).sum(dim=2, keepdim=True)
            paint_here = painted_error < (conds.float() - target).pow(2).sum(dim=2, keepdim=True)
        else:
            raise ValueError(f"mask_target {mask_target!r}: expected one of {', '.join(MASK_TARGETS)}")
        mask_logit = model.mask_logit(raws.flatten(0, 1)).unflatten(0, (batch, steps))
        loss = loss + mask_weight * F.binary_cross_entropy_with_logits(mask_logit, paint_here.float()) * steps
    if prior is None:
        kl = kl_to_standard_normal(mu.float(), logvar.float(), batch)
    else:
        # No stop-gradient on either side: the KL pulls the posterior towards the prior and
        # trains the prior to predict the posterior, as SVG-LP does.
        kl = kl_between_gaussians(mu.float(), logvar.float(), prior[0].float(), prior[1].float(), batch)
    return ClipLoss(loss=loss + kl_weight * kl, mse=mse, kl=kl)


class ClipLossModule(torch.nn.Module):
    """`clip_loss` as a module's forward, so that DistributedDataParallel can wrap it."""

    def __init__(self, model: VideoCVAE, paint_weight: float = 0.0, mask_weight: float = 0.0,
                 mask_target: str = "changed"):
        super().__init__()
        self.model = model
        self.paint_weight = paint_weight
        self.mask_weight = mask_weight
        self.mask_target = mask_target

    def forward(self, frames: torch.Tensor, labels: torch.Tensor, teacher_forced: bool,
                kl_weight: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        out = clip_loss(self.model, frames, labels, teacher_forced, kl_weight, paint_weight=self.paint_weight,
                        mask_weight=self.mask_weight, mask_target=self.mask_target)
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
