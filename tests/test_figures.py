"""The figure functions on small made-up tables and frames, and the scrubber's panel."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from lab4.report import figures
from lab4.report.scrubber import (GAP, Scrubber, difference_image, enlarge, font_size, render_panel, rollout_panel,
                                  text_row, to_png)
from lab4.runs.results import Rollout, RunData, psnr_measures

RUNS = ["cyc", "mono", "none"]
T, H, W = 9, 32, 64


def epochs_table(runs=RUNS, epochs=4) -> pd.DataFrame:
    rows = []
    for i, run in enumerate(runs):
        for e in range(1, epochs + 1):
            validated = e % 2 == 0
            rows.append({"run": run, "epoch": e, "lr": 1e-3, "tfr": max(0.0, 1 - 0.25 * (e - 1)),
                         "teacher_forced": float(e < 3), "beta": min(1.0, e / 2), "train_loss": 10.0 / e + i,
                         "train_mse": 0.1 / e, "train_kl": 100.0 / e, "val_mse": 0.05 / e if validated else np.nan,
                         "val_psnr": 20 + e + i if validated else np.nan, "baseline_psnr": 24.0 if validated else np.nan,
                         "seconds": 1.0, "train_frames_per_s": 100.0})
    return pd.DataFrame(rows)


def iters_table(runs=RUNS, epochs=4, per_epoch=5) -> pd.DataFrame:
    rows = []
    for run in runs:
        for e in range(1, epochs + 1):
            for k in range(1, per_epoch + 1):
                step = (e - 1) * per_epoch + k
                rows.append({"run": run, "epoch": e, "iteration": step, "loss": 5.0 / step, "mse": 0.1 / step,
                             "kl": 50.0 / step, "beta": (step % 10) / 10, "teacher_forced": 1})
    return pd.DataFrame(rows)


def frames_table(runs=RUNS, seeds=(0, 1), frames=T - 1, epochs=(2, 4)) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for run in runs:
        for seed in seeds:
            for epoch in epochs:
                for f in range(1, frames + 1):
                    rows.append({"run": f"{run}-s{seed}", "base": run, "seed": seed, "epoch": epoch, "frame": f,
                                 "psnr": 30 - f + rng.normal(), "baseline_psnr": 35 - 2 * f,
                                 "ssim": 0.9 - 0.01 * f + 0.01 * rng.normal(), "baseline_ssim": 0.95 - 0.03 * f})
    return pd.DataFrame(rows)


def frames_u8(seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (T, 3, H, W), dtype=np.uint8)


def rendered(fig: Figure) -> np.ndarray:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=40)
    return np.asarray(Image.open(buffer))


def test_every_figure_function_draws():
    epochs, iters, frames = epochs_table(), iters_table(), frames_table()
    truth, pred, labels = frames_u8(0), frames_u8(1), frames_u8(2)
    made = {
        "tf": figures.fig_teacher_forcing(epochs, ["cyc", "none"], {"cyc": "Cyclical"}),
        "kl": figures.fig_kl_annealing(epochs, iters, RUNS),
        "kl_no_iters": figures.fig_kl_annealing(epochs, pd.DataFrame(), RUNS),
        "psnr": figures.fig_psnr_per_frame(frames),
        "epochs": figures.fig_val_psnr_epochs(epochs),
        "heat": figures.fig_psnr_heatmap(frames, "cyc-s0"),
        "strip": figures.fig_frame_strip(labels, truth, pred, np.linspace(30, 20, T - 1), steps=[1, 4, 8]),
        "table": figures.fig_table(figures.results_table(summary_table(), frames)),
        "run": figures.fig_run_curves(epochs[epochs["run"] == "cyc"], iters[iters["run"] == "cyc"]),
        "training_strategies": figures.fig_training_strategies(strategy_runs(), "cyc"),
        "z_strategies": figures.fig_z_strategies(z_strategy_frames()),
    }
    for name, fig in made.items():
        assert isinstance(fig, Figure), name
        image = rendered(fig)
        assert image.shape[0] > 50 and image.shape[1] > 100, name
        assert image[..., :3].std() > 5, name  # something was drawn
    assert len(made["tf"].axes) >= 2  # a panel per run (+ twin axes)
    assert len(made["kl"].axes) == 4 + len(RUNS)  # four curves + a beta row per run
    assert len(made["strip"].axes) == 4 * 3  # pose/truth/prediction/error x 3 steps


def test_figures_of_empty_tables_say_so():
    empty = pd.DataFrame()
    for fig in (figures.fig_teacher_forcing(epochs_table(), []), figures.fig_psnr_per_frame(empty),
                figures.fig_val_psnr_epochs(epochs_table().assign(val_psnr=np.nan)),
                figures.fig_psnr_heatmap(frames_table(), "missing"), figures.fig_table(empty)):
        assert "no " in fig.axes[0].texts[0].get_text()


def test_psnr_per_frame_averages_seeds_with_a_95_interval_and_an_ssim_panel():
    frames = frames_table(seeds=(0, 1, 2), epochs=(4,))
    fig = figures.fig_psnr_per_frame(frames, {"cyc": "Cyclical"})
    ax, ssim_ax = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    cyc = lines["Cyclical (mean of 3 seeds, 95% CI)"]
    per_frame = frames[frames["base"] == "cyc"].groupby("frame")["psnr"]
    np.testing.assert_allclose(cyc.get_ydata(), per_frame.mean().to_numpy())
    np.testing.assert_allclose(lines["repeat-first-frame baseline"].get_ydata(), 35 - 2 * np.arange(1, T))
    assert len(ax.collections) == len(RUNS)  # one interval band per run
    # Each band is, at every frame, mean ± t(0.975, 2) * sd / sqrt(3) over the 3 seeds, both edges.
    for panel, column in ((ax, "psnr"), (ssim_ax, "ssim")):
        for band, run in zip(panel.collections, RUNS):
            low, high = band_edges(band)
            expected_low, expected_high = t_interval_95(frames[frames["base"] == run], column)
            # lab4 takes t from a table to 3 decimals (4.303): 4e-4 of the exact 4.30265, times sd / sqrt(3).
            np.testing.assert_allclose(low, expected_low, rtol=0, atol=1e-3, err_msg=f"{column} {run}: low edge")
            np.testing.assert_allclose(high, expected_high, rtol=0, atol=1e-3, err_msg=f"{column} {run}: high edge")
    ssim_lines = {line.get_label(): line for line in ssim_ax.get_lines()}
    np.testing.assert_allclose(ssim_lines["Cyclical (mean of 3 seeds, 95% CI)"].get_ydata(),
                               frames[frames["base"] == "cyc"].groupby("frame")["ssim"].mean().to_numpy())
    assert ssim_ax.get_ylabel() == "SSIM"


def t_interval_95(rows: pd.DataFrame, column: str) -> tuple[np.ndarray, np.ndarray]:
    """The 95 % t-interval of the mean of 3 seeds at each frame, computed here: with 2 degrees of
    freedom Student's t has the closed-form CDF 1/2 + t / (2 sqrt(2 + t^2)), so t(0.975, 2) solves
    t / sqrt(2 + t^2) = 0.95, t = sqrt(2 * 0.95^2 / (1 - 0.95^2)) = 4.30265."""
    t = np.sqrt(2 * 0.95**2 / (1 - 0.95**2))
    values = np.stack([rows[rows["frame"] == f][column].to_numpy() for f in range(1, T)])
    assert values.shape == (T - 1, 3)
    mean, sd = values.mean(axis=1), values.std(axis=1, ddof=1)
    half = t * sd / np.sqrt(3)
    return mean - half, mean + half


def band_edges(band) -> tuple[np.ndarray, np.ndarray]:
    """The lower and upper edge of a fill_between band at frames 1..T-1, from its outline's vertices."""
    vertices = np.concatenate([path.vertices for path in band.get_paths()])
    at = [vertices[np.isclose(vertices[:, 0], f), 1] for f in range(1, T)]
    assert all(len(ys) >= 2 for ys in at), "the band does not span every frame"
    return np.array([ys.min() for ys in at]), np.array([ys.max() for ys in at])


