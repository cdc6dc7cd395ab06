"""`python -m lab4 export RUN_DIR --template OUT.ckpt`: a run's model as the template's checkpoint.

The file is {"state_dict": ...} with the five modules' weights as plain tensors: the template's
Tester.py loads it (`load_state_dict(checkpoint["state_dict"], strict=True)`), and so does
`torch.load(..., weights_only=True)`. The format is lab4.template's.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import torch

from lab4.commands import LAZY_COMMANDS
from lab4.predict import load_trained, run_config
from lab4.runs.checkpoint import save_checkpoint
from lab4.template import not_template, template_notes, template_state


@dataclass
class Exported:
    path: Path
    epoch: int
    notes: list[str]          # what Tester.py must do as the run did (lab4.template.template_notes)


def export_template(run_dir: Path, out: Path, which: str = "best") -> Exported:
    """Write the model of a run folder at a checkpoint ('best', 'last', an epoch) as {"state_dict": ...},
    atomically; refuse a run whose modules are not the template's, before reading any checkpoint."""
    run_dir, out = Path(run_dir), Path(out)
    reason = not_template(run_config(run_dir))
    if reason:
        raise ValueError(f"{run_dir / 'config.json'}: not the template's modules, so no template checkpoint: {reason}")
    model, cfg, epoch = load_trained(run_dir, which, device=torch.device("cpu"))
    save_checkpoint(out, {"state_dict": template_state(model)})
    return Exported(path=out, epoch=epoch, notes=template_notes(cfg))


def cmd_export(args: argparse.Namespace) -> int:
    result = export_template(Path(args.run_dir), Path(args.template), args.checkpoint)
    cfg = run_config(Path(args.run_dir))
    print(f"wrote {result.path}: the model of {args.run_dir} at epoch {result.epoch} (checkpoint {args.checkpoint}) "
          f"as {{'state_dict': ...}}; the template's Tester.py loads it with --ckpt_path {result.path} "
          f"--F_dim {cfg.F_dim} --L_dim {cfg.L_dim} --N_dim {cfg.N_dim} --D_out_dim {cfg.D_out_dim}")
    for note in result.notes:
        print(note)
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help=LAZY_COMMANDS["export"][1])
    p.add_argument("run_dir", help="a run folder made by `lab4 train` with the template's modules (prior fixed)")
    p.add_argument("--template", required=True, metavar="OUT.ckpt",
                   help="the file to write: {'state_dict': ...}, as the template's Trainer saves and Tester.py loads")
    p.add_argument("--checkpoint", default="best", help="best (default), last, or an epoch number")
    p.set_defaults(func=cmd_export)
