"""`python -m lab4 pace`: the reference recipe stays pinned, the command trains it per seed (the full
run validated every epoch, the short run at its end), skips finished runs, and prints the gains
beside the real footage's where they were measured the same way."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lab4 import config
from lab4.cli import main as cli_main
from lab4.config import Config
from lab4.synth import pace
from tests.conftest import stopped_at_epoch_2

# The recipe at test sizes: smoke's widths, clips and val rollout, 24 updates (4 per epoch; the
# short run 6, one per epoch), one thread.
TINY = ["--set", "F_dim=16", "--set", "L_dim=8", "--set", "N_dim=4", "--set", "D_out_dim=16",
        "--set", "train_vi_len=4", "--set", "val_vi_len=24", "--set", "max_iters=24", "--set", "threads=1"]


def test_the_recipe_is_pinned_and_builds_a_valid_config(monkeypatch) -> None:
    """RECIPE is the yardstick that learning paces are compared by (issue 34): `quick` may be
    re-chosen, the recipe must not move with it. If this fails, a change reached the recipe: give
    the changed recipe a name of its own, and keep this one, or no pace measured before it compares
    with one measured after."""
    assert pace.RECIPE == {
        "train_vi_len": 8, "clip_mode": "random", "F_dim": 32, "L_dim": 16, "D_out_dim": 48, "output": "sigmoid",
        "batch_size": 1, "num_epoch": 6, "max_iters": 1200, "lr": 2e-3, "lr_schedule": "cosine", "tfr": 0.0,
        "tfr_sde": 3, "tfr_d_step": 0.15, "tf_granularity": "batch", "kl_anneal_type": "None",
        "kl_anneal_cycle": 4, "kl_anneal_step": "iteration", "val_every": 1,
    }
    cfg = pace.recipe_config("data/somewhere", seed=2)
    assert (cfg.data_root, cfg.seed) == ("data/somewhere", 2)
    # Every pinned field is one `quick` changed from the template's defaults (val_every: the pace's
    # own, a validation per epoch) ...
    assert all(getattr(cfg, name) != getattr(Config(), name) for name in pace.RECIPE if name != "val_every")
    # ... and the rest, the label normalisation among them, are the project's defaults.
    defaults = Config().to_dict()
    assert {k: v for k, v in cfg.to_dict().items() if k not in (*pace.RECIPE, "data_root", "seed")} == \
        {k: v for k, v in defaults.items() if k not in (*pace.RECIPE, "data_root", "seed")}

    before = cfg.to_dict()
    monkeypatch.setitem(config.PROFILES, "quick", {**config.PROFILES["quick"], "lr": 5e-3, "max_iters": 2400,
                                                   "F_dim": 64, "init": "identity"})
    monkeypatch.setitem(config.QUICK_CHAIN, "train_vi_len", 16)
    assert pace.recipe_config("data/somewhere", seed=2).to_dict() == before


def test_quick_is_the_recipe_with_a_learned_background() -> None:
    """`quick` is the reference recipe plus the learned background (docs/results.md compares the
    two): the configs may differ only in that, in validation and in a teacher-forcing schedule that
    does nothing at a ratio of 0."""
    from lab4.config import make_config
    from lab4.schedules import teacher_forcing_ratio

    quick, recipe = make_config("quick", {"data_root": "data/x"}), pace.recipe_config("data/x")
    differ = {k for k, v in quick.to_dict().items() if v != getattr(recipe, k)}
    assert differ <= {"background", "val_every", "tfr_sde", "tfr_d_step"}
    assert (quick.background, recipe.background) == ("learned", "none")
    assert all(teacher_forcing_ratio(e, c.tfr, c.tfr_sde, c.tfr_d_step) == 0.0
               for c in (quick, recipe) for e in range(c.num_epoch))


def test_the_short_run_is_a_quarter_of_the_budget_validated_at_its_end() -> None:
    cfg = pace.short_config(pace.recipe_config("data/x"))
    assert (cfg.max_iters, cfg.num_epoch, cfg.val_every) == (300, 6, 6)
    assert {k: v for k, v in cfg.to_dict().items() if k not in ("max_iters", "val_every")} == \
        {k: v for k, v in pace.recipe_config("data/x").to_dict().items() if k not in ("max_iters", "val_every")}


def gain(updates: int, value: float, seed: int = 0, short: bool = False) -> pace.Gain:
    return pace.Gain(seed=seed, updates=updates, short=short, gain_db=value, baseline_db=21.77)


def table_rows(text: str) -> dict[str, str]:
    """{updates label: the rest of its row} of format_pace's table."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("updates"))
    rows = {}
    for line in lines[start + 1:]:
        if line.startswith("repeat-first-frame"):
            break
        label, _, rest = line.strip().partition("  ")
        rows[label] = rest.strip()
    return rows


