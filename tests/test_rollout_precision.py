"""A reduced-precision rollout (bf16 autocast, what `precision=auto` gives on a CUDA GPU and
`precision=bf16` on a CPU) against the fp32 rollout of the same model, labels and z.

The frames of a bf16 rollout are not the fp32 frames: every convolution rounds its inputs and
outputs to 8 bits of mantissa (one part in 256). What must hold is that they stay within a
fraction of a grey level, step after step, on labels like the real ones (faint lines on white:
the label BatchNorm's variance is tiny, about 0.0003-0.0009 here, so statistics computed in
low precision would be ruined first). The bound is per output mapping, from measurement: on the
tiny studio data's val video (32 frames, z = 0, seeds 0-3 of the smoke-size model at the
template's initialisation, its label statistics from 64 training labels, both label_norm choices)
the mean absolute difference over frames 1-31 was 0.10-0.17 grey levels with the clamp output (its
frames leave the generator in bf16) and 0.04-0.07 with the sigmoid (computed in fp32 under
autocast). The bounds below are about twice the largest.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lab4.data import load_split
from lab4.device import to_float_images
from lab4.model import VideoCVAE
from lab4.rollout import rollout

pytestmark = pytest.mark.usefixtures("one_thread")

LENGTH = 32
# Mean |bf16 - fp32| over the predicted frames, in grey levels (0-255); see the module docstring.
BOUND_GREY = {"clamp": 0.35, "sigmoid": 0.15}
# bf16 really ran: the smallest difference measured was 0.04 grey levels.
AT_LEAST_GREY = 0.01


def bf16_unsupported() -> str | None:
    """Why this CPU cannot run a bf16 autocast convolution, or None when it can."""
    try:
        with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
            out = F.conv2d(torch.ones(1, 1, 4, 4), torch.ones(1, 1, 3, 3))
    except RuntimeError as exc:  # no bf16 kernels in this build
        return f"bf16 autocast on this CPU fails: {exc}"
    if out.dtype != torch.bfloat16:
        return f"torch.autocast('cpu', bfloat16) leaves convolutions in {out.dtype} here"
    return None


def with_label_stats(model: VideoCVAE, labels: torch.Tensor) -> VideoCVAE:
    """The label BatchNorm's running statistics set to those of `labels`, as training leaves them
    (their average over many batches); then eval mode."""
    norm = model.label_transformation[2]
    norm.momentum = None  # a cumulative average: one call sets the statistics of these labels
    with torch.no_grad():
        model.label_transformation.train()(labels)
    norm.momentum = 0.1
    return model.eval()


@pytest.mark.parametrize(("output", "label_norm"), [("clamp", "frame"), ("sigmoid", "running")])
def test_a_bf16_rollout_stays_within_a_fraction_of_a_grey_level_of_fp32(tiny_data: Path, output: str,
                                                                        label_norm: str) -> None:
    reason = bf16_unsupported()
    if reason:
        pytest.skip(reason)
    has_label_norm = "label_norm" in inspect.signature(rollout).parameters
    if not has_label_norm and label_norm != "running":
        pytest.skip("lab4.rollout.rollout has no label_norm parameter yet: it only generates with the running "
                    "statistics")
    options = {"z_mode": "zero", **({"label_norm": label_norm} if has_label_norm else {})}
    val, train = load_split(tiny_data, "val"), load_split(tiny_data, "train")
    frames = to_float_images(val.frames[:LENGTH], "cpu")
    labels = to_float_images(val.labels[:LENGTH], "cpu")[None]
    torch.manual_seed(0)
    model = with_label_stats(VideoCVAE(F_dim=16, L_dim=8, N_dim=4, D_out_dim=16, output=output),
                             to_float_images(train.labels[:64], "cpu"))

    full = rollout(model, frames[:1], labels, **options)
    reduced = rollout(model, frames[:1], labels, dtype=torch.bfloat16, **options)
    assert reduced.dtype == torch.float32 and torch.isfinite(reduced).all()
    assert torch.equal(reduced[:, 0], frames[:1])  # the given first frame, untouched
    per_frame = (reduced - full)[0, 1:].abs().mean(dim=(1, 2, 3)) * 255
    assert per_frame.mean() <= BOUND_GREY[output], [round(float(v), 3) for v in per_frame]
    # No frame drifts off: the last frames are as close as the rest (no error that grows along the rollout).
    assert per_frame.max() <= 2 * BOUND_GREY[output], [round(float(v), 3) for v in per_frame]
    assert per_frame.mean() >= AT_LEAST_GREY, "the bf16 rollout equals the fp32 one: no reduced precision ran"
