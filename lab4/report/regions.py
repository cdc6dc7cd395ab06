"""`python -m lab4 regions RUN_DIR`: where a run's val error lies, on the performer or on the studio.

The camera is fixed, so a pixel of a frame belongs to the performer when it differs from the
video's median frame by more than `threshold` in some channel, and to the studio otherwise. Over
the predicted frames of the val rollout (z and label statistics as `train` validated at that
epoch), the squared error is pooled per region: its PSNR on each, the performer's share of the
pixels and of the error, and the PSNR the model would score with the studio exactly right. The
repeat-first-frame baseline is measured the same way. PSNRs here are of the pooled error
(10 log10(1 / mean squared error)), not the mean of per-frame PSNRs that validation reports.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd
import torch

from lab4.commands import LAZY_COMMANDS
from lab4.device import autocast_dtype
from lab4.evaluate import validate_as_logged
from lab4.io import atomic_path
from lab4.metrics import PSNR_CAP_DB
from lab4.predict import generation_label_norm, load_trained
from lab4.report.zsampling import load_videos

THRESHOLD = 0.1
OUT_CSV = "regions.csv"  # inside the run folder


def performer_mask(frames: torch.Tensor, threshold: float = THRESHOLD) -> torch.Tensor:
    """frames (T, 3, H, W) in [0, 1] from one fixed camera -> (T, 1, H, W) bool: the performer's pixels."""
    background = frames.median(dim=0).values
    return (frames - background).abs().amax(dim=1, keepdim=True) > threshold


def pooled_psnr(squared_error: torch.Tensor) -> float:
    """10 log10(1 / mean squared error), capped as every PSNR of the project is; NaN for no pixels."""
    if not squared_error.numel():
        return math.nan
    mse = float(squared_error.mean())
    return min(10 * math.log10(1 / mse), PSNR_CAP_DB) if mse > 0 else PSNR_CAP_DB


def region_errors(pred: torch.Tensor, truth: torch.Tensor, performer: torch.Tensor) -> dict[str, float]:
    """pred, truth (T, 3, H, W); performer (T, 1, H, W) bool. Frame 0 (given) is left out."""
    error = (pred[1:] - truth[1:]).float().pow(2)
    on_performer = performer[1:].expand_as(error)
    total = float(error.sum())
    return {
        "psnr": pooled_psnr(error),
        "studio_psnr": pooled_psnr(error[~on_performer]),
        "performer_psnr": pooled_psnr(error[on_performer]),
        "performer_pixels": float(on_performer.float().mean()),
        "performer_error": float(error[on_performer].sum()) / total if total > 0 else math.nan,
        "psnr_studio_exact": pooled_psnr(error * on_performer),
    }


def measure(run_dir: Path, which: str = "best", data_root: str | None = None,
            threshold: float = THRESHOLD) -> pd.DataFrame:
    """Two rows, the model's and repeat-first-frame's, of `region_errors` on the run's val video."""
    model, cfg, epoch = load_trained(Path(run_dir), which)
    device = next(model.parameters()).device
    frames, labels = load_videos(cfg, "val", device, data_root)
    label_norm = generation_label_norm(model, cfg, None, data_root)
    result = validate_as_logged(model, cfg, epoch, frames, labels, dtype=autocast_dtype(cfg, device),
                                label_norm=label_norm)
    performer = performer_mask(frames, threshold)
    rows = [{"what": "model", "epoch": epoch, **region_errors(result.predictions, frames, performer)},
            {"what": "repeat-first-frame", "epoch": epoch,
             **region_errors(frames[:1].expand_as(frames), frames, performer)}]
    return pd.DataFrame(rows)


def format_regions(table: pd.DataFrame) -> str:
    lines = ["                      PSNR   on the studio  on the performer  performer's share of  "
             "with the studio exact",
             "                                                               pixels     error"]
    for row in table.itertuples():
        lines.append(f"{row.what:<18} {row.psnr:6.2f} dB  {row.studio_psnr:10.2f} dB  {row.performer_psnr:13.2f} dB"
                     f"  {row.performer_pixels:8.1%}  {row.performer_error:8.1%}  {row.psnr_studio_exact:14.2f} dB")
    return "\n".join(lines)


def cmd_regions(args: argparse.Namespace) -> int:
    if not 0 < args.threshold < 1:
        raise ValueError(f"--threshold {args.threshold}: expected a difference from the median frame in (0, 1)")
    run_dir = Path(args.run_dir)
    table = measure(run_dir, args.checkpoint, args.data, args.threshold)
    out = run_dir / OUT_CSV
    with atomic_path(out) as tmp:
        table.to_csv(tmp, index=False)
    print(f"{run_dir}, checkpoint of epoch {int(table['epoch'].iloc[0])}: the val rollout's squared error, pooled "
          f"over its predicted frames, by region (performer: more than {args.threshold:g} from the video's "
          "median frame)")
    print(format_regions(table))
    print(f"wrote {out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("regions", help=LAZY_COMMANDS["regions"][1])
    p.add_argument("run_dir", help="a run folder made by `lab4 train` or a sweep")
    p.add_argument("--checkpoint", default="best", help="best (default), last, or an epoch number")
    p.add_argument("--data", help="the dataset root (default: the run's)")
    p.add_argument("--threshold", type=float, default=THRESHOLD,
                   help=f"a pixel is the performer's when it differs from the median frame by more than this "
                        f"(default {THRESHOLD})")
    p.set_defaults(func=cmd_regions)
