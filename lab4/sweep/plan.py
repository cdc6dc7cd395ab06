"""A sweep's plan: a YAML file naming the runs, read and checked before anything runs
(lab4/plans/ablations.yaml is a commented example)."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab4.config import PROFILES, Config, make_config
from lab4.workspace import resolve

PLANS_DIR = Path(__file__).resolve().parent.parent / "plans"

PLAN_KEYS = {
    "name": "the sweep's name: its folder is runs/<name>/ (default: the file's name)",
    "description": "free text, shown on the report's title page",
    "profile": f"the profile every run starts from: one of {', '.join(PROFILES)}",
    "data_root": "the dataset folder (default: the profile's)",
    "seeds": "a list of seeds every run is trained with (default [0])",
    "settings": "config fields every run shares",
    "gifs": "write GIFs of the test predictions (default true)",
    "runs": "the list of runs",
}
RUN_KEYS = {
    "name": "the run's name (letters, digits, _ . -)",
    "label": "a legend label for the figures",
    "groups": "which comparisons the run belongs to: kl (KL annealing) and/or tf (teacher forcing)",
    "settings": "config fields this run sets",
    "seeds": "this run's seeds (overrides the plan's)",
}
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class PlanError(ValueError):
    """The plan file is not valid; the message names the file and the bad key."""


@dataclass
class RunSpec:
    name: str               # the folder name: <base>-s<seed>
    base: str               # the run's name in the plan
    seed: int
    label: str
    groups: list[str]
    settings: dict[str, Any]   # plan settings + run settings + seed (config overrides)
    config: Config             # the full config the notebook will build


@dataclass
class Plan:
    path: Path
    name: str
    description: str
    profile: str
    data_root: str | None
    gifs: bool
    runs: list[RunSpec] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def varied(self) -> list[str]:
        """Config fields whose value differs between runs (besides the seed)."""
        keys = sorted({k for r in self.runs for k in r.settings} - {"seed", "data_root"})
        return [k for k in keys if len({json.dumps(getattr(r.config, k)) for r in self.runs}) > 1]


def find_plan(plan: str | os.PathLike) -> Path:
    """A plan file by path, or by name from lab4/plans/ (ablations -> lab4/plans/ablations.yaml)."""
    path = Path(plan)
    if path.is_file():
        return path
    for candidate in (PLANS_DIR / path.name, PLANS_DIR / f"{path.name}.yaml", PLANS_DIR / f"{path.name}.yml"):
        if candidate.is_file():
            return candidate
    shipped = ", ".join(sorted(p.stem for p in PLANS_DIR.glob("*.yaml")))
    raise FileNotFoundError(f"plan {plan}: no such file, and no plan of that name in {PLANS_DIR} "
                            f"(shipped plans: {shipped})")


def _check_keys(where: str, got: dict[str, Any], allowed: dict[str, str]) -> None:
    for key in got:
        if key not in allowed:
            known = "; ".join(f"{k}: {v}" for k, v in allowed.items())
            raise PlanError(f"{where}: unknown key {key!r}. Allowed keys: {known}")


def _seeds(where: str, value: Any) -> list[int]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
        raise PlanError(f"{where}: expected a list of non-negative integer seeds, got {value!r}")
    if len(set(values)) != len(values):
        raise PlanError(f"{where}: seeds repeat: {value!r}")
    return values


def _settings(where: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PlanError(f"{where}: expected a mapping of config fields to values, got {type(value).__name__}")
    known = set(Config().to_dict())
    for key in value:
        if key not in known:
            close = [k for k in sorted(known) if k.lower().startswith(str(key).lower()[:3])]
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise PlanError(f"{where}: {key!r} is not a config field{hint}; `python -m lab4 config` lists them")
    return dict(value)


def load_plan(plan: str | os.PathLike, profile: str | None = None, seeds: list[int] | None = None,
              data_root: str | None = None) -> Plan:
    """Read and check a plan; every run's config is built here, so a bad key or value is
    reported (naming the file, the run and the key) before anything runs."""
    import yaml

    path = find_plan(plan)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PlanError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise PlanError(f"{path}: expected a mapping with keys {', '.join(PLAN_KEYS)}")
    _check_keys(str(path), raw, PLAN_KEYS)
    name = str(raw.get("name") or path.stem)
    if not NAME.match(name):
        raise PlanError(f"{path}: name {name!r}: use letters, digits, _ . - (it names the sweep's folder)")
    chosen_profile = profile or raw.get("profile", "quick")
    if chosen_profile not in PROFILES:
        raise PlanError(f"{path}: profile {chosen_profile!r}: expected one of {', '.join(PROFILES)}")
    shared = _settings(f"{path}: settings", raw.get("settings"))
    plan_seeds = seeds or _seeds(f"{path}: seeds", raw.get("seeds", [0]))
    root = raw.get("data_root")
    gifs = raw.get("gifs", True)
    if not isinstance(gifs, bool):
        raise PlanError(f"{path}: gifs: expected true or false, got {gifs!r}")
    runs_raw = raw.get("runs")
    if not isinstance(runs_raw, list) or not runs_raw:
        raise PlanError(f"{path}: runs: expected a non-empty list of runs, each a mapping with a name")
    result = Plan(path=path, name=name, description=str(raw.get("description", "")).strip(),
                  profile=chosen_profile, data_root=data_root or root, gifs=gifs, raw=raw)
    seen: set[str] = set()
    for i, entry in enumerate(runs_raw):
        where = f"{path}: runs[{i}]"
        if not isinstance(entry, dict) or "name" not in entry:
            raise PlanError(f"{where}: expected a mapping with at least a name, got {entry!r}")
        _check_keys(where, entry, RUN_KEYS)
        base = str(entry["name"])
        where = f"{path}: run {base!r}"
        if not NAME.match(base):
            raise PlanError(f"{where}: name: use letters, digits, _ . - (it names the run's folder)")
        if base in seen:
            raise PlanError(f"{where}: the name appears twice")
        seen.add(base)
        groups = entry.get("groups", [])
        groups = [groups] if isinstance(groups, str) else groups
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise PlanError(f"{where}: groups: expected a list of names such as [kl, tf], got {groups!r}")
        own = _settings(f"{where}: settings", entry.get("settings"))
        run_seeds = seeds or (_seeds(f"{where}: seeds", entry["seeds"]) if "seeds" in entry else plan_seeds)
        for seed in run_seeds:
            settings = {**shared, **own, "seed": seed}
            # data_root: --data, else the run's or the plan's settings, else the plan's data_root, else the profile's
            overrides = {**({"data_root": root} if root else {}), **settings}
            if data_root:
                overrides["data_root"] = data_root
            try:
                cfg = make_config(chosen_profile, overrides)
            except (ValueError, TypeError) as exc:
                raise PlanError(f"{where}: {exc}") from None
            cfg.data_root = str(resolve(cfg.data_root))
            result.runs.append(RunSpec(name=f"{base}-s{seed}", base=base, seed=seed,
                                       label=str(entry.get("label", base)), groups=groups,
                                       settings=settings, config=cfg))
    return result
