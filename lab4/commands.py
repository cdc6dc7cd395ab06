"""The commands whose modules are heavy (torch, papermill): `python -m lab4 --help` lists them
from here without loading them, and each module's own parser takes its help line from here."""

LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "sweep": ("lab4.sweep", "run an ablation plan: the training notebook once per run (papermill)"),
    "bench": ("lab4.speed.bench", "time the project's training step and rollouts against the naive loop"),
    "gpucheck": ("lab4.speed.gpucheck", "measure the project on a GPU in one command (about 8 minutes), results "
                                        "to --out"),
    "strategies": ("lab4.report.zsampling", "compare the z-sampling strategies (prior, zero, mean, best_of oracle) "
                                            "of a trained run on the val video or the test ground truth"),
    "label-norm": ("lab4.report.labelnorm", "a run's val PSNR at each kept checkpoint under each choice of the "
                                            "label BatchNorm's statistics (label_norm: frame, running, precise)"),
    "regions": ("lab4.report.regions", "where a run's val error lies: PSNR on the performer and on the studio, "
                                       "and with the studio exact, beside repeat-first-frame"),
    "pace": ("lab4.synth.pace", "the learning pace of a dataset: val gain over repeat-first-frame after 200-1,200 "
                                "updates of a fixed reference recipe, over seeds, beside the real footage's"),
    "export": ("lab4.export", "write a run's model as the template's checkpoint {'state_dict': ...} for its "
                              "Tester.py"),
}