def test_the_table_puts_each_footage_figure_beside_the_point_measured_as_it_was() -> None:
    found = [gain(u, g, seed) for seed, shift in ((0, 0.0), (1, 2.0)) for u, g in
             ((200, 1.0 + shift), (300, 9.0 + shift), (600, 5.0 + shift), (800, 6.0 + shift), (1200, 7.0 + shift))]
    found += [gain(300, 2.0, 0, short=True), gain(300, 4.0, 1, short=True)]
    text = pace.format_pace(found, Path("data/synthetic"), [0, 1], pace.recipe_config("data/synthetic"))
    rows = table_rows(text)
    # Mean ± sample sd over the seeds, then each seed's: 1 and 3 -> 2 ± 1.41.
    assert rows["200"] == "+2.00 ± 1.41 dB (+1.00 / +3.00)"
    assert rows["600"].split("  ")[0] == "+6.00 ± 1.41 dB (+5.00 / +7.00)"
    assert rows["600"].endswith("+2.8 dB (one run)")
    assert rows["800"].endswith("+4.9 dB (one run)") and rows["1,200"].endswith("+6.5 dB (one run)")
    # The footage's 300 is the end of 300-update runs: beside the short run, not the full run's point.
    assert rows["300 (short run)"].endswith("-1.4 to -1.0 dB (3 seeds)")
    assert rows["300 (short run)"].startswith("+3.00 ± 1.41 dB")
    assert rows["300"] == "+10.00 ± 1.41 dB (+9.00 / +11.00)"
    assert "label_norm=" in text and "21.77 dB on this data's val video; 24.27 dB on the footage's" in text
    one_seed = pace.format_pace([gain(200, -1.5)], Path("d"), [0], pace.recipe_config("d"))
    assert table_rows(one_seed)["200"] == "-1.50 dB (one seed)"


def test_pace_trains_each_seed_reads_its_logs_and_skips_finished_runs(
        tiny_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    out = tmp_path / "pace"
    command = ["pace", str(tiny_data), "--seeds", "3", "--out", str(out), "--quiet", *TINY]
    seed_dir = out / tiny_data.name / "seed3"
    full, short = seed_dir / "updates24", seed_dir / "updates6"
    # Stopped in the full run's second epoch, then again: it goes on from its first, then the short run.
    stopped_at_epoch_2(monkeypatch, lambda: cli_main(command))
    capsys.readouterr()
    assert cli_main(command) == 0
    text = capsys.readouterr().out
    assert f"seed 3, 24 updates ({full}): resuming" in text and f"seed 3, 6 updates ({short}): training" in text
    for run_dir in (full, short):
        assert (run_dir / "done.json").is_file(), run_dir
    assert "note: --set D_out_dim, F_dim, L_dim, N_dim, max_iters, train_vi_len, val_vi_len: not the reference" in text
    # The full run validated after every epoch, the short run at its end; the gains are the logs'.
    log, short_log = pd.read_csv(full / "train_log.csv"), pd.read_csv(short / "train_log.csv")
    assert log["val_psnr"].notna().all() and short_log["val_psnr"].notna().tolist() == [False] * 5 + [True]
    rows = table_rows(text)
    assert list(rows) == ["4", "6 (short run)", "8", "12", "16", "20", "24"]
    for updates, (_, row) in zip((4, 8, 12, 16, 20, 24), log.iterrows()):
        assert rows[str(updates)] == f"{row['val_psnr'] - row['baseline_psnr']:+.2f} dB (one seed)"
    last = short_log.iloc[-1]
    assert rows["6 (short run)"] == f"{last['val_psnr'] - last['baseline_psnr']:+.2f} dB (one seed)"
    assert f"{log['baseline_psnr'].iloc[0]:.2f} dB on this data's val video" in text

    # Again: both runs finished with these settings, so nothing trains and the table is the same.
    def no_training(*args, **kwargs):
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(pace, "train", no_training)
    assert cli_main(command) == 0
    again = capsys.readouterr().out
    assert again.count("finished earlier, kept") == 2
    assert again.split("\n\n", 1)[1] == text.split("\n\n", 1)[1]  # the table
    # --force trains them again.
    calls = []
    monkeypatch.setattr(pace, "train", lambda cfg, run_dir, **kwargs: calls.append((run_dir, kwargs["force"])))
    assert cli_main([*command, "--force"]) == 0
    assert calls == [(full, True), (short, True)]


@pytest.mark.parametrize("arguments, message", [
    (["--seeds", "0,x"], "--seeds '0,x': expected comma-separated integers"),
    (["--seeds", "1,1"], "--seeds '1,1': expected distinct seeds"),
    (["--set", "seed=4"], "--set seed=...: the pace sets it from --seeds"),
    (["--set", "data_root=data/other"], "--set data_root=...: the pace sets it from DIR"),
    (["--set", "max_iters=12"], "--set max_iters=12: the short run takes 25% of it, 3 updates"),
    (["--set", "max_iters=0"], "--set max_iters=0: the pace counts updates"),
    (["--set", "no_such_field=1"], "--set no_such_field=...: no such config field"),
])
def test_bad_input_stops_in_one_line_before_any_run(
        arguments: list[str], message: str, tiny_data: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    # At test sizes, so that a check that lets bad input through trains for seconds, not minutes.
    assert cli_main(["pace", str(tiny_data), "--out", str(tmp_path / "pace"), *TINY, *arguments]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "pace").exists()


def test_a_missing_dataset_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["pace", str(tmp_path / "nothing"), "--out", str(tmp_path / "pace")]) == 2
    assert str(tmp_path / "nothing") in capsys.readouterr().err
