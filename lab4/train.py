"""The training loop, read top to bottom in `_train_locked`.

Build the data, model and optimiser (`_build`), or restore them on --resume (`_restore`);
then per epoch: draw the clips and train on them, teacher forcing and KL weight from the
schedules, and step the LR (`_train_epoch`); validate on the full val rollout, log and
checkpoint (`_end_epoch`). Resuming restores every piece of state at an epoch boundary,
so a resumed run logs the same numbers as one that was never interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lab4 import data as lab4_data
from lab4.checkpoint import best_epoch_of, load_checkpoint, publish, rng_state, save_checkpoint, set_rng_state
from lab4.config import Config
from lab4.device import autocast_dtype, resolve_device, to_float_images
from lab4.distributed import Ranks, init_from_env, parameters_in_sync, shutdown
from lab4.evaluate import LABEL_NORM_MEANING, Validation, epoch_columns, precise_label_stats, validate
from lab4.io import FolderLock, atomic_write_text
from lab4.model import VideoCVAE
from lab4.run import EPOCH_COLUMNS, ITER_COLUMNS, VAL_COLUMNS, CsvAppender, RunPaths, write_csv
from lab4.rundir import absolute, data_record, lock_run_dir, prepare_run_dir
from lab4.schedules import kl_beta, teacher_forcing_draw, teacher_forcing_ratio, warmup_factor
from lab4.step import ClipLossModule, train_step


class TrainingDiverged(RuntimeError):
    pass


@dataclass
class TrainResult:
    run_dir: Path
    epochs: list[dict[str, Any]]
    best_psnr: float

    @property
    def last(self) -> dict[str, Any]:
        return self.epochs[-1]


def build_model(cfg: Config) -> VideoCVAE:
    model = VideoCVAE(cfg.F_dim, cfg.L_dim, cfg.N_dim, cfg.D_out_dim, output=cfg.output, init=cfg.init,
                      prior=cfg.prior)
    if cfg.channels_last:
        # Inputs may stay NCHW: each convolution follows its weights' layout.
        model = model.to(memory_format=torch.channels_last)
    return model


def build_optimizer(cfg: Config, model: torch.nn.Module) -> torch.optim.Optimizer:
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    params = list(model.parameters())
    # On a GPU one fused kernel updates every tensor: at these sizes the per-tensor launches of
    # the default update cost more than its arithmetic. Elsewhere the default, so CPU runs keep
    # their numbers.
    fused = {"fused": True} if params and all(p.is_cuda for p in params) else {}
    return kind(params, lr=cfg.lr, weight_decay=cfg.weight_decay, **fused)


def build_scheduler(cfg: Config, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per epoch, as the template does."""
    if cfg.lr_schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=cfg.milestones, gamma=cfg.gamma)
    if cfg.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.num_epoch, eta_min=cfg.lr * 0.01)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def epoch_fraction(cfg: Config, epoch: int) -> float:
    """The share of training clips used in `epoch` (the template's fast_train, then partial)."""
    return cfg.fast_partial if cfg.fast_train and epoch < cfg.fast_train_epoch else cfg.partial


