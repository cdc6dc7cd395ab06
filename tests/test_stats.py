"""Means, spreads and 95 % t-intervals over seeds, against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lab4.report.stats import compare_to_reference, format_mean_std, interval_half_width, summarise, t_quantile_975


@pytest.mark.parametrize("df, expected", [(1, 12.706), (2, 4.303), (4, 2.776), (10, 2.228), (30, 2.042),
                                          (40, 2.021), (60, 2.000), (120, 1.980), (10_000, 1.960)])
def test_t_quantile_matches_the_tables(df, expected):
    assert t_quantile_975(df) == pytest.approx(expected, abs=1.5e-3)


def test_t_quantile_needs_two_runs():
    with pytest.raises(ValueError, match="degrees of freedom"):
        t_quantile_975(0)


def test_interval_of_three_seeds_by_hand():
    values = pd.DataFrame({"setting": ["a"] * 3 + ["b"], "psnr": [20.0, 21.0, 23.0, 25.0]})
    stats = summarise(values, "setting", "psnr")
    sd = math.sqrt(((20 - 64 / 3) ** 2 + (21 - 64 / 3) ** 2 + (23 - 64 / 3) ** 2) / 2)
    assert stats.loc["a", "mean"] == pytest.approx(64 / 3) and stats.loc["a", "std"] == pytest.approx(sd)
    assert stats.loc["a", "n"] == 3
    assert stats.loc["a", "half_width"] == pytest.approx(4.303 * sd / math.sqrt(3))
    assert stats.loc["a", "low"] == pytest.approx(64 / 3 - 4.303 * sd / math.sqrt(3))
    # One run: no spread, no interval, rather than a misleading zero-width one.
    assert math.isnan(stats.loc["b", "half_width"]) and math.isnan(interval_half_width(0.0, 1))


def test_format_mean_std_states_n():
    assert format_mean_std(22.104, 0.312, 3) == "22.10 ± 0.31 (n=3)"
    assert format_mean_std(22.1, np.nan, 1) == "22.10 (n=1)"
    assert format_mean_std(np.nan, np.nan, 0) == "n/a"


def test_compare_to_reference_needs_a_margin_above_the_spread():
    rows = {"ref": [20.0, 20.5, 21.0], "clear": [23.0, 23.4, 23.2], "within": [20.8, 21.4, 20.5], "single": [30.0]}
    per_seed = pd.DataFrame([{"base": b, "final_val_psnr": v} for b, vs in rows.items() for v in vs])
    table = compare_to_reference(per_seed, "ref")
    assert list(table.index[:2]) == ["single", "clear"]  # best mean first
    assert table.loc["clear", "beats_reference"] and table.loc["clear", "margin"] == pytest.approx(23.2 - 20.5)
    assert not table.loc["within", "beats_reference"]  # 0.4 dB above, spread 0.46: not clearly better
    assert not table.loc["single", "beats_reference"]  # one seed has no spread to beat
    assert not table.loc["ref", "beats_reference"]
    with pytest.raises(ValueError, match="reference setting 'nope'"):
        compare_to_reference(per_seed, "nope")
