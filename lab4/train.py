"""The training loop: `training_stage` shows the whole run, `train_epoch` one epoch (the names of
the template's Trainer where it has one; lab4/step.py maps them).

Resuming restores every piece of state at an epoch boundary, so a resumed run logs the same
numbers as one that was never interrupted. Under torchrun every rank trains on its share of
the clips; rank 0 validates and writes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from lab4 import data as lab4_data
from lab4.config import Config
from lab4.device import autocast_dtype, resolve_device, to_float_images
from lab4.distributed import Ranks, init_from_env, parameters_in_sync, shutdown
from lab4.evaluate import LABEL_NORM_MEANING, Validation, epoch_columns, precise_label_stats, validate_as_logged
from lab4.io import FolderLock, atomic_write_text
from lab4.model import VideoCVAE
from lab4.runs import EPOCH_COLUMNS, ITER_COLUMNS, VAL_COLUMNS, CsvAppender, RunPaths, write_csv
from lab4.runs.checkpoint import best_epoch_of, load_checkpoint, publish, rng_state, save_checkpoint, set_rng_state
from lab4.runs.rules import absolute, data_record, lock_run_dir, prepare_run_dir
from lab4.schedules import kl_beta, teacher_forcing_draw, teacher_forcing_ratio, warmup_factor
from lab4.step import ClipLossModule, build_optimizer, build_scheduler, train_step


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
                      prior=cfg.prior, background=cfg.background)
    if cfg.channels_last:
        # Inputs may stay NCHW: each convolution follows its weights' layout.
        model = model.to(memory_format=torch.channels_last)
    return model


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


def describe_budget(cfg: Config, sampler: lab4_data.ClipSampler, updates: int, world: int = 1) -> str:
    """The run's budget of `updates` in one line, as `train` prints it before the first step."""
    if cfg.max_iters:
        how = f"{cfg.max_iters} updates (the profile's budget), in {cfg.num_epoch} epochs"
    else:
        partial = " (partial / fast_train)" if cfg.partial < 1 or cfg.fast_train else ""
        how = f"{cfg.num_epoch} epochs of the data's {sampler.num_clips} clips{partial} = {updates} updates"
    return (f"budget: {how}, batch {cfg.batch_size} of {cfg.train_vi_len}-frame clips: "
            f"{updates * cfg.batch_size * world * (cfg.train_vi_len - 1):,} predicted frames from "
            f"{sampler.num_frames:,} training frames")


def train(cfg: Config, run_dir: Path, resume: bool = False, force: bool = False,
          progress: bool = True) -> TrainResult:
    """Train in this process, or as one rank of `torchrun` (see lab4.distributed)."""
    cfg.validate()
    # Stored absolute, so the run resumes (and predicts) from any folder.
    cfg = replace(cfg, data_root=absolute(cfg.data_root))
    device = resolve_device(cfg)
    ranks = init_from_env(device.type == "cuda")
    run_dir = Path(run_dir)
    lock: FolderLock | None = None
    try:
        # Every check that can fail runs before the first step, on every rank. Rank 0 holds the folder from its
        # first check to its last write; a folder that does not exist yet is created (and locked) once they pass.
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
        result = training_stage(cfg, paths, resume, progress and ranks.is_main, device, ranks)
        # Leave together: no rank tears the group down while a peer may still be in its last collective.
        ranks.barrier()
        return result
    finally:
        if lock is not None:
            lock.release()
        shutdown(ranks)


def training_stage(cfg: Config, paths: RunPaths, resume: bool, progress: bool, device: torch.device,
                   ranks: Ranks) -> TrainResult:
    """The whole run: build (or restore) it, then per epoch train, step the LR, validate, log, checkpoint."""
    run = build(cfg, paths, progress, device, ranks)
    state = restore(cfg, run) if resume else Progress()
    open_logs(run, state)
    try:
        for epoch in range(state.epoch, cfg.num_epoch):
            batches = epoch_batches(cfg, run, epoch)
            trained = train_epoch(cfg, run, state, epoch, batches)
            lr = step_lr(run)
            validation = validate_epoch(cfg, run, epoch)
            row = log_epoch(cfg, run, state, epoch, trained, lr, validation)
            save_checkpoints(cfg, run, state, row, validation)
            if progress:
                print(format_epoch(row), flush=True)
    finally:
        if run.iter_log is not None:
            run.iter_log.close()
    return finish(cfg, run, state)