def batches_in_epoch(cfg: Config, sampler: lab4_data.ClipSampler, epoch: int, world: int = 1) -> int:
    """Updates in `epoch`: a pass over (a share of) the data, or with a budget in updates
    (max_iters), that budget split into num_epoch near-equal parts, whatever the data's size."""
    if cfg.max_iters:
        return cfg.max_iters * (epoch + 1) // cfg.num_epoch - cfg.max_iters * epoch // cfg.num_epoch
    clips = sampler.clips_per_epoch(epoch_fraction(cfg, epoch)) // world
    return max(1, clips // cfg.batch_size)


def epoch_clips(cfg: Config, sampler: lab4_data.ClipSampler, epoch: int, world: int = 1) -> np.ndarray:
    """The clips of `epoch` for every rank, in the order their batches take them."""
    if cfg.max_iters:
        return sampler.draw(epoch, cfg.seed, batches_in_epoch(cfg, sampler, epoch) * cfg.batch_size * world)
    return sampler.clips(epoch, cfg.seed, epoch_fraction(cfg, epoch))


def describe_budget(cfg: Config, sampler: lab4_data.ClipSampler, updates: int, world: int = 1) -> str:
    """The run's budget of `updates` in one line, as `train` prints it before the first step."""
    per = f"batch {cfg.batch_size} of {cfg.train_vi_len}-frame clips"
    if cfg.max_iters:
        how = f"{cfg.max_iters} updates (the profile's budget), in {cfg.num_epoch} epochs"
    else:
        how = f"{cfg.num_epoch} epochs of the data's {sampler.num_clips} clips"
        if cfg.partial < 1 or cfg.fast_train:
            how += " (partial / fast_train)"
        how += f" = {updates} updates"
    return (f"budget: {how}, {per}: {updates * cfg.batch_size * world * (cfg.train_vi_len - 1):,} predicted "
            f"frames from {sampler.num_frames:,} training frames")


def train(cfg: Config, run_dir: Path, resume: bool = False, force: bool = False,
          progress: bool = True) -> TrainResult:
    """Train in this process, or as one rank of `torchrun` (see lab4.distributed)."""
    cfg.validate()
    # Stored absolute, so the run resumes (and predicts) from any folder.
    cfg = dataclasses.replace(cfg, data_root=absolute(cfg.data_root))
    device = resolve_device(cfg)
    ranks = init_from_env(device.type == "cuda")
    try:
        return _train(cfg, Path(run_dir), resume, force, progress and ranks.is_main, device, ranks)
    finally:
        shutdown(ranks)


def _train(cfg: Config, run_dir: Path, resume: bool, force: bool, progress: bool, device: torch.device,
           ranks: Ranks) -> TrainResult:
    lock: FolderLock | None = None
    try:
        # Every check that can fail runs before the first step, on every rank. Rank 0 holds the
        # folder from its first check to its last write; a folder that does not exist yet is
        # created (and locked) only once the checks have passed.
        if ranks.is_main and run_dir.is_dir():
            lock = lock_run_dir(run_dir)
        paths = prepare_run_dir(run_dir, cfg, resume, force, write=False)
        lab4_data.check_layout(Path(cfg.data_root), ("train", "val"))
        ranks.barrier()  # every rank has checked before rank 0 writes
        if ranks.is_main:
            if lock is None:
                run_dir.mkdir(parents=True, exist_ok=True)
                lock = lock_run_dir(run_dir)
            prepare_run_dir(run_dir, cfg, resume, force)
        ranks.barrier()
        return _train_locked(cfg, paths, resume, progress, device, ranks)
    finally:
        if lock is not None:
            lock.release()


@dataclass
class Trainer:
    """What a run trains with, built by `_build` in one order, so that a seed gives the same weights."""
    model: VideoCVAE
    step_module: torch.nn.Module          # a ClipLossModule, wrapped in DistributedDataParallel on several ranks
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype | None
    train_split: lab4_data.VideoSplit
    sampler: lab4_data.ClipSampler
    val_frames: torch.Tensor
    val_labels: torch.Tensor
    total_iters: int                      # updates over the whole run, for the KL schedule per iteration


@dataclass
class Progress:
    """Where a run stands after `epoch` epochs: what checkpoints/last.pt restores."""
    epoch: int = 0
    global_step: int = 0
    best_psnr: float = -math.inf
    best_epoch: int | None = None
    history: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"epochs": [], "iters": [], "val": []})


@dataclass
class EpochTraining:
    """What one epoch's updates leave for its log row."""
    started: float                        # time.perf_counter() at the epoch's start
    seconds: float                        # the updates' time, without the validation
    tfr: float
    n_batches: int
    sums: torch.Tensor                    # loss, mse, kl summed over the batches, on the device
    betas: list[float]
    forced_count: int
    lr: float                             # the LR the epoch trained at


