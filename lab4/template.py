"""Checkpoints in the assignment template's own format, both ways.

The template's Trainer saves {"state_dict": VAE_Model.state_dict(), "optimizer", "lr", "tfr",
"last_epoch"}, and its Tester.py loads `checkpoint["state_dict"]` strictly into the five modules
(frame_transformation, label_transformation, Gaussian_Predictor, Decoder_Fusion, Generator). lab4's
VideoCVAE has those five modules under those names, built of blocks with the template's attribute
names (lab4.layers), so with the template's settings its state_dict IS the template's: `lab4 export`
(lab4.export) writes it as it is, and `lab4 predict --checkpoint FILE` loads a template checkpoint
into a VideoCVAE of the same sizes (lab4.predict).
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from lab4.config import Config
from lab4.model import VideoCVAE

# The template's VAE_Model (Trainer.py) and Test_model (Tester.py) hold exactly these modules.
TEMPLATE_MODULES = ("frame_transformation", "label_transformation", "Gaussian_Predictor", "Decoder_Fusion",
                    "Generator")


def not_template(cfg: Config) -> str | None:
    """Why a run's modules are not the template's (the field and what it adds), or None when they are.

    Only the weights matter here: output and init change how the modules are used or started,
    not which weights they have (see `template_notes`)."""
    if cfg.prior != "fixed":
        return f"prior={cfg.prior!r} adds a sixth module (Prior_Predictor) the template has not; expected prior='fixed'"
    if cfg.background != "none":
        return (f"background={cfg.background!r} adds a bias per pixel on the Generator's output that the template "
                "has not; expected background='none'")
    return None


def template_notes(cfg: Config) -> list[str]:
    """What the template's Tester.py must do as this run did, for its outputs to be this run's."""
    notes = []
    if cfg.label_norm == "frame":
        notes.append("note: label_norm='frame': this run generates with each label normalised by its own statistics, "
                     "as Tester.py does (it never enters eval mode), so Tester.py and `lab4 predict` give the same "
                     "frames from the same z")
    else:
        notes.append(f"note: label_norm={cfg.label_norm!r}: this run generates with the label BatchNorm's running "
                     "buffers (saved in the checkpoint); Tester.py never enters eval mode, so it normalises each "
                     "label by its own statistics instead (`lab4 predict --label-norm frame` shows those frames); "
                     "to generate as this run does, call model.label_transformation[2].eval() in Tester.py")
    if cfg.output == "sigmoid":
        notes.append("note: output='sigmoid': this run maps the Generator's output through torch.sigmoid; the "
                     "template's Tester.py does not, so apply it there (or the frames are not this run's)")
    # Every frame lab4 feeds back, shows or scores lies in [0, 1] (VideoCVAE.to_image).
    notes.append("note: clamp each generated frame to [0, 1] (.clamp(0, 1)) before Tester.py feeds it back as the "
                 "previous frame, as this run does")
    return notes


def template_state(model: VideoCVAE) -> OrderedDict[str, torch.Tensor]:
    """The model's state_dict as plain, contiguous CPU tensors (loads with weights_only=True, into
    an NCHW template model on any device), keeping its version metadata."""
    state = model.state_dict()
    plain: OrderedDict[str, torch.Tensor] = OrderedDict(
        (key, value.detach().to("cpu").contiguous()) for key, value in state.items())
    plain._metadata = getattr(state, "_metadata", OrderedDict())  # type: ignore[attr-defined]
    return plain


def read_template_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], int] | None:
    """(state_dict, last_epoch) of a template checkpoint file; None when the file is not one (a lab4
    checkpoint, whose RNG states the weights-only loader refuses, or no readable checkpoint at all:
    lab4's loader then says what is wrong with it)."""
    try:
        # weights_only: a file from elsewhere runs no code when it loads.
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError):
        return None
    if not isinstance(payload, dict) or "model" in payload:
        return None
    if "state_dict" not in payload or not isinstance(payload["state_dict"], dict):
        raise ValueError(f"checkpoint {path}: expected a lab4 checkpoint or a template checkpoint (a dict with "
                         f"'state_dict'), found the keys {', '.join(map(str, list(payload)[:6])) or 'none'}")
    epoch = payload.get("last_epoch", 0)
    return payload["state_dict"], int(epoch) if isinstance(epoch, (int, float)) else 0


def load_template_state(model: VideoCVAE, state: dict[str, Any], path: Path, cfg: Config, sizes_from: str) -> None:
    """Load a template state_dict strictly into `model` (built from `cfg`, whose sizes came from
    `sizes_from`), or fail on the first key that does not fit, naming it."""
    expected = model.state_dict()
    sizes = f"F_dim={cfg.F_dim}, L_dim={cfg.L_dim}, N_dim={cfg.N_dim}, D_out_dim={cfg.D_out_dim}"
    where = f"does not fit the model of {sizes} ({sizes_from})"
    for key, tensor in expected.items():
        if key not in state:
            raise ValueError(f"checkpoint {path} {where}: its state_dict has no {key!r}")
        theirs = state[key]
        if not isinstance(theirs, torch.Tensor) or theirs.shape != tensor.shape:
            shape = tuple(theirs.shape) if isinstance(theirs, torch.Tensor) else type(theirs).__name__
            raise ValueError(f"checkpoint {path} {where}: {key!r} is {shape} in the file, {tuple(tensor.shape)} in "
                             "the model; give the sizes it was trained with (--set F_dim=... or --profile)")
    for key in state:
        if key not in expected:
            raise ValueError(f"checkpoint {path} {where}: {key!r} of the file is not in the model (expected only "
                             f"the template's modules {', '.join(TEMPLATE_MODULES)})")
    model.load_state_dict(state, strict=True)
