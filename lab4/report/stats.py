"""Mean, standard deviation and a 95 % confidence interval over seeds.

The interval is Student's t: mean +/- t(0.975, n-1) * sd / sqrt(n), the usual interval for
the mean of n independent runs when their spread is estimated from the same n runs. With
3 seeds t is 4.30, so the interval is wide: that is what 3 seeds can tell, not a flaw.
One run has no spread and no interval (NaN), never a zero-width one.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

# Two-sided 95 % quantiles t(0.975, df) for df = 1..30 (standard tables, e.g. NIST/SEMATECH
# e-Handbook 1.3.6.7.2), to 3 decimals.
_T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
          2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
          2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
_Z_975 = 1.959964


def t_quantile_975(df: int) -> float:
    """t(0.975, df): the table up to 30 degrees of freedom, then the Cornish-Fisher expansion
    around the normal quantile (error below 1e-3 there)."""
    if df < 1:
        raise ValueError(f"degrees of freedom {df}: expected at least 1 (two runs)")
    if df <= len(_T_975):
        return _T_975[df - 1]
    z = _Z_975
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def interval_half_width(std: float, n: int) -> float:
    """Half the width of the 95 % t-interval of a mean of n values with sample sd `std`."""
    if n < 2 or not math.isfinite(std):
        return math.nan
    return t_quantile_975(n - 1) * std / math.sqrt(n)


def summarise(values: pd.DataFrame, by: str | list[str], column: str) -> pd.DataFrame:
    """Per group of `by`: mean, std (sample, ddof 1), n, and the 95 % interval low/high of `column`."""
    stats = values.groupby(by, sort=False)[column].agg(["mean", "std", "count"]).rename(columns={"count": "n"})
    half = [interval_half_width(s, int(n)) for s, n in zip(stats["std"], stats["n"])]
    stats["half_width"] = np.asarray(half, dtype=float)
    stats["low"] = stats["mean"] - stats["half_width"]
    stats["high"] = stats["mean"] + stats["half_width"]
    return stats


def format_mean_std(mean: float, std: float, n: int, digits: int = 2) -> str:
    """'22.10 ± 0.31 (n=3)'; a single run reads '22.10 (n=1)'; a missing value 'n/a'."""
    if not math.isfinite(mean):
        return "n/a"
    if n < 2 or not math.isfinite(std):
        return f"{mean:.{digits}f} (n={n})"
    return f"{mean:.{digits}f} ± {std:.{digits}f} (n={n})"


def compare_to_reference(per_seed: pd.DataFrame, reference: str, column: str = "final_val_psnr",
                         by: str = "base") -> pd.DataFrame:
    """One row per setting (`by`): mean, std, n and 95 % interval of `column` over its seeds,
    its margin over the `reference` setting's mean, and whether it beats the reference by
    more than the seed spread (margin > the larger of the two standard deviations; needs 2+
    seeds on both sides, else False). Sorted best first."""
    if reference not in set(per_seed[by]):
        raise ValueError(f"reference setting {reference!r} is not among the runs ({', '.join(map(str, set(per_seed[by])))})")
    stats = summarise(per_seed, by, column)
    ref = stats.loc[reference]
    stats["margin"] = stats["mean"] - ref["mean"]
    spread = np.fmax(stats["std"], ref["std"])  # NaN only when both are single runs
    enough = (stats["n"] > 1) & (ref["n"] > 1)
    stats["beats_reference"] = enough & (stats["margin"] > spread) & (stats.index != reference)
    return stats.sort_values("mean", ascending=False)
