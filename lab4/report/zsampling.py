"""z-sampling strategies side by side: one trained model, one set of videos, every way of choosing z.

`compare_z_strategies` rolls out the same videos with each strategy of `lab4.rollout`
("prior", "zero", "mean" and the ORACLE "best_of") and scores every predicted frame (PSNR
and SSIM on the [0, 1] frames, as the validation does) beside the repeat-first-frame baseline.
`python -m lab4 strategies RUN_DIR` runs it on a trained run's val video, or with --split
test on the test sequences when the data has their ground truth (test/test_gt; the
synthetic data does, the real data does not), and writes RUN_DIR/strategies/z_strategies.csv (per frame) and
z_strategies_summary.csv (z_strategies_test.csv and z_strategies_summary_test.csv for the test split).

best_of picks each frame with the ground truth, so its numbers are an upper bound on
what the samples contain (as SVG and SAVP report best-of-N), never a prediction score.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from lab4 import data as lab4_data
from lab4.commands import LAZY_COMMANDS
from lab4.config import Config
from lab4.device import autocast_dtype, to_float_images
from lab4.io import atomic_path
from lab4.metrics import psnr_per_frame, ssim_per_frame
from lab4.model import VideoCVAE
from lab4.predict import generation_label_norm, load_trained
from lab4.rollout import MULTI_SAMPLE_Z_MODES, ORACLE_Z_MODES, Z_MODES, rollout
from lab4.scoring import scored_frames_for

STRATEGIES = Z_MODES  # prior, zero, mean, best_of
OUT_DIR = "strategies"  # inside the run folder
PER_FRAME_CSV, SUMMARY_CSV = "z_strategies.csv", "z_strategies_summary.csv"


def compare_z_strategies(model: VideoCVAE, frames: torch.Tensor, labels: torch.Tensor,
                         strategies: Sequence[str] = STRATEGIES, samples: int = 8, seed: int = 0,
                         dtype: torch.dtype | None = None, label_norm: str = "frame"
                         ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """frames, labels: one video (T, 3, H, W) or several (S, T, 3, H, W), in [0, 1] on the model's device.

    Every strategy rolls out from frames[:, 0] with a generator seeded with `seed` (so
    "prior" and "best_of" with samples=1 draw the same z). Returns
    - per frame: strategy, sequence, frame (1..T-1), psnr, baseline_psnr, ssim, baseline_ssim;
    - summary, one row per strategy: mean_psnr and mean_ssim over every predicted frame,
      psnr_frames_1_600 and ssim_frames_1_600 over Kaggle's scored frames (fewer for short
      videos), the baseline's four, is_oracle, samples (z decoded per step).
    """
    if frames.dim() == 4:
        frames, labels = frames[None], labels[None]
    truth = frames[:, 1:]
    repeated_first = frames[:, :1].expand_as(truth)
    baseline = psnr_per_frame(repeated_first, truth).cpu()
    baseline_ssim = ssim_per_frame(repeated_first, truth).cpu()
    scored = [frame - 1 for frame in scored_frames_for(frames.shape[1])]  # column i of a PSNR table is frame i + 1
    per_frame, summary = [], []
    for strategy in strategies:
        generator = torch.Generator(device=frames.device).manual_seed(seed)
        is_oracle = strategy in ORACLE_Z_MODES
        pred = rollout(model, frames[:, 0], labels, z_mode=strategy, samples=samples, generator=generator,
                       dtype=dtype, truth=frames if is_oracle else None, label_norm=label_norm)
        psnr = psnr_per_frame(pred[:, 1:], truth).cpu()  # (S, T-1)
        ssim = ssim_per_frame(pred[:, 1:], truth).cpu()
        for seq in range(psnr.shape[0]):
            per_frame.append(pd.DataFrame({"strategy": strategy, "sequence": seq,
                                           "frame": range(1, psnr.shape[1] + 1),
                                           "psnr": psnr[seq].numpy(), "baseline_psnr": baseline[seq].numpy(),
                                           "ssim": ssim[seq].numpy(), "baseline_ssim": baseline_ssim[seq].numpy()}))
        summary.append({"strategy": strategy, "mean_psnr": psnr.mean().item(),
                        "psnr_frames_1_600": psnr[:, scored].mean().item(),
                        "mean_ssim": ssim.mean().item(),
                        "ssim_frames_1_600": ssim[:, scored].mean().item(),
                        "baseline_mean_psnr": baseline.mean().item(),
                        "baseline_psnr_frames_1_600": baseline[:, scored].mean().item(),
                        "baseline_mean_ssim": baseline_ssim.mean().item(),
                        "baseline_ssim_frames_1_600": baseline_ssim[:, scored].mean().item(),
                        "is_oracle": is_oracle, "samples": samples if strategy in MULTI_SAMPLE_Z_MODES else 1})
    return pd.concat(per_frame, ignore_index=True), pd.DataFrame(summary)


def format_summary(summary: pd.DataFrame) -> str:
    """The summary as a plain-text table, the baseline beside each row and the oracle flagged."""
    table = summary.assign(strategy=[f"{s} (ORACLE)" if o else s
                                     for s, o in zip(summary["strategy"], summary["is_oracle"])])
    table = table[["strategy", "samples", "mean_psnr", "psnr_frames_1_600", "mean_ssim", "ssim_frames_1_600",
                   "baseline_mean_psnr", "baseline_psnr_frames_1_600", "baseline_mean_ssim",
                   "baseline_ssim_frames_1_600"]]
    table.columns = ["strategy", "samples", "PSNR (dB)", "frames 1-600", "SSIM", "SSIM 1-600", "baseline PSNR",
                     "baseline 1-600", "baseline SSIM", "baseline SSIM 1-600"]
    # PSNR in dB to 2 decimals; SSIM lies in [-1, 1], so it needs 3 to show a difference.
    ssim_format = {name: (lambda v: f"{v:.3f}") for name in ("SSIM", "SSIM 1-600", "baseline SSIM",
                                                              "baseline SSIM 1-600")}
    text = table.to_string(index=False, float_format=lambda v: f"{v:.2f}", formatters=ssim_format)
    if summary["is_oracle"].any():
        text += ("\nORACLE: picks each frame's z with the ground truth; an upper bound on what the samples "
                 "hold, not a prediction score")
    return text


def load_videos(cfg: Config, split: str, device: torch.device, data_root: str | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The val video (T, 3, H, W), capped at val_vi_len as in training, or the test sequences with
    their ground truth (S, T, 3, H, W); frames and labels as floats in [0, 1] on `device`."""
    root = Path(data_root or cfg.data_root)
    if split == "val":
        lab4_data.check_layout(root, ("val",))
        val = lab4_data.load_split(root, "val")
        length = min(cfg.val_vi_len, len(val))
        return to_float_images(val.frames[:length], device), to_float_images(val.labels[:length], device)
    lab4_data.check_layout(root, ("test",))
    test = lab4_data.load_test(root)
    if test.truth is None:
        raise ValueError(f"{root}: no test ground truth (test/test_gt), so the test split cannot be scored "
                         "(the real data has none); use --split val")
    return to_float_images(test.truth, device), to_float_images(test.labels, device)