def test_val_psnr_per_epoch_groups_seeds():
    epochs = pd.concat([epochs_table().assign(base=lambda d: d["run"], run=lambda d: d["run"] + f"-s{s}",
                                              val_psnr=lambda d: d["val_psnr"] + s) for s in (0, 1)])
    fig = figures.fig_val_psnr_epochs(epochs)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    np.testing.assert_allclose(lines["cyc (mean of 2 seeds, 95% CI)"].get_ydata(), [22.5, 24.5])
    assert len(fig.axes[0].collections) == len(RUNS)


def summary_table() -> pd.DataFrame:
    rows = [{"run": f"{r}-s{s}", "base": r, "seed": s, "settings": f"KL {r}", "best_val_psnr": 25.0 + s,
             "test_psnr": 20.0 + s, "test_baseline_psnr": 22.0, "val_psnr_1_600": -1.0}
            for r in RUNS for s in (0, 1)]
    return pd.DataFrame(rows)


def test_results_table_measures_the_last_validation_and_averages_seeds():
    frames = frames_table(epochs=(4,))
    table = figures.results_table(summary_table(), frames)
    assert list(table["run"]) == RUNS
    row = table.iloc[0]
    cyc = frames[frames["base"] == "cyc"]
    assert row["val_psnr_mean"] == pytest.approx(cyc["psnr"].mean())
    assert row["val_psnr_1_600"] == pytest.approx(cyc["psnr"].mean())  # fewer than 600 frames: all of them
    assert row["val_psnr_last"] == pytest.approx(cyc[cyc["frame"] == T - 1]["psnr"].mean())
    assert row["baseline_psnr_last"] == pytest.approx(35 - 2 * (T - 1))
    assert row["best_val_psnr"] == 25.5 and row["test_psnr"] == 20.5 and row["seeds"] == "0, 1" and row["n"] == 2
    assert row["best_val_psnr_std"] == pytest.approx(np.std([25.0, 26.0], ddof=1))
    per_seed = cyc.groupby("seed")["psnr"].mean()
    assert row["val_psnr_mean_std"] == pytest.approx(per_seed.std())
    assert row["val_ssim_mean"] == pytest.approx(cyc["ssim"].mean())
    drawn = figures.fig_table(table)
    texts = [cell.get_text().get_text() for cell in drawn.axes[0].tables[0].get_celld().values()]
    assert f"25.50\n± {row['best_val_psnr_std']:.2f}" in texts
    measures = psnr_measures(pd.DataFrame({"frame": np.arange(1, 701), "psnr": np.r_[np.full(600, 20.0), np.full(100, 10.0)],
                                           "baseline_psnr": np.full(700, 24.0)}))
    assert measures["val_psnr_1_600"] == 20.0 and measures["val_psnr_last"] == 10.0
    assert measures["val_psnr_mean"] == pytest.approx((600 * 20 + 100 * 10) / 700)