@dataclass
class Run:
    """What a run trains with, built by `build` in one order, so that a seed gives the same weights."""
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
    ranks: Ranks
    paths: RunPaths
    data: dict[str, Any]                  # what the checkpoint records of the data (lab4.runs.rules.data_record)
    progress: bool                        # a progress bar and a line per epoch
    iter_log: CsvAppender | None = None   # iter_log.csv, open for appending on rank 0


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
    """One epoch's updates, for its log rows."""
    tfr: float                            # the teacher-forcing ratio in force
    values: list[torch.Tensor] = field(default_factory=list)  # loss, mse, kl of each update, left on the device
    betas: list[float] = field(default_factory=list)
    forced: list[bool] = field(default_factory=list)
    logged: int = 0                       # the updates iter_log.csv holds
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0                  # the updates' time, without the validation

    def mean(self, ranks: Ranks, since: int = 0) -> list[float]:
        """loss, mse, kl per update from update `since` on, over every rank."""
        window = self.values[since:]
        return (ranks.mean(sum(window, torch.zeros(3, device=window[0].device))) / len(window)).tolist()


def build(cfg: Config, paths: RunPaths, progress: bool, device: torch.device, ranks: Ranks) -> Run:
    """The data, then the model, its optimiser and schedules, from the run's seed."""
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda" and ranks.active:
        device = torch.device("cuda", ranks.local_rank)
    amp_dtype = autocast_dtype(cfg, device)
    root = Path(cfg.data_root)
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
    return Run(model, step_module, optimizer, scheduler, scaler, device, amp_dtype, train_split, sampler,
               val_frames, val_labels, total_iters, ranks, paths, data_record(root), progress)


def restore(cfg: Config, run: Run) -> Progress:
    """--resume: every piece of state as last.pt saved it at the end of its epoch."""
    state = load_checkpoint(run.paths.last, map_location=run.device)
    run.model.load_state_dict(state["model"])
    kernels = [{key: group.get(key) for key in ("fused", "foreach")} for group in run.optimizer.param_groups]
    run.optimizer.load_state_dict(state["optimizer"])
    for group, kernel in zip(run.optimizer.param_groups, kernels):
        group.update(kernel)  # which update kernel runs is this machine's choice, not the saving one's
    run.scheduler.load_state_dict(state["scheduler"])
    run.scaler.load_state_dict(state["scaler"])
    per_rank = state.get("rng_ranks", [state["rng"]])
    set_rng_state(per_rank[run.ranks.rank] if len(per_rank) == run.ranks.world else state["rng"])
    if run.progress:
        print(f"resuming {run.paths.root} after epoch {state['epoch']} of {cfg.num_epoch}")
    return Progress(epoch=state["epoch"], global_step=state["global_step"], best_psnr=state["best_psnr"],
                    best_epoch=best_epoch_of(state), history=state["history"])


def open_logs(run: Run, state: Progress) -> None:
    """Rank 0 writes the logs as the history has them and keeps iter_log.csv open for appending."""
    if run.ranks.is_main:
        run.iter_log = CsvAppender(run.paths.iter_log, ITER_COLUMNS, state.history["iters"])
        write_csv(run.paths.epoch_log, EPOCH_COLUMNS, state.history["epochs"])
        write_csv(run.paths.val_log, VAL_COLUMNS, state.history["val"])


def epoch_batches(cfg: Config, run: Run, epoch: int) -> list[np.ndarray]:
    """This rank's share of the epoch's clips (drawn for every rank alike), cut into its batches."""
    n_batches = batches_in_epoch(cfg, run.sampler, epoch, run.ranks.world)
    if cfg.max_iters:
        clips = run.sampler.draw(epoch, cfg.seed, n_batches * cfg.batch_size * run.ranks.world)
    else:
        clips = run.sampler.clips(epoch, cfg.seed, epoch_fraction(cfg, epoch))
    clips = run.ranks.shard(clips)
    return [clips[i * cfg.batch_size:(i + 1) * cfg.batch_size] for i in range(n_batches)]


