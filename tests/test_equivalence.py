"""The whole-clip loss equals the template's per-step loop: same loss, same gradients.

`lab4.step.clip_loss` encodes every frame and label of a clip in one call over
(batch x time); `lab4.step.training_one_step` (the template's loop, the definition)
calls every module once per time step on the batch. With the reparameterisation noise
fixed, in fp32, the two must agree, teacher-forced or not, with the template's fixed
prior N(0, I) or a learned prior p(z_t | x_{t-1}, p_t) (the KL to it, and its gradients).

BatchNorm, the one place where they legitimately differ
--------------------------------------------------------
The Label_Encoder has a BatchNorm. In train mode it normalises with the statistics of
the images in the call: B*(T-1) label images in the batched step (train_label_norm="clip"),
B in each step of the loop, one with train_label_norm="frame". The losses are
therefore different functions in train mode, and neither is a bug. So:

* with the BatchNorm in eval mode (fixed statistics) the two must agree exactly
  (up to float rounding): `test_*_matches_the_loop_with_batchnorm_in_eval_mode`;
* in train mode the only difference comes from the BatchNorm: with it replaced by the
  identity the two agree again, `test_train_mode_differs_only_through_batchnorm`, while
  with it they do differ (that test checks this too, so it cannot pass vacuously);
* at batch size 1 a step of the loop normalises one label, so with per-frame
  statistics the batched step IS the template's, BatchNorm in train mode included:
  `test_per_frame_statistics_at_batch_1_are_the_templates_step`.
"""

from __future__ import annotations

import functools

import pytest
import torch

from lab4.model import VideoCVAE
from lab4.step import clip_loss, training_one_step

SIZES = dict(F_dim=16, L_dim=8, N_dim=4, D_out_dim=16)
BATCH, LENGTH, H, W = 2, 5, 32, 64
RTOL, ATOL = 1e-4, 1e-5


pytestmark = pytest.mark.usefixtures("one_thread")


def make_model(output: str = "clamp", channels_last: bool = False, prior: str = "fixed") -> VideoCVAE:
    torch.manual_seed(0)
    model = VideoCVAE(**SIZES, output=output, prior=prior)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model


def make_inputs(seed: int = 1) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    frames = torch.rand((BATCH, LENGTH, 3, H, W), generator=gen)
    labels = torch.rand((BATCH, LENGTH, 3, H, W), generator=gen)
    noise = torch.randn((BATCH * (LENGTH - 1), SIZES["N_dim"], H, W), generator=gen)
    return frames, labels, noise


def batchnorms(model: VideoCVAE) -> list[torch.nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]


def set_batchnorm_eval(model: VideoCVAE) -> None:
    """Train mode everywhere except the BatchNorms, which use their (non-trivial) running statistics."""
    model.train()
    for bn in batchnorms(model):
        with torch.no_grad():
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 1.5)
        bn.eval()


def loss_and_grads(model: VideoCVAE, fn, frames, labels, noise, teacher_forced: bool, kl_weight: float = 0.7):
    model.zero_grad(set_to_none=True)
    out = fn(model, frames, labels, teacher_forced, kl_weight, noise)
    loss, mse, kl = (out.loss, out.mse, out.kl) if hasattr(out, "loss") else out
    loss.backward()
    grads = {name: p.grad.detach().clone() for name, p in model.named_parameters()}
    return loss.detach(), mse.detach(), kl.detach(), grads