def _train_locked(cfg: Config, paths: RunPaths, resume: bool, progress: bool, device: torch.device,
                  ranks: Ranks) -> TrainResult:
    root = Path(cfg.data_root)
    run = _build(cfg, root, progress, device, ranks)
    state = _restore(cfg, paths, run, ranks, progress) if resume else Progress()
    data = data_record(root)
    iter_log = CsvAppender(paths.iter_log, ITER_COLUMNS, state.history["iters"]) if ranks.is_main else None
    if ranks.is_main:
        write_csv(paths.epoch_log, EPOCH_COLUMNS, state.history["epochs"])
        write_csv(paths.val_log, VAL_COLUMNS, state.history["val"])
    try:
        for epoch in range(state.epoch, cfg.num_epoch):
            trained = _train_epoch(cfg, run, state, epoch, paths, ranks, iter_log, progress)
            means = (ranks.mean(trained.sums) / trained.n_batches).tolist()
            rng_ranks = ranks.gather(rng_state())
            if ranks.is_main:  # rank 0 validates and writes
                _end_epoch(cfg, run, state, epoch, trained, means, rng_ranks, paths, data, progress)
            ranks.barrier()
    finally:
        if iter_log is not None:
            iter_log.close()

    in_sync = parameters_in_sync(run.model, ranks)
    if ranks.is_main:
        atomic_write_text(paths.done, json.dumps({"epochs": cfg.num_epoch, "best_val_psnr": state.best_psnr,
                                                  "best_epoch": state.best_epoch,
                                                  "data_style": lab4_data.dataset_style(root),
                                                  "ranks": ranks.world, "ranks_in_sync": in_sync,
                                                  "final": state.history["epochs"][-1]}, indent=2) + "\n")
    if not in_sync:
        raise RuntimeError("the ranks of this distributed run ended with different weights")
    return TrainResult(run_dir=paths.root, epochs=state.history["epochs"], best_psnr=state.best_psnr)


