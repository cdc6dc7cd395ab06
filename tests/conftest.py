"""Shared test fixtures: tiny Lab 4 datasets written as real PNG files under tmp_path."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# `make test` runs two pytest-xdist workers on two cores: each gets one core, and torch's default
# (a thread per core in every worker) would oversubscribe the machine. Set before any test module
# imports torch; a run without xdist keeps torch's default.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def save_png(path: Path, chw: np.ndarray) -> None:
    """Write a uint8 [3, H, W] array as an RGB PNG (creating the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(chw.transpose(1, 2, 0))).save(path)


def frame_name(index: int) -> str:
    # Not zero-padded on purpose: frame10.png sorts before frame2.png as text, so the
    # numeric ordering of the loader is exercised.
    return f"frame{index}.png"


@dataclass
class TinyDataset:
    """What make_dataset wrote, as the uint8 [.., 3, 32, 64] arrays the loader should return."""

    root: Path
    train_frames: np.ndarray  # [N, 3, 32, 64]
    train_labels: np.ndarray
    val_frames: np.ndarray
    val_labels: np.ndarray
    test_first: np.ndarray  # [S, 3, 32, 64]
    test_labels: np.ndarray  # [S, T, 3, 32, 64]
    test_truth: np.ndarray | None  # [S, T, 3, 32, 64]


def write_dataset(
    root: Path,
    n_train: int = 20,
    n_val: int = 8,
    n_test: int = 3,
    test_len: int = 5,
    with_gt: bool = False,
    seed: int = 0,
) -> TinyDataset:
    """Write a Lab 4 layout of random 64x32 PNGs under root."""
    rng = np.random.default_rng(seed)

    def frames(*shape: int) -> np.ndarray:
        return rng.integers(0, 256, (*shape, 3, 32, 64), dtype=np.uint8)

    arrays = {}
    for split, n in (("train", n_train), ("val", n_val)):
        img, lab = frames(n), frames(n)
        for i in range(n):
            save_png(root / split / f"{split}_img" / frame_name(i), img[i])
            save_png(root / split / f"{split}_label" / frame_name(i), lab[i])
        arrays[split] = (img, lab)

    first, labels = frames(n_test), frames(n_test, test_len)
    truth = frames(n_test, test_len) if with_gt else None
    for s in range(n_test):
        save_png(root / "test" / "test_img" / str(s) / frame_name(0), first[s])
        for t in range(test_len):
            save_png(root / "test" / "test_label" / str(s) / frame_name(t), labels[s, t])
            if truth is not None:
                save_png(root / "test" / "test_gt" / str(s) / frame_name(t), truth[s, t])

    return TinyDataset(root, *arrays["train"], *arrays["val"], first, labels, truth)


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., TinyDataset]:
    """A factory: make_dataset(**kwargs) writes a tiny dataset under tmp_path/data (see write_dataset)."""

    def make(**kwargs) -> TinyDataset:
        return write_dataset(tmp_path / "data", **kwargs)

    return make


@pytest.fixture
def write_png() -> Callable[[Path, np.ndarray], None]:
    """save_png, for tests that write their own (odd) PNG files."""
    return save_png


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The synthetic `tiny` dataset of lab4.synth (3x64 train, 96 val, 5x96 test frames with
    test ground truth), generated once per test session."""
    from lab4.synth import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("tiny_data"), size="tiny", progress=False)


@pytest.fixture
def one_thread():
    """Small tensors: one torch thread is as fast, and immune to a busy machine's thread contention."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def stopped_at_epoch_2(monkeypatch, start: Callable[[], object]) -> None:
    """Run `start` (a training) and stop it at the start of epoch 2, as Ctrl-C there would."""
    import lab4.train as train_module

    real_ratio = train_module.teacher_forcing_ratio

    def interrupt(epoch, *rest):
        if epoch == 1:  # epochs count from 0 here
            raise KeyboardInterrupt
        return real_ratio(epoch, *rest)

    monkeypatch.setattr(train_module, "teacher_forcing_ratio", interrupt)
    with pytest.raises(KeyboardInterrupt):
        start()
    monkeypatch.setattr(train_module, "teacher_forcing_ratio", real_ratio)