def assert_same(a, b, grad_atol: float = 2e-4) -> None:
    (loss_a, mse_a, kl_a, grads_a), (loss_b, mse_b, kl_b, grads_b) = a, b
    torch.testing.assert_close(loss_a, loss_b, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(mse_a, mse_b, rtol=RTOL, atol=ATOL)
    torch.testing.assert_close(kl_a, kl_b, rtol=RTOL, atol=ATOL)
    assert grads_a.keys() == grads_b.keys()
    for name in grads_a:
        # Gradients are summed over many terms in different orders: compare each tensor
        # relative to its own scale.
        scale = grads_b[name].abs().max().item() + 1e-12
        torch.testing.assert_close(grads_a[name] / scale, grads_b[name] / scale, rtol=0, atol=grad_atol,
                                   msg=lambda m, name=name: f"gradient of {name}: {m}")


@pytest.mark.parametrize("teacher_forced", [True, False], ids=["teacher_forced", "free_running"])
@pytest.mark.parametrize("output", ["clamp", "sigmoid"])
@pytest.mark.parametrize("prior", ["fixed", "learned"])
def test_clip_loss_matches_the_loop_with_batchnorm_in_eval_mode(teacher_forced: bool, output: str, prior: str) -> None:
    frames, labels, noise = make_inputs()
    model = make_model(output, prior=prior)
    set_batchnorm_eval(model)
    ours = loss_and_grads(model, clip_loss, frames, labels, noise, teacher_forced)
    loop = loss_and_grads(model, training_one_step, frames, labels, noise, teacher_forced)
    assert_same(ours, loop)
    assert all(g.abs().sum() > 0 for g in ours[3].values()), "every parameter should get a gradient"


@pytest.mark.parametrize("teacher_forced", [True, False], ids=["teacher_forced", "free_running"])
@pytest.mark.parametrize("prior", ["fixed", "learned"])
def test_project_layout_matches_the_loop(teacher_forced: bool, prior: str) -> None:
    """The project's channels_last model in the whole-clip loss against a plain NCHW model in the loop."""
    frames, labels, noise = make_inputs(seed=2)
    plain_model = make_model(prior=prior)
    ours_model = make_model(channels_last=True, prior=prior)
    ours_model.load_state_dict(plain_model.state_dict())
    set_batchnorm_eval(plain_model)
    ours_model.train()
    for bn_ours, bn_plain in zip(batchnorms(ours_model), batchnorms(plain_model)):
        bn_ours.load_state_dict(bn_plain.state_dict())
        bn_ours.eval()
    ours = loss_and_grads(ours_model, clip_loss, frames, labels, noise, teacher_forced)
    loop = loss_and_grads(plain_model, training_one_step, frames, labels, noise, teacher_forced)
    # The two layouts run different convolution kernels (oneDNN's NHWC and the NCHW ones),
    # which round differently. Free running feeds each step's rounded prediction into the
    # next, so the differences compound over the clip: on an AMD EPYC they reached 5e-4 of
    # a gradient's scale (under 2e-4 on the Xeon this test was first written on). A layout bug would
    # show as differences of the order of the gradients themselves.
    assert_same(ours, loop, grad_atol=2e-4 if teacher_forced else 2e-3)


@pytest.mark.parametrize("teacher_forced", [True, False], ids=["teacher_forced", "free_running"])
@pytest.mark.parametrize("prior", ["fixed", "learned"])
def test_train_mode_differs_only_through_batchnorm(teacher_forced: bool, prior: str) -> None:
    frames, labels, noise = make_inputs(seed=3)
    # Poses whose brightness changes over the clip, so that per-step statistics differ
    # clearly from the clip's.
    labels = labels * torch.linspace(0.1, 1.0, LENGTH).view(1, LENGTH, 1, 1, 1)

    # With the BatchNorm in train mode the batched statistics (B*(T-1) images) and the
    # per-step ones (B images) differ, so the losses do too ...
    model = make_model(prior=prior)
    model.train()
    ours = loss_and_grads(model, clip_loss, frames, labels, noise, teacher_forced)
    loop = loss_and_grads(model, training_one_step, frames, labels, noise, teacher_forced)
    assert not torch.allclose(ours[0], loop[0], rtol=1e-3), "train-mode BatchNorm should make them differ"
    grad = "label_transformation.1.weight"
    assert not torch.allclose(ours[3][grad], loop[3][grad], rtol=1e-2, atol=0)

    # ... and that is the only difference: without it they agree.
    model = make_model(prior=prior)
    model.label_transformation[2] = torch.nn.Identity()
    assert not batchnorms(model)
    model.train()
    ours = loss_and_grads(model, clip_loss, frames, labels, noise, teacher_forced)
    loop = loss_and_grads(model, training_one_step, frames, labels, noise, teacher_forced)
    assert_same(ours, loop)


@pytest.mark.parametrize("teacher_forced", [True, False], ids=["teacher_forced", "free_running"])
def test_per_frame_statistics_at_batch_1_are_the_templates_step(teacher_forced: bool) -> None:
    frames, labels, noise = make_inputs(seed=5)
    frames, labels, noise = frames[:1], labels[:1] * torch.linspace(0.1, 1.0, LENGTH).view(1, LENGTH, 1, 1, 1), \
        noise[:LENGTH - 1]
    model = make_model()
    model.train()
    loop = loss_and_grads(model, training_one_step, frames, labels, noise, teacher_forced)
    per_frame = loss_and_grads(model, functools.partial(clip_loss, per_frame_labels=True), frames, labels, noise,
                               teacher_forced)
    # The bias of the convolution before the BatchNorm has a gradient of exactly 0 (the
    # normalisation subtracts it again): both hold rounding noise there, at its own scale.
    for _, _, _, grads in (loop, per_frame):
        noise_level = grads.pop("label_transformation.1.bias").abs().max()
        assert noise_level < 1e-3 * grads["label_transformation.1.weight"].abs().max()
    assert_same(per_frame, loop)
    # Not vacuous: the clip's statistics (train_label_norm="clip") give another loss.
    ours = loss_and_grads(model, clip_loss, frames, labels, noise, teacher_forced)
    assert not torch.allclose(ours[0], loop[0], rtol=1e-3)


def test_per_frame_statistics_feed_the_running_ones_their_average() -> None:
    frames, labels, noise = make_inputs(seed=4)
    model = make_model()
    model.train()
    bn = batchnorms(model)[0]
    bn.momentum = 1.0  # running stats := this call's statistics
    clip_loss(model, frames, labels, True, 1.0, noise, per_frame_labels=True)
    with torch.no_grad():
        pad, conv = model.label_transformation[0], model.label_transformation[1]
        pre_bn = conv(pad(labels[:, 1:].flatten(0, 1)))
    torch.testing.assert_close(bn.running_mean, pre_bn.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(bn.running_var, pre_bn.var(dim=(2, 3)).mean(dim=0), rtol=1e-4, atol=1e-6)


def test_batched_statistics_are_over_all_steps() -> None:
    """The running statistics the batched step feeds are those of all B*(T-1) label images."""
    frames, labels, noise = make_inputs(seed=4)
    model = make_model()
    model.train()
    bn = batchnorms(model)[0]
    bn.momentum = 1.0  # running stats := this call's batch statistics
    clip_loss(model, frames, labels, True, 1.0, noise)
    with torch.no_grad():
        pad, conv = model.label_transformation[0], model.label_transformation[1]
        pre_bn = conv(pad(labels[:, 1:].flatten(0, 1)))
    torch.testing.assert_close(bn.running_mean, pre_bn.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-6)