def strategy_runs() -> pd.DataFrame:
    return pd.DataFrame([{"run": f"{r}-s{s}", "base": r, "seed": s, "final_val_psnr": 20.0 + i + 0.3 * s,
                          "baseline_psnr": 22.7, "val_ssim_mean": 0.6 + 0.05 * i, "baseline_ssim_mean": 0.7}
                         for i, r in enumerate(RUNS) for s in (0, 1, 2)])


def z_strategy_frames() -> pd.DataFrame:
    return pd.DataFrame([{"strategy": s, "sequence": 0, "frame": f, "psnr": 25.0 - f + i, "baseline_psnr": 28.0 - 2 * f,
                          "ssim": 0.8 - 0.01 * f, "baseline_ssim": 0.9 - 0.02 * f}
                         for i, s in enumerate(["prior", "zero", "mean", "best_of"]) for f in range(1, T)])


def test_training_strategies_show_each_seed_and_the_interval():
    runs = strategy_runs()
    fig = figures.fig_training_strategies(runs, "cyc", {"none": "KL None"})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["cyc (n=3)", "mono (n=3)", "KL None (n=3)"]
    dots = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert sorted(np.round(np.concatenate([d.get_xdata() for d in dots]), 6)) == sorted(np.round(runs["final_val_psnr"], 6))
    assert any("95% CI" in t.get_text() for t in fig.legends[0].get_texts())
    assert len(fig.axes) == 2  # PSNR and SSIM


