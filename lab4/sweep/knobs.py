"""A run's settings as the training notebook names them, and in words: shared by the notebook
(through lab4.sweep.experiment), the sweep and the report, without loading torch."""

from __future__ import annotations

from typing import Any

from lab4.config import DEFAULT_PROFILE, Config, make_config
from lab4.workspace import display_path, resolve

# The knobs the training notebook's parameters cell names one by one (None there means
# "the profile's value"). Any other config field goes through its `overrides` dict.
NOTEBOOK_KNOBS = (
    "num_epoch", "seed",
    "kl_anneal_type", "kl_anneal_cycle", "kl_anneal_ratio", "kl_anneal_step",
    "tfr", "tfr_sde", "tfr_d_step", "tf_granularity",
)


def build_config(profile: str = DEFAULT_PROFILE, data_root: str | None = None, overrides: dict[str, Any] | None = None,
                 **knobs: Any) -> Config:
    """The run's config: the profile, then `overrides`, then every knob that is not None.

    data_root (when given, or the profile's) is made absolute against the project folder.
    """
    values = dict(overrides or {})
    unknown = sorted(set(knobs) - set(NOTEBOOK_KNOBS))
    if unknown:
        raise ValueError(f"unknown knob(s) {', '.join(unknown)}; put other config fields in `overrides`")
    values.update({k: v for k, v in knobs.items() if v is not None})
    if data_root:
        values["data_root"] = data_root
    cfg = make_config(profile, values)
    cfg.data_root = str(resolve(cfg.data_root))
    return cfg


def describe_ablation(cfg: Config) -> str:
    """The settings the report's ablations vary (KL annealing, teacher forcing), in one line."""
    tf = f"tfr {cfg.tfr:g}"
    if cfg.tfr > 0 and cfg.tfr_d_step > 0:
        tf += f" decaying by {cfg.tfr_d_step:g}/epoch from epoch {cfg.tfr_sde}"
    tf += f" (per {cfg.tf_granularity})"
    kl = f"KL {cfg.kl_anneal_type}"
    if cfg.kl_anneal_type in ("Cyclical", "Sigmoid"):
        cycles = f"{cfg.kl_anneal_cycle} cycle{'s' if cfg.kl_anneal_cycle != 1 else ''}"
        kl += f" ({cycles}, ratio {cfg.kl_anneal_ratio:g}, per {cfg.kl_anneal_step})"
    elif cfg.kl_anneal_type == "Monotonic":
        kl += f" (per {cfg.kl_anneal_step})"
    return f"{kl}; {tf}"


def describe_config(cfg: Config, profile: str | None = None) -> str:
    """What a run is, in one line: profile, data, epochs, seed, the ablation settings, the model."""
    head = f"profile {profile}, " if profile else ""
    budget = f"{cfg.max_iters} updates in {cfg.num_epoch} epochs" if cfg.max_iters else f"{cfg.num_epoch} epochs"
    return (f"{head}data {display_path(cfg.data_root)}, {budget}, seed {cfg.seed}; "
            f"{describe_ablation(cfg)}; model F{cfg.F_dim}/L{cfg.L_dim}/N{cfg.N_dim}/D{cfg.D_out_dim}, "
            f"{'' if cfg.init == 'template' else f'init {cfg.init}, '}batch {cfg.batch_size}, lr {cfg.lr:g}")