def train_epoch(cfg: Config, run: Run, state: Progress, epoch: int, batches: list[np.ndarray]) -> EpochTraining:
    """An update per batch, teacher forcing and KL weight from the schedules; iter_log.csv every log_every."""
    run.model.train()
    tfr = teacher_forcing_ratio(epoch, cfg.tfr, cfg.tfr_sde, cfg.tfr_d_step)
    trained = EpochTraining(tfr)
    bar = tqdm(batches, desc=f"epoch {epoch + 1}/{cfg.num_epoch}", disable=not run.progress, leave=False,
               mininterval=2.0, dynamic_ncols=True)
    for batch_idx, clips in enumerate(bar):
        warm_up_lr(cfg, run, state.global_step)
        frames, labels = (to_float_images(x, run.device) for x in lab4_data.gather_frames(run.train_split, clips))
        beta = kl_weight(cfg, epoch, state.global_step, run.total_iters)
        # Decided once per epoch, as the template does, or once per batch (tf_granularity="batch").
        forced = teacher_forcing_draw(tfr, cfg.seed, epoch, batch_idx + 1 if cfg.tf_granularity == "batch" else 0)
        trained.values.append(train_step(run.step_module, run.optimizer, run.scaler, frames, labels, forced, beta,
                                         run.device, run.amp_dtype, cfg.grad_clip))
        trained.betas.append(beta)
        trained.forced.append(forced)
        state.global_step += 1
        if (batch_idx + 1) % cfg.log_every == 0 or batch_idx == len(batches) - 1:
            log_updates(run, state, epoch, trained, bar)
    trained.seconds = time.perf_counter() - trained.started
    return trained


def warm_up_lr(cfg: Config, run: Run, step: int) -> None:
    """In the first warmup_iters updates, the epoch's scheduled LR times the warm-up ramp: a pure
    function of the update, so a resumed run warms up exactly as an uninterrupted one."""
    if step < cfg.warmup_iters:
        for group, scheduled in zip(run.optimizer.param_groups, run.scheduler.get_last_lr()):
            group["lr"] = scheduled * warmup_factor(step, cfg.warmup_iters)


def kl_weight(cfg: Config, epoch: int, step: int, total_iters: int) -> float:
    """beta at update `step` of `epoch`: the schedule advances per epoch or per iteration."""
    at, total = (epoch, cfg.num_epoch) if cfg.kl_anneal_step == "epoch" else (step, total_iters)
    return kl_beta(cfg.kl_anneal_type, at, total, cfg.kl_anneal_cycle, cfg.kl_anneal_ratio, cfg.kl_beta_max)


def log_updates(run: Run, state: Progress, epoch: int, trained: EpochTraining, bar: tqdm) -> None:
    """A row of iter_log.csv: the updates since the last row, averaged over every rank (all stop at a NaN)."""
    loss, mse, kl = trained.mean(run.ranks, since=trained.logged)
    trained.logged = len(trained.values)
    if not all(map(math.isfinite, (loss, mse, kl))):
        kept = (f"{run.paths.last} holds the last good state (epoch {epoch})" if epoch
                else "no checkpoint was saved (it diverged in the first epoch)")
        raise TrainingDiverged(f"loss became {loss} (mse {mse}, kl {kl}) at epoch {epoch + 1}, iteration "
                               f"{state.global_step}; the run stopped and {kept}. "
                               "Try a lower lr, grad_clip, or precision=fp32.")
    row = {"epoch": epoch + 1, "iteration": state.global_step, "loss": loss, "mse": mse, "kl": kl,
           "beta": trained.betas[-1], "teacher_forced": int(trained.forced[-1])}
    state.history["iters"].append(row)
    if run.iter_log is not None:
        run.iter_log.append(row)
    bar.set_postfix(loss=f"{loss:.4g}", mse=f"{mse:.4g}", beta=f"{row['beta']:.2f}", tf=row["teacher_forced"])


def step_lr(run: Run) -> float:
    """The LR schedule's step, once per epoch as the template's; returns the LR the epoch trained at."""
    for group, scheduled in zip(run.optimizer.param_groups, run.scheduler.get_last_lr()):
        group["lr"] = scheduled  # without the warm-up: the schedulers compute the next LR from the last one
    lr = run.optimizer.param_groups[0]["lr"]
    run.scheduler.step()
    return lr


def validate_epoch(cfg: Config, run: Run, epoch: int) -> Validation | None:
    """Rank 0, every val_every epochs and at the last: the full rollout of the val video, scored."""
    if not run.ranks.is_main:
        return None
    if cfg.label_norm == "precise":  # before the validation and the checkpoint, which keeps them
        precise_label_stats(run.model, run.train_split.labels, run.device)
    if (epoch + 1) % cfg.val_every and epoch + 1 != cfg.num_epoch:
        return None
    return validate_as_logged(run.model, cfg, epoch + 1, run.val_frames, run.val_labels, dtype=run.amp_dtype,
                              label_norm=cfg.label_norm)


