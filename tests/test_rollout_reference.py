"""A rollout longer than two label chunks against a per-step reference rollout written here.

`lab4.rollout.rollout` rolls every sequence out as one batch and encodes the labels
`LABEL_CHUNK` (128) steps at a time; a real rollout (630 frames) goes through five chunks.
The reference below is the template's test loop as `Tester.py` runs it: one sequence at a
time, batch 1, one step at a time (encode the previous frame, encode that step's label, z,
Decoder_Fusion, Generator, the output mapping, feed the frame back), with none of the
rollout's batching or chunking. With z fixed (z_mode "zero") the two must agree, for both
choices of the label BatchNorm's statistics:

* "running": eval mode, the BatchNorm's running statistics (the reference calls the label
  encoder with the model in eval mode);
* "frame": each label frame normalised by its own statistics, which is what nn.BatchNorm2d
  computes in training mode on a batch of one frame (the reference calls a copy of the label
  encoder in training mode, one frame at a time: training mode updates the running buffers,
  so the copy keeps the model's own untouched).

The model's label BatchNorm is given running statistics and affine weights far from the
defaults (0, 1), so that the two choices give different frames and the test can tell them
apart (checked below, as is that the labels of the last chunk move its frames).
"""

from __future__ import annotations

import copy
import inspect

import pytest
import torch

from lab4.model import VideoCVAE
from lab4.rollout import LABEL_CHUNK, rollout

pytestmark = pytest.mark.usefixtures("one_thread")

SEQS = 2
# Three label chunks: steps 1-128, 129-256 and a partial third, 257-261.
LENGTH = 2 * LABEL_CHUNK + 6
# Small frames: the rollout's loop does not depend on the frame size, and at 8 x 16 the 262-step
# reference costs under a second per sequence at one thread (about 3 s at 32 x 64).
H, W = 8, 16
# fp32, the same operations on batches of another size: the largest difference measured over the
# 262 frames of both sequences and both choices was 2e-7; frames that differ by a chunk's labels
# differ by 1e-2 and more (test_the_comparison_is_not_vacuous).
ATOL = 1e-5


def has_label_norm() -> bool:
    return "label_norm" in inspect.signature(rollout).parameters


def lab4_rollout(model: VideoCVAE, first: torch.Tensor, labels: torch.Tensor, label_norm: str) -> torch.Tensor:
    """rollout() with z = 0 and the given label statistics."""
    if has_label_norm():
        return rollout(model, first, labels, z_mode="zero", label_norm=label_norm)
    if label_norm != "running":
        pytest.skip("lab4.rollout.rollout has no label_norm parameter yet: it only generates with the running "
                    "statistics")
    return rollout(model, first, labels, z_mode="zero")  # eval mode: the running statistics


def reference_rollout(model: VideoCVAE, first: torch.Tensor, labels: torch.Tensor, label_norm: str) -> torch.Tensor:
    """first (3, H, W), labels (T, 3, H, W) of one sequence -> its frames (T, 3, H, W), frame 0 given.

    The template's test loop: batch 1, one step at a time, z = 0 (the fixed prior's mean)."""
    model = copy.deepcopy(model).eval()
    label_encoder = model.label_transformation
    if label_norm == "frame":
        label_encoder = copy.deepcopy(label_encoder).train()  # BatchNorm over the one frame of each call
    frames = [first[None]]
    with torch.no_grad():
        for t in range(1, labels.shape[0]):
            prev_feat = model.frame_transformation(frames[-1])
            label_feat = label_encoder(labels[t][None])
            z = torch.zeros(1, model.N_dim, H, W)
            raw = model.Generator(model.Decoder_Fusion(prev_feat, label_feat, z))
            frames.append(model.to_image(raw))
    return torch.cat(frames)


@pytest.fixture(scope="module")
def case() -> tuple[VideoCVAE, torch.Tensor, torch.Tensor]:
    """A smoke-size model whose label BatchNorm has statistics and weights of its own, first frames
    (SEQS, 3, H, W) and labels (SEQS, LENGTH, 3, H, W)."""
    torch.manual_seed(0)
    model = VideoCVAE(F_dim=16, L_dim=8, N_dim=4, D_out_dim=16)
    norm = model.label_transformation[2]
    assert isinstance(norm, torch.nn.BatchNorm2d)
    gen = torch.Generator().manual_seed(1)
    channels = norm.num_features
    with torch.no_grad():
        norm.running_mean.copy_(0.3 * torch.randn(channels, generator=gen))
        norm.running_var.copy_(0.05 + 0.5 * torch.rand(channels, generator=gen))
        norm.weight.copy_(0.5 + torch.rand(channels, generator=gen))
        norm.bias.copy_(0.3 * torch.randn(channels, generator=gen))
    first = torch.rand((SEQS, 3, H, W), generator=gen)
    labels = torch.rand((SEQS, LENGTH, 3, H, W), generator=gen)
    return model, first, labels


@pytest.mark.parametrize("label_norm", ["running", "frame"])
def test_a_rollout_over_three_label_chunks_is_the_per_step_rollout(case, label_norm: str) -> None:
    """Every frame of both sequences, through all three label chunks, is the reference's; the
    rollout leaves the model as it found it (training mode back, BatchNorm buffers untouched)."""
    model, first, labels = case
    before = {name: value.clone() for name, value in model.state_dict().items()}
    model.train()  # as the training's validation calls it: the rollout must generate, then switch back
    out = lab4_rollout(model, first, labels, label_norm)
    assert model.training
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), f"the rollout changed {name}"
    assert out.shape == (SEQS, LENGTH, 3, H, W)
    for seq in range(SEQS):
        expected = reference_rollout(model, first[seq], labels[seq], label_norm)
        torch.testing.assert_close(out[seq], expected, rtol=0, atol=ATOL, msg=lambda m: f"sequence {seq}: {m}")


def test_the_comparison_is_not_vacuous(case) -> None:
    """What the test above must be able to see, seen by the reference itself: the frames of the
    second and third chunks follow their own labels (a rollout that reused the first chunk's label
    features would give the frames computed here from the first chunk's labels), and the two
    choices of label statistics give different frames."""
    model, first, labels = case
    expected = reference_rollout(model, first[0], labels[0], "running")
    reused = labels[0].clone()
    for t in range(LABEL_CHUNK + 1, LENGTH):
        reused[t] = labels[0][1 + (t - 1) % LABEL_CHUNK]  # step t given the label of its place in chunk 1
    from_first_chunk = reference_rollout(model, first[0], reused, "running")
    torch.testing.assert_close(from_first_chunk[:LABEL_CHUNK + 1], expected[:LABEL_CHUNK + 1], rtol=0, atol=0)
    moved = (from_first_chunk - expected).abs().amax(dim=(1, 2, 3))[LABEL_CHUNK + 1:]
    assert moved.min() > 100 * ATOL  # 0.0097 at least (0.01 to 0.02 grey-scale units of 1)
    per_frame = reference_rollout(model, first[0], labels[0][:4], "frame")
    assert (per_frame[1:] - expected[1:4]).abs().max() > 1000 * ATOL