def test_training_strategies_axis_is_not_stretched_by_a_two_seed_interval():
    runs = strategy_runs()
    wild = pd.DataFrame([{"base": "wild", "seed": s, "final_val_psnr": v, "baseline_psnr": 22.0,
                          "val_ssim_mean": 0.7, "baseline_ssim_mean": 0.75} for s, v in ((0, 16.0), (1, 23.0))])
    runs = pd.concat([runs, wild], ignore_index=True)
    fig = figures.fig_training_strategies(runs, "cyc")
    low, high = fig.axes[0].get_xlim()
    values = runs["final_val_psnr"]
    assert values.min() - 2 < low <= values.min() and values.max() <= high < values.max() + 2  # t(1) interval: +-44 dB


def test_z_strategies_figure_labels_the_oracle():
    fig = figures.fig_z_strategies(z_strategy_frames())
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["prior", "zero", "mean", "best_of (ORACLE)"]
    bars = [p.get_width() for p in fig.axes[0].patches]
    np.testing.assert_allclose(bars, [25.0 - 4.5 + i for i in range(4)])  # mean over frames 1..8 of 25 - f + i


def test_fractional_epoch_spreads_iterations_over_their_epoch():
    iters = iters_table(["a"], epochs=2, per_epoch=4)
    np.testing.assert_allclose(figures.fractional_epoch(iters), [0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])


# --- the scrubber's panel --------------------------------------------------------------


def test_difference_image_maps_error_to_a_dark_to_bright_ramp():
    truth = np.full((3, 2, 2), 100, np.uint8)
    same = difference_image(truth, truth)
    assert same.shape == (3, 2, 2) and same.dtype == np.uint8
    assert same.max() <= 4  # black (the ramp starts at 0, 0, 4)
    off = truth.copy()
    off[:, 0, 0] = 100 + 64  # 1/4 of the range: saturates at gain 4
    diff = difference_image(off, truth, gain=4)
    assert tuple(diff[:, 0, 0]) == (252, 255, 164)
    assert diff[:, 0, 0].sum() > difference_image(off, truth, gain=1)[:, 0, 0].sum()


def test_render_panel_places_four_enlarged_frames_side_by_side():
    pose, truth, pred = frames_u8(0)[0], frames_u8(1)[0], frames_u8(2)[0]
    scale = 3
    bare = render_panel(pose, truth, pred, scale=scale, titles=None)
    assert bare.shape == (H * scale, 4 * W * scale + 3 * GAP, 3) and bare.dtype == np.uint8
    tiles = [pose, truth, pred, difference_image(pred, truth)]
    for i, tile in enumerate(tiles):
        x = i * (W * scale + GAP)
        np.testing.assert_array_equal(bare[:, x:x + W * scale], enlarge(tile, scale))
        if i < 3:
            assert (bare[:, x + W * scale:x + W * scale + GAP] == 255).all()  # white gap
    # nearest neighbour: each source pixel is a scale x scale block
    np.testing.assert_array_equal(bare[0:scale, 0:scale], np.broadcast_to(pose[:, 0, 0], (scale, scale, 3)))

    captioned = render_panel(pose, truth, pred, scale=scale, caption="frame 3: PSNR 21.00 dB")
    row = text_row(scale)
    assert captioned.shape == (row + H * scale + row, 4 * W * scale + 3 * GAP, 3)
    np.testing.assert_array_equal(captioned[row:row + H * scale], bare)
    assert (captioned[:row] < 128).any() and (captioned[-row:] < 128).any()  # text drawn
    with pytest.raises(ValueError, match="uint8 frame"):
        render_panel(pose.astype(float), truth, pred)
    with pytest.raises(ValueError, match="one shape"):
        render_panel(pose, truth[:, :16], pred)


def make_rollout(seed=0) -> Rollout:
    return Rollout(prediction=frames_u8(seed), truth=frames_u8(seed + 1), labels=frames_u8(seed + 2),
                   psnr=np.linspace(30, 20, T - 1), baseline_psnr=np.full(T - 1, 24.0))


def test_rollout_panel_captions_the_frame_psnr():
    rollout = make_rollout()
    assert rollout_panel(rollout, 3, scale=2).shape == (2 * text_row(2) + 2 * H, 4 * 2 * W + 3 * GAP, 3)
    with pytest.raises(IndexError):
        rollout_panel(rollout, T)
    from lab4.report.scrubber import frame_caption

    assert "given first frame" in frame_caption(rollout, 0)
    assert f"{rollout.psnr[2]:.2f} dB" in frame_caption(rollout, 3) and "24.00 dB" in frame_caption(rollout, 3)
    png = to_png(rollout_panel(rollout, 1))
    assert png.startswith(b"\x89PNG")


