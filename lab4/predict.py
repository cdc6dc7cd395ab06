"""Test-set prediction: roll out every test sequence at once and write the Kaggle submission, with an
animated GIF per sequence (enlarged with nearest-neighbour scaling so pixels stay crisp)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from lab4 import data as lab4_data
from lab4 import scoring, submission
from lab4.config import Config
from lab4.device import autocast_dtype, resolve_device, to_float_images
from lab4.evaluate import precise_label_stats
from lab4.io import atomic_path, atomic_write_text, strict_json
from lab4.model import VideoCVAE
from lab4.rollout import rollout
from lab4.runs import RunPaths
from lab4.runs.checkpoint import RunStateError, checkpoint_for, load_checkpoint
from lab4.runs.rules import config_differences, load_run_config
from lab4.template import load_template_state, read_template_checkpoint
from lab4.train import build_model


@dataclass
class Prediction:
    out_dir: Path
    frames: np.ndarray                    # uint8 (S, T, 3, H, W)
    score: scoring.Score | None           # when the data has test ground truth
    baseline: scoring.Score | None        # repeat-first-frame, on the same truth
    scored_frames: range                  # Kaggle's 1..600, fewer for short synthetic sequences


def run_config(run_dir: Path) -> Config:
    paths = RunPaths(Path(run_dir))
    if not paths.config.is_file():
        raise FileNotFoundError(f"{paths.root}: no config.json; expected a run folder made by `lab4 train` (or, "
                                "with --checkpoint FILE of the template, any folder for the output)")
    return load_run_config(paths.config)


def load_trained(run_dir: Path, which: str = "best", device: torch.device | None = None,
                 sizes: Config | None = None) -> tuple[VideoCVAE, Config, int]:
    """The model of a run folder at a checkpoint ('best', 'last', an epoch or a path).

    A path may also be a checkpoint of the assignment's template (lab4.template): its model is
    built from the run's config.json, or, in a folder without one, from `sizes` (the command
    line's --profile/--set), else from the template's defaults (Config())."""
    paths = RunPaths(Path(run_dir))
    explicit = not (which in ("best", "last") or which.isdigit())
    if explicit and not Path(which).is_file():
        raise FileNotFoundError(f"checkpoint {which}: file not found")
    template = read_template_checkpoint(Path(which)) if explicit else None
    if template is not None:
        return load_template(paths, Path(which), *template, device=device, sizes=sizes)
    if sizes is not None:
        raise ValueError(f"--profile/--set: the model of a lab4 checkpoint is built from its run's config.json "
                         f"({paths.config}); they only size a template checkpoint (--checkpoint FILE)")
    cfg = run_config(paths.root)
    path = checkpoint_for(paths, which)
    state = load_checkpoint(path)
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"checkpoint {path}: no 'model' in it; expected a lab4 checkpoint or a template checkpoint "
                         "(a dict with 'state_dict')")
    if isinstance(state.get("config"), dict):
        # The model is built as the checkpoint was trained; config.json keeps the data's location.
        detail = config_differences(state["config"], cfg)
        if detail:
            raise RunStateError(f"{paths.root}: config.json and the checkpoint belong to different runs ({detail})")
    model = build_model(cfg)
    model.load_state_dict(state["model"])
    model.to(device or resolve_device(cfg)).eval()
    return model, cfg, int(state["epoch"])


def load_template(paths: RunPaths, path: Path, state: dict[str, torch.Tensor], epoch: int,
                  device: torch.device | None = None, sizes: Config | None = None) -> tuple[VideoCVAE, Config, int]:
    """A template checkpoint's model, sized by the run's config.json, else by `sizes`, else the template's."""
    if paths.config.is_file():
        if sizes is not None:
            raise ValueError(f"--profile/--set: {paths.config} already sizes the model; they are for a template "
                             "checkpoint predicted into a folder without config.json")
        cfg, sizes_from = load_run_config(paths.config), str(paths.config)
    else:
        cfg, sizes_from = (sizes, "--profile/--set") if sizes is not None else (Config(), "the template's defaults")
    if cfg.background != "none" and "background" not in state:
        # The template's modules only: the profile (quick's learned background) still gives the sizes.
        cfg = replace(cfg, background="none")
    model = build_model(cfg)
    load_template_state(model, state, path, cfg, sizes_from)
    model.to(device or resolve_device(cfg)).eval()
    return model, cfg, epoch