def _build(cfg: Config, root: Path, progress: bool, device: torch.device, ranks: Ranks) -> Trainer:
    """The data, then the model, its optimiser and schedules, from the run's seed."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda" and ranks.active:
        device = torch.device("cuda", ranks.local_rank)
    amp_dtype = autocast_dtype(cfg, device)
    train_split = lab4_data.load_split(root, "train", progress=progress)
    val_split = lab4_data.load_split(root, "val", progress=progress)
    sampler = lab4_data.ClipSampler(len(train_split), cfg.train_vi_len, cfg.clip_mode, cfg.shuffle)
    val_len = min(cfg.val_vi_len, len(val_split))
    val_frames = to_float_images(val_split.frames[:val_len], device)
    val_labels = to_float_images(val_split.labels[:val_len], device)

    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    model = build_model(cfg).to(device)
    step_module: torch.nn.Module = ClipLossModule(model, per_frame_labels=cfg.train_label_norm == "frame")
    if ranks.active:
        # DDP starts every rank from rank 0's weights; the noise then differs per rank.
        step_module = torch.nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None)
        torch.manual_seed(cfg.seed + ranks.rank)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_scheduler(cfg, optimizer)
    # Loss scaling only matters for fp16; bf16 and fp32 have the range.
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    total_iters = sum(batches_in_epoch(cfg, sampler, e, ranks.world) for e in range(cfg.num_epoch))
    if progress:
        print(describe_budget(cfg, sampler, total_iters, ranks.world), flush=True)
        print(f"validation: label_norm={cfg.label_norm}: {LABEL_NORM_MEANING[cfg.label_norm]}", flush=True)
    return Trainer(model, step_module, optimizer, scheduler, scaler, device, amp_dtype, train_split, sampler,
                   val_frames, val_labels, total_iters)


def _restore(cfg: Config, paths: RunPaths, run: Trainer, ranks: Ranks, progress: bool) -> Progress:
    """--resume: every piece of state as last.pt saved it at the end of its epoch."""
    state = load_checkpoint(paths.last, map_location=run.device)
    run.model.load_state_dict(state["model"])
    kernels = [{key: group.get(key) for key in ("fused", "foreach")} for group in run.optimizer.param_groups]
    run.optimizer.load_state_dict(state["optimizer"])
    for group, kernel in zip(run.optimizer.param_groups, kernels):
        group.update(kernel)  # which update kernel runs is this machine's choice, not the saving one's
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    per_rank = state.get("rng_ranks", [state["rng"]])
    set_rng_state(per_rank[ranks.rank] if len(per_rank) == ranks.world else state["rng"])
    if progress:
        print(f"resuming {paths.root} after epoch {state['epoch']} of {cfg.num_epoch}")
    return Progress(epoch=state["epoch"], global_step=state["global_step"], best_psnr=state["best_psnr"],
                    best_epoch=best_epoch_of(state), history=state["history"])


def kl_weight(cfg: Config, epoch: int, step: int, total_iters: int) -> float:
    """beta at update `step` of `epoch`: the schedule advances per epoch or per iteration."""
    at, total = (epoch, cfg.num_epoch) if cfg.kl_anneal_step == "epoch" else (step, total_iters)
    return kl_beta(cfg.kl_anneal_type, at, total, cfg.kl_anneal_cycle, cfg.kl_anneal_ratio, cfg.kl_beta_max)


def _train_epoch(cfg: Config, run: Trainer, state: Progress, epoch: int, paths: RunPaths, ranks: Ranks,
                 iter_log: CsvAppender | None, progress: bool) -> EpochTraining:
    """The updates of one epoch (teacher forcing and KL weight from the schedules), a row of the
    iteration log every log_every of them, then the LR schedule's step."""
    started = time.perf_counter()
    run.model.train()
    tfr = teacher_forcing_ratio(epoch, cfg.tfr, cfg.tfr_sde, cfg.tfr_d_step)
    epoch_forced = teacher_forcing_draw(tfr, cfg.seed, epoch)
    clips = ranks.shard(epoch_clips(cfg, run.sampler, epoch, ranks.world))
    n_batches = batches_in_epoch(cfg, run.sampler, epoch, ranks.world)
    sums = torch.zeros(3, device=run.device)  # loss, mse, kl: summed on the device, read rarely
    logged = torch.zeros(3, device=run.device)
    betas, forced_count, since_log = [], 0, 0
    bar = tqdm(range(n_batches), desc=f"epoch {epoch + 1}/{cfg.num_epoch}", disable=not progress,
               leave=False, mininterval=2.0, dynamic_ncols=True)
    scheduled_lrs = run.scheduler.get_last_lr()
    for batch_idx in bar:
        if state.global_step < cfg.warmup_iters:
            # A pure function of the iteration, on top of the epoch's scheduled LR,
            # so a resumed run warms up exactly as an uninterrupted one.
            for group, scheduled in zip(run.optimizer.param_groups, scheduled_lrs):
                group["lr"] = scheduled * warmup_factor(state.global_step, cfg.warmup_iters)
        picked = clips[batch_idx * cfg.batch_size:(batch_idx + 1) * cfg.batch_size]
        frames_u8, labels_u8 = lab4_data.gather_frames(run.train_split, picked)
        frames = to_float_images(frames_u8, run.device)
        labels = to_float_images(labels_u8, run.device)
        beta = kl_weight(cfg, epoch, state.global_step, run.total_iters)
        forced = (epoch_forced if cfg.tf_granularity == "epoch"
                  else teacher_forcing_draw(tfr, cfg.seed, epoch, batch_idx + 1))
        values = train_step(run.step_module, run.optimizer, run.scaler, frames, labels, forced, beta, run.device,
                            run.amp_dtype, cfg.grad_clip)
        sums += values
        logged += values
        betas.append(beta)
        forced_count += forced
        state.global_step += 1
        since_log += 1
        if since_log == cfg.log_every or batch_idx == n_batches - 1:
            # Averaged over ranks, so every rank sees a NaN and stops together.
            loss_v, mse_v, kl_v = (ranks.mean(logged) / since_log).tolist()
            if not all(map(math.isfinite, (loss_v, mse_v, kl_v))):
                kept = (f"{paths.last} holds the last good state (epoch {epoch})" if epoch
                        else "no checkpoint was saved (it diverged in the first epoch)")
                raise TrainingDiverged(
                    f"loss became {loss_v} (mse {mse_v}, kl {kl_v}) at epoch {epoch + 1}, "
                    f"iteration {state.global_step}; the run stopped and {kept}. "
                    "Try a lower lr, grad_clip, or precision=fp32.")
            row = {"epoch": epoch + 1, "iteration": state.global_step, "loss": loss_v, "mse": mse_v,
                   "kl": kl_v, "beta": beta, "teacher_forced": int(forced)}
            state.history["iters"].append(row)
            if iter_log is not None:
                iter_log.append(row)
            bar.set_postfix(loss=f"{loss_v:.4g}", mse=f"{mse_v:.4g}", beta=f"{beta:.2f}", tf=int(forced))
            logged.zero_()
            since_log = 0
    for group, scheduled in zip(run.optimizer.param_groups, scheduled_lrs):
        group["lr"] = scheduled  # the schedulers compute the next LR from the last one
    lr = run.optimizer.param_groups[0]["lr"]
    run.scheduler.step()
    return EpochTraining(started=started, seconds=time.perf_counter() - started, tfr=tfr, n_batches=n_batches,
                         sums=sums, betas=betas, forced_count=forced_count, lr=lr)


