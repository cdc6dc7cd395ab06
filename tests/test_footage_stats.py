"""The label measures of lab4.synth.footage (what `data-stats` prints beside the real footage's figures),
on small label images whose answers are worked out by hand."""

from __future__ import annotations

import re

import numpy as np
import pytest

from lab4.synth import footage

WHITE = 255


def label_with_four_marks() -> np.ndarray:
    """One 4 x 5 label (H, W, 3) on white with four marked pixels; their differences from white
    (0-1 scale, steps of 51 / 255 = 0.2) per channel, then averaged and largest:
      (0, 0.2, 0.6)  averaged 0.267, largest 0.6
      (0, 0, 0.2)    averaged 0.067, largest 0.2
      (0.2, 0.2, 0.2) averaged 0.2,  largest 0.2
      (0.4, 0, 0)    averaged 0.133, largest 0.4"""
    label = np.full((4, 5, 3), WHITE, np.uint8)
    label[0, 0] = (255, 204, 102)
    label[1, 2] = (255, 255, 204)
    label[2, 4] = (204, 204, 204)
    label[3, 1] = (153, 255, 255)
    return label


def test_faintness_takes_a_pixels_difference_averaged_over_its_channels_or_its_largest() -> None:
    labels = label_with_four_marks()[None]
    # Averaged: three of the 20 pixels exceed 0.1 (0.267, 0.2, 0.133), none 0.3; their mean is 0.2.
    faint, strong, mean, on_white = footage.label_faintness(labels, "averaged")
    assert on_white
    assert (faint, strong, mean) == pytest.approx((3 / 20, 0.0, 0.2), abs=1e-6)
    # Largest: all four exceed 0.1 (0.6, 0.2, 0.2, 0.4), two 0.3; their mean is 0.35.
    assert footage.label_faintness(labels, "largest")[:3] == pytest.approx((4 / 20, 2 / 20, 0.35), abs=1e-6)
    assert footage.label_faintness(labels) == footage.label_faintness(labels, "averaged")  # the default
    with pytest.raises(ValueError, match="channels='median'"):
        footage.label_faintness(labels, "median")


def test_faintness_reads_labels_drawn_on_black_from_black() -> None:
    labels = WHITE - label_with_four_marks()[None]  # the same marks, on black
    faint, strong, mean, on_white = footage.label_faintness(labels, "largest")
    assert not on_white
    assert (faint, strong, mean) == pytest.approx((4 / 20, 2 / 20, 0.35), abs=1e-6)


def test_ink_is_the_mean_largest_channel_difference_per_frame() -> None:
    marked = label_with_four_marks()
    one_mark = np.full_like(marked, WHITE)
    one_mark[1, 1] = (0, 255, 255)  # difference 1.0 in one channel
    # (0.6 + 0.2 + 0.2 + 0.4) / 20 pixels, and 1.0 / 20.
    np.testing.assert_allclose(footage.label_ink(np.stack([marked, one_mark])), [0.07, 0.05], atol=1e-6)
    # The same frames channel-first, as the loader returns them, and on black.
    np.testing.assert_allclose(footage.label_ink(np.stack([marked, one_mark]).transpose(0, 3, 1, 2)), [0.07, 0.05],
                               atol=1e-6)
    np.testing.assert_allclose(footage.label_ink(WHITE - np.stack([marked, one_mark]), white=False), [0.07, 0.05],
                               atol=1e-6)


def test_ink_shift_and_spread() -> None:
    # The val labels' mean ink 0.045 against the training labels' 0.05: 10 % less.
    assert footage.ink_shift(np.array([0.04, 0.06]), np.array([0.045, 0.045])) == pytest.approx(-0.1)
    assert footage.ink_shift(np.array([0.05]), np.array([0.06])) == pytest.approx(0.2)
    # Inks 0.05 and 0.07: sd 0.01 (over the frames, not a sample's), mean 0.06.
    assert footage.ink_spread(np.array([0.05, 0.07])) == pytest.approx(1 / 6)
    assert footage.ink_spread(np.full(4, 0.03)) == 0.0