def log_epoch(cfg: Config, run: Run, state: Progress, epoch: int, trained: EpochTraining, lr: float,
              validation: Validation | None) -> dict[str, Any]:
    """The epoch's row of train_log.csv, its validation's rows and the best so far, into the history."""
    loss, mse, kl = trained.mean(run.ranks)
    row = {
        "epoch": epoch + 1, "lr": lr, "tfr": trained.tfr, "teacher_forced": sum(trained.forced) / len(trained.forced),
        "beta": float(np.mean(trained.betas)), "train_loss": loss, "train_mse": mse, "train_kl": kl,
        **epoch_columns(validation), "seconds": time.perf_counter() - trained.started,
        "train_frames_per_s": len(trained.betas) * cfg.batch_size * (cfg.train_vi_len - 1) / trained.seconds,
    }
    state.history["epochs"].append(row)
    if validation is not None:
        state.history["val"].extend(validation.frame_rows(epoch + 1))
        if validation.mean_psnr > state.best_psnr:
            state.best_psnr, state.best_epoch = validation.mean_psnr, epoch + 1
    state.epoch = epoch + 1
    return row


def save_checkpoints(cfg: Config, run: Run, state: Progress, row: dict[str, Any],
                     validation: Validation | None) -> None:
    """Commit the epoch (the rule is in lab4.runs): rank 0 writes what last.pt cannot restore, then last.pt
    with every rank's RNG, then what derives from it (logs, best.pt, epoch_NNN.pt), which --resume redoes."""
    rng_ranks = run.ranks.gather(rng_state())
    if run.ranks.is_main:
        checkpoint = {
            "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
            "scheduler": run.scheduler.state_dict(), "scaler": run.scaler.state_dict(),
            "epoch": state.epoch, "global_step": state.global_step, "best_psnr": state.best_psnr,
            "best_epoch": state.best_epoch, "tfr": row["tfr"], "beta": row["beta"], "rng": rng_ranks[0],
            "rng_ranks": rng_ranks, "config": cfg.to_dict(), "history": state.history, "data": run.data,
        }
        if validation is not None:
            validation.save(run.paths.val_rollout, run.val_frames, run.val_labels, state.epoch)
        save_checkpoint(run.paths.last, checkpoint)
        write_csv(run.paths.epoch_log, EPOCH_COLUMNS, state.history["epochs"])
        write_csv(run.paths.val_log, VAL_COLUMNS, state.history["val"])
        publish(run.paths, checkpoint, cfg.per_save)
    run.ranks.barrier()


def finish(cfg: Config, run: Run, state: Progress) -> TrainResult:
    """done.json, once the ranks have checked that they end with the same weights."""
    in_sync = parameters_in_sync(run.model, run.ranks)
    if run.ranks.is_main:
        atomic_write_text(run.paths.done, json.dumps({
            "epochs": cfg.num_epoch, "best_val_psnr": state.best_psnr, "best_epoch": state.best_epoch,
            "data_style": lab4_data.dataset_style(Path(cfg.data_root)), "ranks": run.ranks.world,
            "ranks_in_sync": in_sync, "final": state.history["epochs"][-1]}, indent=2) + "\n")
    if not in_sync:
        raise RuntimeError("the ranks of this distributed run ended with different weights")
    return TrainResult(run_dir=run.paths.root, epochs=state.history["epochs"], best_psnr=state.best_psnr)


def format_epoch(row: dict[str, Any]) -> str:
    text = (f"epoch {row['epoch']:>3}  loss {row['train_loss']:.4g}  mse {row['train_mse']:.4g}  "
            f"kl {row['train_kl']:.4g}  beta {row['beta']:.2f}  tfr {row['tfr']:.2f}  lr {row['lr']:.2g}")
    if row["val_psnr"] != "":
        text += (f"  | val PSNR {row['val_psnr']:.2f} dB, SSIM {row['val_ssim']:.3f} (repeat-first-frame baseline "
                 f"{row['baseline_psnr']:.2f} dB, {row['baseline_ssim']:.3f})")
    return text + f"  [{row['seconds']:.0f}s, {row['train_frames_per_s']:.0f} frames/s]"