def generation_label_norm(model: VideoCVAE, cfg: Config, label_norm: str | None = None,
                          data_root: str | None = None) -> str:
    """The label statistics a loaded model generates with: `label_norm`, else the run's own. For
    "precise" in a run that did not keep them (it validated with another choice, or a template
    checkpoint), they are computed here from the training labels of `data_root` (else the run's)."""
    label_norm = label_norm or cfg.label_norm
    if label_norm == "precise" and cfg.label_norm != "precise":
        root = Path(data_root or cfg.data_root)
        lab4_data.check_layout(root, ("train",))
        precise_label_stats(model, lab4_data.load_split(root, "train").labels, next(model.parameters()).device)
    return label_norm


def predict_test(run_dir: Path, which: str = "best", z_mode: str | None = None, samples: int | None = None,
                 data_root: str | None = None, out_dir: Path | None = None, gifs: bool = True,
                 sizes: Config | None = None, label_norm: str | None = None) -> Prediction:
    """`sizes`: the settings of a template checkpoint's model (`which` a file) where run_dir has no config.json.
    `label_norm`: the label statistics to generate with (default: the run's; see generation_label_norm)."""
    paths = RunPaths(Path(run_dir))
    model, cfg, _ = load_trained(paths.root, which, sizes=sizes)  # seconds at most; fails clearly on a bad run folder
    root = Path(data_root or cfg.data_root)
    lab4_data.check_layout(root, ("test",))
    device = next(model.parameters()).device
    label_norm = generation_label_norm(model, cfg, label_norm, data_root)
    test = lab4_data.load_test(root)

    z_mode = z_mode or cfg.test_z
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    pred = rollout(model, to_float_images(test.first_frames, device), to_float_images(test.labels, device),
                   z_mode=z_mode, samples=samples or cfg.test_samples, generator=generator,
                   dtype=autocast_dtype(cfg, device), label_norm=label_norm)
    frames = submission.to_uint8(pred.cpu().numpy())

    out = Path(out_dir) if out_dir else paths.test
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "predictions.npy") as tmp, open(tmp, "wb") as fh:
        np.save(fh, frames)
    submission.write_submission(frames, out / "submission.csv")
    if gifs:
        for seq in range(frames.shape[0]):
            panels = [test.labels[seq], frames[seq]] + ([test.truth[seq]] if test.truth is not None else [])
            write_gif(out / f"seq_{seq}.gif", side_by_side(panels))

    score = baseline = None
    scored = scoring.scored_frames_for(frames.shape[1])
    if test.truth is not None:
        score = scoring.score(frames, test.truth, scored)
        baseline = scoring.score(scoring.baseline_predictions(test.truth[:, 0], test.truth.shape[1]),
                                 test.truth, scored)
        atomic_write_text(out / "score.json", strict_json(
            {"z_mode": z_mode, "label_norm": label_norm, "checkpoint": which, "data": str(root),
             "scored_frames": [scored.start, scored.stop - 1],
             "model": score.__dict__, "repeat_first_frame_baseline": baseline.__dict__}))
    return Prediction(out_dir=out, frames=frames, score=score, baseline=baseline, scored_frames=scored)


def side_by_side(panels: Sequence[np.ndarray], gap: int = 1) -> np.ndarray:
    """Panels of uint8 (T, 3, H, W) -> one uint8 (T, H, W', 3) strip per frame, with white gaps."""
    length, _, height, _ = panels[0].shape
    spacer = np.full((length, height, gap, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for i, panel in enumerate(panels):
        if i:
            parts.append(spacer)
        parts.append(panel.transpose(0, 2, 3, 1))
    return np.concatenate(parts, axis=2)


# Frames sampled across the video to choose the GIF's one palette from.
PALETTE_SAMPLES = 32


def write_gif(path: Path, frames_hwc: np.ndarray, scale: int = 4, fps: int = 20) -> None:
    """frames_hwc: uint8 (T, H, W, 3).

    One 256-colour palette for the whole GIF, chosen from frames sampled across it, and each frame
    mapped to it at its own size before the nearest-neighbour enlargement: choosing a palette per
    enlarged frame (what PIL does for RGB frames) took most of a test rollout's time.
    """
    sampled = frames_hwc[np.linspace(0, len(frames_hwc) - 1, min(PALETTE_SAMPLES, len(frames_hwc))).astype(int)]
    palette = Image.fromarray(np.concatenate(list(sampled), axis=0)).quantize(colors=256)
    size = (frames_hwc.shape[2] * scale, frames_hwc.shape[1] * scale)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE).resize(size, Image.NEAREST)
              for f in frames_hwc]
    with atomic_path(Path(path)) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=int(1000 / fps), loop=0)