def test_measure_takes_the_first_label_frames_for_faintness_and_training_ink(monkeypatch) -> None:
    """Faintness and the training ink on the first LABEL_FRAMES training labels, as the footage's
    figures were measured; the val ink and its spread on the val labels."""
    monkeypatch.setattr(footage, "LABEL_FRAMES", 2)
    marked, white = label_with_four_marks(), np.full((4, 5, 3), WHITE, np.uint8)
    black = np.zeros_like(white)  # past LABEL_FRAMES: would change every label measure if read
    train_labels = np.stack([marked, white, black])
    val_labels = np.stack([marked, white, white, white])
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (6, 8, 16, 3), dtype=np.uint8)
    stats = footage.measure(frames, frames, val_labels, train_labels)
    assert stats.label_on_white
    # Two frames of 20 pixels: the marked frame's counts over 40 pixels.
    assert (stats.label_faint_share, stats.label_strong_share, stats.label_faint_mean) == \
        pytest.approx((3 / 40, 0.0, 0.2), abs=1e-6)
    assert (stats.label_faint_share_largest, stats.label_strong_share_largest, stats.label_faint_mean_largest) == \
        pytest.approx((4 / 40, 2 / 40, 0.35), abs=1e-6)
    assert stats.label_ink_train == pytest.approx(0.035, abs=1e-6)  # (0.07 + 0) / 2
    assert stats.label_ink_val == pytest.approx(0.0175, abs=1e-6)   # (0.07 + 0 + 0 + 0) / 4
    assert stats.label_ink_shift == pytest.approx(-0.5, abs=1e-5)
    # Inks 0.07, 0, 0, 0: sd 0.07 * sqrt(3) / 4, mean 0.07 / 4.
    assert stats.label_ink_spread == pytest.approx(np.sqrt(3), abs=1e-5)


def row(text: str, name: str) -> list[str]:
    """[this data, real footage]: the columns of format_stats' row whose measure is `name`."""
    lines = [line for line in text.splitlines() if line.startswith(name + "  ")]
    assert len(lines) == 1, (name, text)
    return re.split(r"\s{2,}", lines[0].strip())[1:]


def test_each_label_measure_prints_beside_the_footage_figure_measured_the_same_way(monkeypatch) -> None:
    monkeypatch.setattr(footage, "LABEL_FRAMES", 2)
    frames = np.random.default_rng(0).integers(0, 256, (6, 8, 16, 3), dtype=np.uint8)
    marked, white = label_with_four_marks(), np.full((4, 5, 3), WHITE, np.uint8)
    stats = footage.measure(frames, frames, np.stack([marked, marked, marked, white]), np.stack([marked, white]))
    text = footage.format_stats(stats)
    # this data, then the footage's figure (issue 31: first 1,200 training labels).
    assert row(text, "label pixels > 0.1 from white, channels averaged") == ["7.50%", "1.06% (on white)"]
    assert row(text, "label pixels > 0.3, channels averaged") == ["0.00%", "0.00%"]
    assert row(text, "mean difference of those > 0.1, channels averaged") == ["0.200", "0.137"]
    assert row(text, "label pixels > 0.1 from white, largest channel") == ["10.00%", "2.85% (on white)"]
    assert row(text, "label pixels > 0.3, largest channel") == ["5.00%", "0.12%"]
    assert row(text, "mean difference of those > 0.1, largest channel") == ["0.350", "0.162"]
    assert row(text, "label ink per pixel, train (largest channel)") == ["0.0350", "0.0063"]
    assert row(text, "label ink per pixel, val") == ["0.0525", "0.0060"]
    assert row(text, "val label ink against train") == ["+50%", "-5%"]
    # Inks 0.07, 0.07, 0.07, 0: sd 0.0303, mean 0.0525.
    assert row(text, "val label ink's spread over frames (sd/mean)") == ["57.7%", "not measured"]
