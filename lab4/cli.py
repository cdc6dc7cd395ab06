"""`python -m lab4 COMMAND`: data, train, predict, score, config, sweep, report, bench, strategies."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path

from lab4.commands import LAZY_COMMANDS
from lab4.config import CHOICES, DEFAULT_PROFILE, PROFILES, make_config, parse_overrides
from lab4.io import DISK_ERRNOS, describe_os_error
from lab4.runs import EXISTING_MODES

# `python -m lab4 --help` and the light commands load no torch (a few seconds each time): each
# cmd_* below imports its command's module when it runs, the one place in lab4 where imports sit
# inside functions for that reason, and the commands of heavy modules (LAZY_COMMANDS) are parsed by
# their module's own parser, loaded only when that command runs.
DEFAULT_DATA_ROOTS = {"small": "data/synthetic", "tiny": "data/tiny", "lab": "data/synthetic_lab"}


def shown(path: str) -> str:
    """A path as the user would type it here: relative to the current folder when inside it."""
    relative = os.path.relpath(os.path.abspath(path))
    return path if relative.startswith("..") else relative


def default_data_root(size: str, style: str = "studio") -> str:
    """Where `lab4 data` writes a size and style: the studio style (the default) under the plain
    names the profiles read, the variety style beside it with a `_variety` suffix."""
    root = DEFAULT_DATA_ROOTS.get(size, f"data/synthetic_{size}")
    return root if style == "studio" else f"{root}_{style}"


def cmd_data(args: argparse.Namespace) -> int:
    from lab4.synth import generate_dataset

    root = Path(args.root or default_data_root(args.size, args.style))
    generate_dataset(root, size=args.size, seed=args.seed, force=args.force, style=args.style)
    print(f"synthetic dataset ({args.style}, {args.size}, seed {args.seed}) ready in {root}")
    return 0


def cmd_data_stats(args: argparse.Namespace) -> int:
    from lab4.data import check_layout, load_split
    from lab4.synth.footage import format_stats, measure

    root = Path(args.root)
    check_layout(root, ("train", "val"))
    train, val = load_split(root, "train"), load_split(root, "val")
    print(f"{root}: {len(train)} train frames, {len(val)} val frames")
    print(format_stats(measure(train.frames, val.frames, val.labels, train.labels)))
    return 0


def build_config(args: argparse.Namespace):

    overrides = parse_overrides(args.set or [])
    if args.data:
        overrides["data_root"] = args.data
    return make_config(args.profile or DEFAULT_PROFILE, overrides)


def cmd_config(args: argparse.Namespace) -> int:
    print(json.dumps(build_config(args).to_dict(), indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from lab4.runs.rules import Start, how_to_start, resume_config
    from lab4.train import train

    run_dir = Path(args.run_dir or f"runs/{args.profile or DEFAULT_PROFILE}")
    if args.resume:
        # The run's own config; --set, --data and --profile are checked against it, never dropped.
        cfg = resume_config(run_dir, args.profile, parse_overrides(args.set or []), args.data)
        start = Start(resume=True)
    else:
        cfg = build_config(args)
        start = how_to_start(run_dir, cfg, args.existing)
    if start.keep:
        print(f"{shown(str(run_dir))}: training already finished with these settings; kept as it is "
              f"(--force trains again; `python -m lab4 predict {shown(str(run_dir))}` writes the submission)")
        return 0
    result = train(cfg, run_dir, resume=start.resume, force=start.force, progress=not args.quiet)
    if not result.epochs:  # a rank other than 0 of a distributed run: rank 0 reports
        return 0
    last = result.last
    print(f"\ntrained {run_dir}: {len(result.epochs)} epochs on {shown(cfg.data_root)}")
    if last["val_psnr"] != "":
        print(f"final val PSNR {last['val_psnr']:.2f} dB, mean over the predicted frames of the val rollout "
              f"(z={cfg.val_z}, label_norm={cfg.label_norm}); "
              f"repeat-first-frame baseline {last['baseline_psnr']:.2f} dB; "
              f"best epoch {result.best_psnr:.2f} dB")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from lab4.predict import predict_test
    from lab4.scoring import format_score_table

    # --profile/--set size a template checkpoint's model in a folder without config.json (lab4.predict);
    # the template's own sizes (the lab profile) when only --set is given.
    sizes = make_config(args.profile or "lab", parse_overrides(args.set or [])) if args.profile or args.set else None
    result = predict_test(Path(args.run_dir), which=args.checkpoint, z_mode=args.z, samples=args.samples,
                          data_root=args.data, out_dir=Path(args.out) if args.out else None, gifs=not args.no_gif,
                          sizes=sizes, label_norm=args.label_norm)
    print(f"wrote {result.out_dir / 'submission.csv'} ({result.frames.shape[0]} sequences x "
          f"{result.frames.shape[1]} frames), predictions.npy and GIFs in {result.out_dir}")
    if result.score is not None and result.baseline is not None:
        print(format_score_table(result.score, result.baseline, result.scored_frames))
    else:
        print("no test ground truth in this dataset (the real data has none): upload submission.csv to Kaggle")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from lab4.data import load_frame_folders
    from lab4.scoring import format_score_table, score_submission

    truth_dir = Path(args.truth)
    if (truth_dir / "test" / "test_gt").is_dir():  # a dataset root was given
        truth_dir = truth_dir / "test" / "test_gt"
    model, baseline = score_submission(Path(args.submission), load_frame_folders(truth_dir))
    print(format_score_table(model, baseline))
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from lab4.report import cmd_table as table  # matplotlib loads only for this command

    return table(args)


def cmd_report(args: argparse.Namespace) -> int:
    from lab4.report import cmd_report as report

    return report(args)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m lab4", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="generate the synthetic studio-dancer dataset in the Lab 4 layout")
    p.add_argument("--size", default="small", help="tiny (tests), small (default, CPU), lab (real data's counts)")
    p.add_argument("--style", default="studio", choices=["studio", "variety"],
                   help="studio (default): one performer in one studio, faint labels on white, as the real "
                        "data; variety: a new dancer and studio per video, bold labels on black")
    p.add_argument("--root", help="output folder (default data/synthetic for small, data/tiny, data/synthetic_lab; "
                                  "with a _variety suffix for --style variety)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="overwrite a different dataset in --root")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("data-stats", help="label faintness and ink, performer size, motion and the first-frame "
                                          "baseline of a dataset, beside the real footage's")
    p.add_argument("root", help="a dataset root in the Lab 4 layout (synthetic or real)")
    p.set_defaults(func=cmd_data_stats)

    for name, func, text in (("train", cmd_train, "train the CVAE"),
                             ("config", cmd_config, "print the full config a train command would use")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--profile", choices=list(PROFILES),
                       help="lab: template defaults (GPU); quick: the CPU default; "
                            "quick-chain: the template's chain at the CPU budget (the report's ablations); "
                            "best-lab: quick's choices at the template's sizes (GPU); smoke: tiny, for tests "
                            f"(default {DEFAULT_PROFILE}; with --resume, the run's own)")
        p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                       help="override any config field, e.g. --set kl_anneal_type=Monotonic (repeatable)")
        p.add_argument("--data", help="dataset root (default: the profile's data_root)")
        p.set_defaults(func=func)
        if name == "train":
            p.add_argument("--run-dir", help="run folder (default runs/<profile>)")
            existing = p.add_mutually_exclusive_group()
            existing.add_argument("--resume", action="store_true",
                                  help="continue the run in --run-dir from last.pt, with its own config (--data: its "
                                       "data moved, checked to be the same layout and counts)")
            existing.add_argument("--force", dest="existing", action="store_const", const="restart", default="error",
                                  help="start over in a run folder that holds a run (--existing restart)")
            existing.add_argument("--existing", choices=EXISTING_MODES, default="error",
                                  help="when --run-dir holds a run: error (default) refuse; resume: keep it if it "
                                       "finished with these settings, continue it if interrupted, refuse other "
                                       "settings (as the training notebook and `make train` do); restart: start over")
            p.add_argument("--quiet", action="store_true", help="no progress bar or per-epoch lines")

    p = sub.add_parser("predict", help="roll out the test sequences and write submission.csv")
    p.add_argument("run_dir", help="a run folder made by `lab4 train` (with a template checkpoint, also any folder: "
                                   "the output goes to its test/)")
    p.add_argument("--checkpoint", default="best",
                   help="best (default), last, an epoch number, or a path: a lab4 checkpoint or the template's "
                        "{'state_dict': ...} (its Trainer's .ckpt, or `lab4 export`'s)")
    p.add_argument("--profile", choices=list(PROFILES),
                   help="a template checkpoint in a folder without config.json: the profile that sizes its model "
                        "(default lab, the template's sizes)")
    p.add_argument("--set", action="append", metavar="FIELD=VALUE",
                   help="likewise, any config field, e.g. --set F_dim=32 (repeatable)")
    p.add_argument("--z", choices=CHOICES["test_z"], help="z strategy (default: the run's test_z)")
    p.add_argument("--samples", type=int, help="samples averaged per step with --z mean")
    p.add_argument("--label-norm", choices=CHOICES["label_norm"],
                   help="the label BatchNorm's statistics (default: the run's label_norm; frame is the template's "
                        "Tester.py)")
    p.add_argument("--data", help="dataset root (default: the run's data_root)")
    p.add_argument("--out", help="output folder (default <run_dir>/test)")
    p.add_argument("--no-gif", action="store_true")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("score", help="Kaggle-equivalent score of a submission.csv against ground truth")
    p.add_argument("submission")
    p.add_argument("--truth", required=True, help="folder of sequence folders 0..4 of frames, or a dataset root "
                                                  "with test/test_gt (the synthetic data has one)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("table", help="a sweep's results as a markdown table (mean ± sd over seeds, baseline beside)")
    p.add_argument("sweep", nargs="?", help="a sweep folder (default: the latest under runs/)")
    p.set_defaults(func=cmd_table)

    for name, (_, text) in LAZY_COMMANDS.items():
        sub.add_parser(name, help=text)  # a placeholder: main() hands these to their module's parser
        if name == "sweep":
            p = sub.add_parser("report", help="figures and figures/report.pdf of a sweep (runs the analysis notebook), "
                                              "and the Typst report draft report/report.pdf")
            p.add_argument("sweep", nargs="?", help="the sweep folder (default: the latest under runs/)")
            p.add_argument("--figures", default="figures",
                           help="where the figures and report.pdf go (default figures/)")
            p.add_argument("--report-dir",
                           help="where the draft goes (default: report/ beside the --figures folder): report.typ "
                                "(yours, created once, never overwritten), results.typ (rewritten each time), "
                                "report.pdf")
            p.add_argument("--draft-only", action="store_true",
                           help="skip the analysis notebook: rewrite results.typ from the figures already in "
                                "--figures and compile report.pdf (seconds)")
            p.add_argument("--no-readme", dest="readme", action="store_false",
                           help="do not copy fig3_psnr_per_frame.png to readme_psnr_per_frame.png for the README")
            p.add_argument("--quiet", action="store_true", help="no progress bar over the notebook's cells")
            p.set_defaults(func=cmd_report)
    return top


def lazy_command_parser(name: str) -> argparse.ArgumentParser:
    """The parser of a command of LAZY_COMMANDS, built by its module (loaded here, and only here)."""
    top = argparse.ArgumentParser(prog="python -m lab4", description=__doc__)
    importlib.import_module(LAZY_COMMANDS[name][0]).add_commands(top.add_subparsers(dest="command", required=True))
    return top


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # `python -m lab4 --help` and the light commands never load torch (a few seconds each time).
    top = lazy_command_parser(argv[0]) if argv and argv[0] in LAZY_COMMANDS else parser()
    args = top.parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:
        if not expected_error(exc):
            raise
        # Expected user errors get one line, not a traceback.
        print(f"error: {describe_os_error(exc) if disk_error(exc) else exc}", file=sys.stderr)
        return 2


def disk_error(exc: Exception) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


def expected_error(exc: Exception) -> bool:
    """A bad input, a diverged run, a full disk or a folder it may not write: the user's to fix,
    told in one line."""
    train = sys.modules.get("lab4.train")  # a run that diverged has loaded it
    return isinstance(exc, (ValueError, FileNotFoundError, FileExistsError)) or disk_error(exc) or (
        train is not None and isinstance(exc, train.TrainingDiverged))


if __name__ == "__main__":
    sys.exit(main())