def _end_epoch(cfg: Config, run: Trainer, state: Progress, epoch: int, trained: EpochTraining,
               means: list[float], rng_ranks: list[Any], paths: RunPaths, data: dict[str, Any],
               progress: bool) -> None:
    """Rank 0 after an epoch's updates: validate on the val rollout (every val_every epochs and at
    the last), log the epoch, and commit it (checkpoints/last.pt and what derives from it)."""
    validation: Validation | None = None
    if cfg.label_norm == "precise":  # before the validation and the checkpoint, which keeps them
        precise_label_stats(run.model, run.train_split.labels, run.device)
    if (epoch + 1) % cfg.val_every == 0 or epoch + 1 == cfg.num_epoch:
        validation = validate(run.model, run.val_frames, run.val_labels, cfg.val_z, seed=cfg.seed + 1000 * epoch,
                              dtype=run.amp_dtype, label_norm=cfg.label_norm)
        state.history["val"].extend(validation.frame_rows(epoch + 1))
    loss_m, mse_m, kl_m = means
    row = {
        "epoch": epoch + 1, "lr": trained.lr, "tfr": trained.tfr,
        "teacher_forced": trained.forced_count / trained.n_batches,
        "beta": float(np.mean(trained.betas)), "train_loss": loss_m, "train_mse": mse_m, "train_kl": kl_m,
        **epoch_columns(validation), "seconds": time.perf_counter() - trained.started,
        "train_frames_per_s": trained.n_batches * cfg.batch_size * (cfg.train_vi_len - 1) / trained.seconds,
    }
    state.history["epochs"].append(row)
    if validation is not None and validation.mean_psnr > state.best_psnr:
        state.best_psnr, state.best_epoch = validation.mean_psnr, epoch + 1
    state.epoch = epoch + 1

    checkpoint = {
        "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict(),
        "epoch": epoch + 1, "global_step": state.global_step, "best_psnr": state.best_psnr,
        "best_epoch": state.best_epoch, "tfr": trained.tfr, "beta": row["beta"], "rng": rng_ranks[0],
        "rng_ranks": rng_ranks, "config": cfg.to_dict(), "history": state.history, "data": data,
    }
    # The commit (the rule is in lab4.run): what last.pt cannot restore goes first, then
    # last.pt, then what is derived from it, which --resume restores if a kill cuts in.
    if validation is not None:
        validation.save(paths.val_rollout, run.val_frames, run.val_labels, epoch + 1)
    save_checkpoint(paths.last, checkpoint)
    write_csv(paths.epoch_log, EPOCH_COLUMNS, state.history["epochs"])
    write_csv(paths.val_log, VAL_COLUMNS, state.history["val"])
    publish(paths, checkpoint, cfg.per_save)
    if progress:
        print(format_epoch(row), flush=True)


def format_epoch(row: dict[str, Any]) -> str:
    text = (f"epoch {row['epoch']:>3}  loss {row['train_loss']:.4g}  mse {row['train_mse']:.4g}  "
            f"kl {row['train_kl']:.4g}  beta {row['beta']:.2f}  tfr {row['tfr']:.2f}  lr {row['lr']:.2g}")
    if row["val_psnr"] != "":
        text += (f"  | val PSNR {row['val_psnr']:.2f} dB, SSIM {row['val_ssim']:.3f} (repeat-first-frame baseline "
                 f"{row['baseline_psnr']:.2f} dB, {row['baseline_ssim']:.3f})")
    return text + f"  [{row['seconds']:.0f}s, {row['train_frames_per_s']:.0f} frames/s]"