def write_csv(frame: pd.DataFrame, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def table_paths(run_dir: Path, split: str) -> tuple[Path, Path]:
    """Where the per-frame and summary tables of a split go: the val tables keep the plain names."""
    suffix = "" if split == "val" else f"_{split}"
    out = Path(run_dir) / OUT_DIR
    return (out / PER_FRAME_CSV.replace(".csv", f"{suffix}.csv"), out / SUMMARY_CSV.replace(".csv", f"{suffix}.csv"))


def write_tables(run_dir: Path, split: str, per_frame: pd.DataFrame, summary: pd.DataFrame) -> tuple[Path, Path]:
    paths = table_paths(run_dir, split)
    write_csv(per_frame.assign(split=split), paths[0])
    write_csv(summary.assign(split=split), paths[1])
    return paths


def cmd_strategies(args: argparse.Namespace) -> int:
    run_dir = Path(args.run_dir)
    if args.samples < 1:
        raise ValueError(f"--samples {args.samples}: expected at least 1")
    model, cfg, epoch = load_trained(run_dir, args.checkpoint)
    device = next(model.parameters()).device
    frames, labels = load_videos(cfg, args.split, device, args.data)
    per_frame, summary = compare_z_strategies(model, frames, labels, samples=args.samples,
                                              seed=cfg.seed if args.seed is None else args.seed,
                                              dtype=autocast_dtype(cfg, device),
                                              label_norm=generation_label_norm(model, cfg, data_root=args.data))
    out = write_tables(run_dir, args.split, per_frame, summary)
    videos = 1 if frames.dim() == 4 else frames.shape[0]
    print(f"z strategies of {run_dir} (checkpoint {args.checkpoint}, epoch {epoch}, prior {cfg.prior}) on "
          f"{args.split}: {videos} video(s) of {frames.shape[-4]} frames, mean over the predicted frames; "
          f"baseline: repeat the first frame")
    print(format_summary(summary))
    print(f"wrote {out[0]} and {out[1]}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("strategies", help=LAZY_COMMANDS["strategies"][1])
    p.add_argument("run_dir", help="a run folder made by `lab4 train`")
    p.add_argument("--checkpoint", default="best", help="best (default), last, an epoch number, or a path")
    p.add_argument("--samples", type=int, default=8, help="z decoded per step by mean and best_of (default 8)")
    p.add_argument("--split", default="val", choices=["val", "test"],
                   help="val: the val video (default); test: the test sequences, needs test/test_gt")
    p.add_argument("--seed", type=int, help="noise seed (default: the run's seed)")
    p.add_argument("--data", help="dataset root (default: the run's data_root)")
    p.set_defaults(func=cmd_strategies)


def val_strategies(run_dir: Path, samples: int = 8, checkpoint: str = "best") -> pd.DataFrame:
    """The per-frame z-strategy table of a run on its val video: read from RUN/strategies/ when
    `lab4 strategies RUN` (or an earlier call) wrote it with as many samples, else computed
    and written there (a few rollouts of the val video)."""
    per_frame_path, summary_path = table_paths(Path(run_dir), "val")
    if per_frame_path.is_file() and summary_path.is_file():
        if pd.read_csv(summary_path)["samples"].max() == samples:
            return pd.read_csv(per_frame_path)
    model, cfg, _ = load_trained(Path(run_dir), checkpoint)
    device = next(model.parameters()).device
    frames, labels = load_videos(cfg, "val", device)
    per_frame, summary = compare_z_strategies(model, frames, labels, samples=samples, seed=cfg.seed,
                                              dtype=autocast_dtype(cfg, device),
                                              label_norm=generation_label_norm(model, cfg))
    write_tables(Path(run_dir), "val", per_frame, summary)
    return per_frame.assign(split="val")
