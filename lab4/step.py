"""One training step of the CVAE: the template's `training_one_step`, then the same loss for a
whole clip at once (`clip_loss`, what training runs), and the update around it (`train_step`).

`training_one_step` is the definition: a loop over the time steps, every module once per step.
`clip_loss` computes the same loss with everything that does not depend on the model's own
previous prediction run once for the whole clip as one call over (batch x time): encoding every
frame and label, the posterior, a learned prior when teacher forced. A teacher-forced clip then
has no time loop at all; otherwise the loop holds only what needs the previous prediction.
tests/test_equivalence.py checks that the two give the same loss and gradients.

The template's names (Trainer.py, Tester.py) in lab4:

  training_one_step              `training_one_step` below; training runs `clip_loss` inside
                                 `train_step` (zero_grad, backward, clip_grad_norm_, step: the
                                 template's optimizer_step)
  kl_criterion                   lab4.model.kl_to_standard_normal
  kl_annealing                   lab4.schedules.kl_beta (Cyclical, Monotonic, None; what
    (update, get_beta,           frange_cycle_linear computes), a pure function of the epoch or
     frange_cycle_linear)        iteration, so there is no state to update or to restore;
                                 get_beta is lab4.train.kl_weight
  teacher_forcing_ratio_update   lab4.schedules.teacher_forcing_ratio, the ratio in force in an
                                 epoch; the draw `random.random() < tfr` is teacher_forcing_draw
  training_stage                 lab4.train.training_stage (the whole run), one epoch in
                                 lab4.train.train_epoch
  train_dataloader               lab4.train.epoch_batches (fast_train, partial: epoch_fraction)
  eval (the Trainer's val loop)  lab4.train.validate_epoch -> lab4.evaluate.validate
  val_one_step                   lab4.rollout.rollout: from the first frame, z from the prior,
                                 each prediction fed back as the next previous frame
  Generate_PSNR                  lab4.metrics.psnr_per_frame (and SSIM beside it)
  save                           lab4.runs.checkpoint.save_checkpoint, from lab4.train.save_checkpoints:
                                 checkpoints/last.pt every epoch (optimiser, scheduler, RNG: all
                                 that --resume needs), epoch_NNN.pt every per_save epochs;
                                 `lab4 export` writes the template's own format
  load_checkpoint                lab4.runs.checkpoint.load_checkpoint; lab4.train.restore (--resume),
                                 lab4.predict.load_trained (to generate)
  Tester.py's test loop          lab4.predict.predict_test: every test sequence rolled out at
                                 once, submission.csv and the GIFs

The template's `eval` shadows nn.Module.eval, so `model.eval()` runs its validation loop (and
Tester.py its test loop) without ever entering eval mode: the label encoder's BatchNorm
normalises each label frame by that frame's own statistics. lab4 generates in eval mode with the
same per-frame statistics by default (config label_norm="frame"; lab4.rollout, lab4.model's
Label_Encoder), so it computes what the template computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lab4.config import Config
from lab4.device import autocast
from lab4.layers import flatten_steps
from lab4.model import VideoCVAE, kl_between_gaussians, kl_to_standard_normal, reparameterize


def training_one_step(model: VideoCVAE, img: torch.Tensor, label: torch.Tensor, adapt_TeacherForcing: bool,
                      beta: float, noise: torch.Tensor | None = None) -> ClipLoss:
    """The template's training step: a loop over time, every module once per step.

    img, label: (B, T, 3, H, W) in [0, 1]. For each step t: encode the previous frame (the true
    one when teacher forced, else the model's own last prediction, detached), the current frame
    and its label; the posterior q(z | x_t, p_t); z by the reparameterisation trick; fuse and
    generate the frame; add its MSE to x_t and beta times the KL. With a learned prior the KL of
    each step is to p(z | x_{t-1}, p_t) instead of N(0, I). `noise` (B*(T-1), N, H, W), laid out
    as `clip_loss` takes it, fixes the reparameterisation noise (for tests). Both KLs are written
    out here rather than taken from lab4.model, so that the equivalence test compares two
    independent writings of the maths.
    """
    batch, length = img.shape[:2]
    if noise is not None:
        noise = noise.unflatten(0, (batch, length - 1))
    img = img.permute(1, 0, 2, 3, 4)      # (T, B, C, H, W), as the template permutes
    label = label.permute(1, 0, 2, 3, 4)
    mse = img.new_zeros(())
    kl = img.new_zeros(())
    out = img[0]
    for i in range(1, length):
        prev = img[i - 1] if adapt_TeacherForcing else out.detach()
        human_feat_hat = model.frame_transformation(prev)
        human_feat = model.frame_transformation(img[i])
        label_feat = model.label_transformation(label[i])
        mu, logvar = model.Gaussian_Predictor(human_feat, label_feat)
        eps = torch.randn_like(mu) if noise is None else noise[:, i - 1]
        z = mu + eps * torch.exp(0.5 * logvar)
        parm = model.Decoder_Fusion(human_feat_hat, label_feat, z)
        raw = model.Generator(parm)
        mse = mse + F.mse_loss(model.fit_output(raw), img[i])
        if model.learned_prior:
            mu_p, logvar_p = model.Prior_Predictor(human_feat_hat, label_feat)
            kl = kl + 0.5 * torch.sum(logvar_p - logvar + (logvar.exp() + (mu - mu_p).pow(2)) / logvar_p.exp()
                                      - 1) / batch
        else:
            kl = kl + (-0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / batch)
        out = model.to_image(raw)  # the prediction, as an image in [0, 1], is the next step's previous frame
    return ClipLoss(loss=mse + beta * kl, mse=mse, kl=kl)


@dataclass
class ClipLoss:
    loss: torch.Tensor   # mse + kl_weight * kl, what backward() runs on
    mse: torch.Tensor    # per-step MSE (mean over batch and pixels), summed over the T-1 steps
    kl: torch.Tensor     # KL summed over latents and steps, divided by the batch size


def clip_loss(model: VideoCVAE, frames: torch.Tensor, labels: torch.Tensor, teacher_forced: bool,
              kl_weight: float, noise: torch.Tensor | None = None, per_frame_labels: bool = False) -> ClipLoss:
    """`training_one_step`'s loss, the whole clip at once. frames, labels: (B, T, 3, H, W) in [0, 1].

    `noise` (B*(T-1), N, H, W) fixes the reparameterisation noise, for tests.
    `per_frame_labels`: the label encoder's BatchNorm normalises each label by its own
    statistics (config train_label_norm="frame"), else all B*(T-1) labels together (the loop
    normalises each step's B labels together: at batch size 1 that is per frame).
    The KL is to N(0, I), or with a learned prior to p(z_t | x_{t-1}, p_t), predicted from the
    same previous-frame features the decoder fuses at that step.
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

    # The mean over batch, steps and pixels times the steps: the loop's per-step MSEs, summed.
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


def build_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    """The optimiser `train_step` steps: Adam (the template's) or AdamW, at the config's LR."""
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    params = list(model.parameters())
    # On a GPU one fused kernel updates every tensor: at these sizes the per-tensor launches of
    # the default update cost more than its arithmetic. Elsewhere the default, so CPU runs keep
    # their numbers.
    fused = {"fused": True} if params and all(p.is_cuda for p in params) else {}
    return kind(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)


def build_scheduler(cfg: Config, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """The optimiser's LR schedule, stepped once per epoch, as the template does."""
    if cfg.lr_schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.milestones, gamma=cfg.gamma)
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.num_epoch, eta_min=cfg.lr * 0.01)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)