def test_scrubber_widgets_follow_the_run_and_the_frame(tmp_path):
    runs = {}
    for i, (name, length) in enumerate((("a", T), ("b", 5))):
        folder = tmp_path / name
        folder.mkdir()
        r = make_rollout(i)
        np.savez(folder / "val_rollout.npz", prediction=r.prediction[:length], truth=r.truth[:length],
                 labels=r.labels[:length], psnr=r.psnr[:length - 1], baseline_psnr=r.baseline_psnr[:length - 1])
        (folder / "config.json").write_text('{"data_root": "data/x", "val_z": "prior"}')
        (folder / "val_psnr.csv").write_text("epoch,frame,psnr,baseline_psnr\n3,1,20,24\n")
        runs[name] = RunData(folder)
    scrubber = Scrubber(runs, scale=2)
    assert scrubber.slider.max == T - 1 and scrubber.play.max == T - 1
    first = scrubber.image.value
    panel = scrubber.show(t=4)
    assert scrubber.image.value != first and panel.shape[1] == 4 * 2 * W + 3 * GAP
    assert "frame 4 of 8" in scrubber.info.value and "after epoch 3" in scrubber.info.value
    scrubber.show("b")
    assert scrubber.slider.max == 4 and scrubber.slider.value == 4  # kept within the shorter rollout
    assert "frame 4 of 4" in scrubber.info.value


def test_the_scrubber_text_stays_readable_when_the_panel_is_shrunk_to_a_page():
    """A notebook shows the panel at most about 900 px wide: its text must still be 9 px or more."""
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (3, 32, 64), dtype=np.uint8)
    for scale in (4, 6, 8):
        panel = render_panel(frame, frame, frame, scale=scale, caption="frame 3: PSNR 21.00 dB")
        ink_rows = np.flatnonzero((panel[-text_row(scale):] < 128).any(axis=(1, 2)))
        glyph_height = ink_rows.max() - ink_rows.min() + 1
        shrink = min(1.0, 900 / panel.shape[1])
        assert glyph_height * shrink >= 9, (scale, glyph_height, panel.shape)
        assert font_size(scale) >= 12


def test_time_to_quality_puts_each_validation_at_the_minutes_spent_by_then():
    from lab4.report.figures import fig_time_to_quality, time_to_quality

    epochs = pd.DataFrame({"run": ["a"] * 4 + ["b"] * 2, "epoch": [1, 2, 3, 4, 1, 2],
                           "seconds": [60, 90, 60, 30, 120, 120],
                           "val_psnr": [None, 25.0, None, 27.0, 24.0, 26.0], "baseline_psnr": [22.0] * 6})
    points = time_to_quality(epochs)
    assert points["run"].tolist() == ["a", "a", "b", "b"]
    assert points["minutes"].tolist() == [2.5, 4.0, 2.0, 4.0]
    assert points["val_psnr"].tolist() == [25.0, 27.0, 24.0, 26.0]
    assert fig_time_to_quality(epochs).axes[0].get_xlabel().startswith("wall-clock minutes")


def test_a_gif_keeps_every_frame_at_its_scale_in_one_palette(tmp_path) -> None:
    """lab4.predict.write_gif: every frame, enlarged, in colours close to the frames' own (one palette
    for the whole GIF, chosen from frames sampled across it)."""
    from lab4.predict import write_gif

    ramp = np.linspace(120, 230, 64, dtype=np.float32)[None, :, None] * np.ones((32, 1, 3), np.float32)
    frames = np.repeat(ramp[None], 50, axis=0)
    for t in range(50):  # a dark figure crossing the frame, with a skin-coloured head
        frames[t, 8:28, t:t + 6] = (60, 60, 70)
        frames[t, 4:8, t + 1:t + 5] = (220, 170, 140)
    frames = frames.astype(np.uint8)
    write_gif(tmp_path / "a.gif", frames, scale=4)
    gif = Image.open(tmp_path / "a.gif")
    assert gif.n_frames == 50 and gif.size == (256, 128)
    for t in (0, 25, 49):
        gif.seek(t)
        shown = np.asarray(gif.convert("RGB"))[::4, ::4].astype(int)
        assert np.abs(shown - frames[t]).mean() < 3.0
