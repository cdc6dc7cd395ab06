"""The model's structure against the assignment spec, and the CVAE's maths."""

import math

import pytest
import torch
import torch.nn as nn

from lab4.layers import ConvFFN, DepthConv, DepthConvBlock, ResidualBlock, cat_channels, flatten_steps
from lab4.model import (Gaussian_Predictor, Label_Encoder, RGB_Encoder, VideoCVAE, kl_between_gaussians,
                        kl_to_standard_normal, reparameterize)
from lab4.rollout import rollout


def conv(in_ch, out_ch, k, groups=1):
    return in_ch // groups * out_ch * k * k + out_ch


def res(i, o):
    return conv(i, o, 3) + conv(o, o, 3) + (conv(i, o, 1) if i != o else 0)


def dcb(i, o):
    depth = conv(i, i, 1) + conv(i, i, 3, groups=i) + conv(i, o, 1) + (conv(i, o, 1) if i != o else 0)
    ffn = conv(o, 4 * o, 1) + conv(2 * o, o, 1)
    return depth + ffn


def spec_parameter_count(F=128, L=32, N=12, D=192):
    """Counted by hand from the module list in shared/lab4-spec.md."""
    rgb = res(3, F // 8) + dcb(F // 8, F // 8) + res(F // 8, F // 4) + dcb(F // 4, F // 4) \
        + res(F // 4, F // 2) + dcb(F // 2, F // 2) + conv(F // 2, F, 3)
    label = conv(3, L // 2, 7) + 2 * (L // 2) + res(L // 2, L)
    gauss = res(F + L, N // 4) + dcb(N // 4, N // 4) + res(N // 4, N // 2) + dcb(N // 2, N // 2) \
        + res(N // 2, N) + conv(N, 2 * N, 1)
    C = F + L + N
    fusion = dcb(C, C) + res(C, C // 4) + dcb(C // 4, C // 2) + res(C // 2, C // 2) + dcb(C // 2, D // 2) \
        + conv(D // 2, D, 1)
    gen = dcb(D, D) + res(D, D // 2) + dcb(D // 2, D // 2) + res(D // 2, D // 4) + dcb(D // 4, D // 4) \
        + res(D // 4, D // 8) + dcb(D // 8, D // 8) + conv(D // 8, 3, 1)
    return rgb + label + gauss + fusion + gen


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_parameter_count_matches_the_spec_at_default_sizes():
    model = VideoCVAE()
    assert count(model) == spec_parameter_count()
    assert 1.5e6 < count(model) < 1.7e6  # "about 1.6 M parameters"


@pytest.mark.parametrize("sizes", [(32, 16, 12, 48), (16, 8, 4, 16)])
def test_parameter_count_matches_the_spec_at_other_sizes(sizes):
    assert count(VideoCVAE(*sizes)) == spec_parameter_count(*sizes)


def test_module_structure_and_channels():
    model = VideoCVAE()
    kinds = [type(m).__name__ for m in model.frame_transformation]
    assert kinds == ["ResidualBlock", "DepthConvBlock", "ResidualBlock", "DepthConvBlock", "ResidualBlock",
                     "DepthConvBlock", "Conv2d"]
    assert [model.frame_transformation[i].conv1.out_channels for i in (0, 2, 4)] == [16, 32, 64]
    assert model.frame_transformation[-1].out_channels == 128
    assert [type(m).__name__ for m in model.label_transformation] == [
        "ReflectionPad2d", "Conv2d", "BatchNorm2d", "LeakyReLU", "ResidualBlock"]
    assert model.label_transformation[1].kernel_size == (7, 7)
    assert model.label_transformation[3].negative_slope == 1.0  # the template's LeakyReLU(True)
    gauss = model.Gaussian_Predictor
    assert gauss[0].conv1.in_channels == 160 and gauss[0].conv1.out_channels == 3
    assert gauss[-1].in_channels == 12 and gauss[-1].out_channels == 24
    fusion = model.Decoder_Fusion
    assert fusion[0].block[0].conv1[0].in_channels == 172 and fusion[-1].out_channels == 192
    assert [type(m).__name__ for m in model.Generator] == ["DepthConvBlock", "ResidualBlock"] * 3 + [
        "DepthConvBlock", "Conv2d"]
    assert model.Generator[-1].out_channels == 3
    # Full resolution throughout: stride 1 everywhere, no pooling or upsampling.
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            assert m.stride == (1, 1)
        assert not isinstance(m, (nn.MaxPool2d, nn.AvgPool2d, nn.Upsample, nn.ConvTranspose2d))


def test_blocks_follow_the_spec():
    block = ResidualBlock(8, 16)
    assert block.conv1.kernel_size == (3, 3) and isinstance(block.skip, nn.Conv2d)
    assert isinstance(ResidualBlock(8, 8).skip, nn.Identity)
    depth = DepthConv(8, 8)
    assert depth.depth_conv.groups == 8 and depth.depth_conv.kernel_size == (3, 3)
    assert isinstance(depth.adaptor, nn.Identity) and isinstance(DepthConv(8, 16).adaptor, nn.Conv2d)
    ffn = ConvFFN(8)
    assert ffn.conv.out_channels == 32 and ffn.conv_out.in_channels == 16
    assert isinstance(DepthConvBlock(4, 8).block[1], ConvFFN)
    x = torch.randn(2, 8, 32, 64)
    assert ffn(x).shape == x.shape


def test_shapes_through_every_path():
    model = VideoCVAE(16, 8, 4, 16).eval()
    frames = torch.rand(3, 3, 32, 64)
    frame_feat = model.encode_frames(frames)
    label_feat = model.encode_labels(frames)
    assert frame_feat.shape == (3, 16, 32, 64) and label_feat.shape == (3, 8, 32, 64)
    mu, logvar = model.posterior(frame_feat, label_feat)
    assert mu.shape == logvar.shape == (3, 4, 32, 64)
    image = model.to_image(model.decode(frame_feat, label_feat, mu))
    assert image.shape == (3, 3, 32, 64) and image.min() >= 0 and image.max() <= 1


def test_output_mapping():
    raw = torch.tensor([-2.0, 0.5, 3.0])
    clamp, sigmoid = VideoCVAE(16, 8, 4, 16), VideoCVAE(16, 8, 4, 16, output="sigmoid")
    assert clamp.to_image(raw).tolist() == [0.0, 0.5, 1.0]
    assert torch.equal(clamp.fit_output(raw), raw)  # the loss sees the raw output, as in the template
    assert torch.allclose(sigmoid.to_image(raw), torch.sigmoid(raw))
    with pytest.raises(ValueError, match="output"):
        VideoCVAE(output="tanh")


def test_logvar_is_clamped():
    gauss = Gaussian_Predictor(8, 4)
    with torch.no_grad():
        gauss[-1].bias.fill_(1e4)
    _, logvar = gauss(torch.zeros(1, 4, 8, 8), torch.zeros(1, 4, 8, 8))
    assert torch.isfinite(logvar.exp()).all()


def test_reparameterization_statistics():
    torch.manual_seed(0)
    mu = torch.full((200_000,), 1.5)
    logvar = torch.full((200_000,), math.log(0.25))  # sigma = 0.5
    z = reparameterize(mu, logvar)
    assert abs(z.mean().item() - 1.5) < 0.01
    assert abs(z.std().item() - 0.5) < 0.01
    noise = torch.randn(4)
    assert torch.allclose(reparameterize(torch.zeros(4), torch.zeros(4), noise), noise)


def test_reparameterization_passes_gradients():
    mu = torch.zeros(5, requires_grad=True)
    logvar = torch.zeros(5, requires_grad=True)
    reparameterize(mu, logvar).sum().backward()
    assert mu.grad is not None and torch.allclose(mu.grad, torch.ones(5))
    assert logvar.grad is not None


def test_kl_against_hand_computation():
    mu = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [math.log(0.5), 0.0]])
    # KL per element = 0.5 * (sigma^2 + mu^2 - 1 - log sigma^2)
    by_hand = 0.5 * ((1 + 0 - 1 - 0) + (2 + 1 - 1 - math.log(2)) + (0.5 + 4 - 1 - math.log(0.5)) + (1 + 1 - 1 - 0))
    assert kl_to_standard_normal(mu, logvar, batch_size=2).item() == pytest.approx(by_hand / 2, rel=1e-6)
    assert kl_to_standard_normal(torch.zeros(3, 4), torch.zeros(3, 4), 3).item() == 0.0


def test_label_encoder_and_gaussian_shapes_at_default_sizes():
    assert Label_Encoder(3, 32)(torch.rand(2, 3, 32, 64)).shape == (2, 32, 32, 64)
    assert RGB_Encoder(3, 128)(torch.rand(1, 3, 32, 64)).shape == (1, 128, 32, 64)


@pytest.mark.parametrize("sizes", [(24, 8, 4, 24), (32, 16, 12, 48)])
def test_identity_init_starts_as_repeat_the_previous_frame(sizes):
    """init="identity": the untrained model outputs its previous frame exactly, whatever the
    label and z, its posterior is the prior, and every parameter still gets a gradient."""
    torch.manual_seed(0)
    model = VideoCVAE(*sizes, init="identity")
    template = VideoCVAE(*sizes)
    assert count(model) == count(template)
    prev = torch.rand(2, 3, 32, 64)
    labels, z = torch.rand(2, 3, 32, 64), torch.randn(2, sizes[2], 32, 64)
    prev_feat, label_feat = model.encode_frames(prev), model.encode_labels(labels)
    out = model.to_image(model.decode(prev_feat, label_feat, z))
    torch.testing.assert_close(out, prev, rtol=0, atol=1e-6)
    mu, logvar = model.posterior(prev_feat, label_feat)
    assert mu.abs().max() == 0 and logvar.abs().max() == 0
    # The default init does not copy: the frame is lost on the way through.
    assert (template.to_image(template.decode(template.encode_frames(prev), label_feat, z))
            - prev).abs().mean() > 0.1
    # Training moves away from the identity: a few optimiser steps towards a target that
    # differs from the previous frame, and every parameter gets a gradient (the zeroed
    # convolutions pass gradients on once they have moved).
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(4):
        optimizer.zero_grad()
        mu, logvar = model.posterior(model.encode_frames(prev), model.encode_labels(labels))
        raw = model.decode(model.encode_frames(prev), model.encode_labels(labels), reparameterize(mu, logvar))
        ((model.fit_output(raw) - prev.flip(-1)) ** 2).mean().add(kl_to_standard_normal(mu, logvar, 2)).backward()
        optimizer.step()
    moved = [name for name, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not moved, f"parameters that got no gradient: {moved}"
    with pytest.raises(ValueError, match="init"):
        VideoCVAE(init="zeros")
    with pytest.raises(ValueError, match="F_dim"):
        VideoCVAE(16, 8, 4, 16, init="identity")  # F_dim/8 = 2 channels cannot carry RGB


@pytest.mark.parametrize("prior", ["fixed", "learned"])
def test_zero_kl_init_starts_the_kl_at_zero_and_keeps_every_other_weight(prior):
    """init="zero-kl": from the same seed the template's weights but for the Gaussian predictors'
    output convs, which start at zero, so the posterior (and a learned prior) is N(0, I) and the
    KL 0; the first update moves them off it."""
    torch.manual_seed(0)
    template = VideoCVAE(16, 8, 4, 16, prior=prior)
    torch.manual_seed(0)
    model = VideoCVAE(16, 8, 4, 16, init="zero-kl", prior=prior)
    expected = {"Gaussian_Predictor.6.weight", "Gaussian_Predictor.6.bias"}
    if prior == "learned":
        expected |= {"Prior_Predictor.6.weight", "Prior_Predictor.6.bias"}
    theirs, ours = template.state_dict(), model.state_dict()
    assert {k for k in ours if not torch.equal(ours[k], theirs[k])} == expected
    assert all(ours[k].abs().max() == 0 for k in expected)
    frame, labels = torch.rand(2, 3, 32, 64), torch.rand(2, 3, 32, 64)
    mu, logvar = model.posterior(model.encode_frames(frame), model.encode_labels(labels))
    assert kl_to_standard_normal(mu, logvar, 2).item() == 0.0
    mu, logvar = template.posterior(template.encode_frames(frame), template.encode_labels(labels))
    assert kl_to_standard_normal(mu, logvar, 2).item() > 1.0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    mu, logvar = model.posterior(model.encode_frames(frame), model.encode_labels(labels))
    raw = model.decode(model.encode_frames(frame), model.encode_labels(labels), reparameterize(mu, logvar))
    ((model.fit_output(raw) - frame) ** 2).mean().add(kl_to_standard_normal(mu, logvar, 2)).backward()
    optimizer.step()
    assert model.Gaussian_Predictor[-1].weight.abs().max() > 0


# ---------------------------------------------------------------------------------------
# The learned prior (prior="learned")
# ---------------------------------------------------------------------------------------

def gaussian_count(F=128, L=32, N=12):
    return res(F + L, N // 4) + dcb(N // 4, N // 4) + res(N // 4, N // 2) + dcb(N // 2, N // 2) \
        + res(N // 2, N) + conv(N, 2 * N, 1)


def test_learned_prior_adds_one_gaussian_predictor_and_nothing_else():
    torch.manual_seed(0)
    fixed = VideoCVAE(16, 8, 4, 16)
    torch.manual_seed(0)
    learned = VideoCVAE(16, 8, 4, 16, prior="learned")
    assert not hasattr(fixed, "Prior_Predictor") and not fixed.learned_prior
    assert type(learned.Prior_Predictor) is Gaussian_Predictor
    assert count(learned) == spec_parameter_count(16, 8, 4, 16) + gaussian_count(16, 8, 4)
    fixed_state, learned_state = fixed.state_dict(), learned.state_dict()
    extra = [k for k in learned_state if k not in fixed_state]
    assert extra and all(k.startswith("Prior_Predictor.") for k in extra)
    assert list(fixed_state) == [k for k in learned_state if k not in extra]
    # Built last: from the same seed, the template modules start from the same weights.
    for name, tensor in fixed_state.items():
        assert torch.equal(tensor, learned_state[name]), name
    with pytest.raises(RuntimeError, match="fixed"):
        fixed.prior(torch.zeros(1, 16, 32, 64), torch.zeros(1, 8, 32, 64))
    with pytest.raises(ValueError, match="prior"):
        VideoCVAE(prior="flow")


def test_kl_between_gaussians_against_torch_distributions():
    gen = torch.Generator().manual_seed(0)
    mu_q, mu_p = torch.randn(3, 4, 5, 6, generator=gen), torch.randn(3, 4, 5, 6, generator=gen)
    logvar_q, logvar_p = torch.randn(3, 4, 5, 6, generator=gen), torch.randn(3, 4, 5, 6, generator=gen)
    q = torch.distributions.Normal(mu_q, torch.exp(0.5 * logvar_q))
    p = torch.distributions.Normal(mu_p, torch.exp(0.5 * logvar_p))
    expected = torch.distributions.kl_divergence(q, p).sum() / 3
    torch.testing.assert_close(kl_between_gaussians(mu_q, logvar_q, mu_p, logvar_p, batch_size=3), expected)


def test_kl_between_gaussians_against_hand_computation():
    mu_q, logvar_q = torch.tensor([1.0, 0.0, -1.0]), torch.tensor([0.0, math.log(2.0), math.log(0.5)])
    mu_p, logvar_p = torch.tensor([0.0, 2.0, -1.0]), torch.tensor([math.log(4.0), 0.0, math.log(0.5)])
    # KL per element = log(sigma_p / sigma_q) + (sigma_q^2 + (mu_q - mu_p)^2) / (2 sigma_p^2) - 1/2
    by_hand = (math.log(2.0) + (1 + 1) / 8 - 0.5) \
        + (math.log(1 / math.sqrt(2.0)) + (2 + 4) / 2 - 0.5) \
        + (0.0 + (0.5 + 0) / 1 - 0.5)  # equal Gaussians: 0
    assert kl_between_gaussians(mu_q, logvar_q, mu_p, logvar_p, batch_size=1).item() == pytest.approx(by_hand, rel=1e-6)
    assert kl_between_gaussians(mu_q, logvar_q, mu_p, logvar_p, batch_size=2).item() == pytest.approx(by_hand / 2,
                                                                                                    rel=1e-6)


def test_kl_between_gaussians_to_standard_normal_is_the_template_kl():
    gen = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(2, 4, 8, 8, generator=gen), torch.randn(2, 4, 8, 8, generator=gen)
    zeros = torch.zeros_like(mu)
    torch.testing.assert_close(kl_between_gaussians(mu, logvar, zeros, zeros, 2), kl_to_standard_normal(mu, logvar, 2))


@pytest.mark.usefixtures("one_thread")
def test_identity_init_starts_the_learned_prior_at_the_standard_normal():
    """init="identity" zeroes the prior predictor's output conv too: p(z | x_{t-1}, p_t) starts
    as N(0, I), and training moves it (every one of its parameters gets a gradient)."""
    torch.manual_seed(0)
    model = VideoCVAE(24, 8, 4, 24, init="identity", prior="learned")
    assert model.Prior_Predictor[-1].weight.abs().max() == 0 and model.Prior_Predictor[-1].bias.abs().max() == 0
    prev, frame, labels = torch.rand(2, 3, 32, 64), torch.rand(2, 3, 32, 64), torch.rand(2, 3, 32, 64)
    mu_p, logvar_p = model.prior(model.encode_frames(prev), model.encode_labels(labels))
    assert mu_p.abs().max() == 0 and logvar_p.abs().max() == 0
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(6):
        optimizer.zero_grad()
        prev_feat, label_feat = model.encode_frames(prev), model.encode_labels(labels)
        mu, logvar = model.posterior(model.encode_frames(frame), label_feat)
        mu_p, logvar_p = model.prior(prev_feat, label_feat)
        raw = model.decode(prev_feat, label_feat, reparameterize(mu, logvar))
        kl = kl_between_gaussians(mu, logvar, mu_p, logvar_p, 2)
        ((model.fit_output(raw) - frame) ** 2).mean().add(kl).backward()
        optimizer.step()
    still = [name for name, p in model.Prior_Predictor.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert not still, f"prior parameters that got no gradient: {still}"


def one_step(model, first, labels, eps):
    """The first generated frame, by hand: z = mu_p + sigma_p * eps from the previous frame and label."""
    prev_feat, label_feat = model.encode_frames(first), model.encode_labels(labels[:, 1], per_frame=True)
    mu_p, logvar_p = model.prior(prev_feat, label_feat)
    return model.to_image(model.decode(prev_feat, label_feat, mu_p + eps * torch.exp(0.5 * logvar_p)))


@pytest.mark.usefixtures("one_thread")
def test_rollout_samples_from_the_learned_prior():
    torch.manual_seed(0)
    model = VideoCVAE(16, 8, 4, 16, prior="learned").eval()
    gen = torch.Generator().manual_seed(3)
    first, labels = torch.rand(2, 3, 32, 64, generator=gen), torch.rand(2, 4, 3, 32, 64, generator=gen)
    with torch.no_grad():  # a prior far from N(0, I), so that using it shows
        model.Prior_Predictor[-1].bias[:4].fill_(0.7)
        model.Prior_Predictor[-1].bias[4:].fill_(-1.0)

    # "zero": z = mu_p; deterministic, and generator-free.
    zero = rollout(model, first, labels, z_mode="zero")
    assert torch.equal(zero, rollout(model, first, labels, z_mode="zero"))
    with torch.no_grad():
        torch.testing.assert_close(zero[:, 1], one_step(model, first, labels, torch.zeros(2, 4, 32, 64)))
        # ... and it follows the prior's mean: moving it moves the rollout.
        model.Prior_Predictor[-1].bias[:4].fill_(-0.7)
    assert not torch.allclose(zero, rollout(model, first, labels, z_mode="zero"), atol=1e-3)

    # "prior": z = mu_p + sigma_p * eps, with eps the generator's draw.
    sampled = rollout(model, first, labels, z_mode="prior", generator=torch.Generator().manual_seed(7))
    eps = torch.randn((2, 4, 32, 64), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        torch.testing.assert_close(sampled[:, 1], one_step(model, first, labels, eps))
    again = rollout(model, first, labels, z_mode="prior", generator=torch.Generator().manual_seed(7))
    assert torch.equal(sampled, again)

    # "mean": the average of the decoded samples of each step.
    mean = rollout(model, first, labels, z_mode="mean", samples=3, generator=torch.Generator().manual_seed(7))
    eps = torch.randn((6, 4, 32, 64), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        decoded = one_step(model, first.repeat_interleave(3, 0), labels.repeat_interleave(3, 0), eps)
    torch.testing.assert_close(mean[:, 1], decoded.unflatten(0, (2, 3)).mean(dim=1))


def test_the_rollout_carries_a_change_on_down_the_chain():
    """Each prediction is the next step's previous frame: changing the label of step 2 changes
    frame 2 and every frame after it."""
    torch.manual_seed(0)
    model = VideoCVAE(16, 8, 4, 16).eval()
    first, labels = torch.rand(2, 3, 32, 64), torch.rand(2, 5, 3, 32, 64)
    changed = labels.clone()
    changed[:, 2] = torch.rand(2, 3, 32, 64)
    a = rollout(model, first, labels, z_mode="zero")
    b = rollout(model, first, changed, z_mode="zero")
    assert torch.equal(a[:, :2], b[:, :2])
    assert not torch.equal(a[:, 2], b[:, 2]) and not torch.equal(a[:, 4], b[:, 4])


def test_layout_helpers_keep_channels_last_and_change_no_value():
    """flatten_steps and cat_channels give what flatten(0, 1) and torch.cat give, laid out channels_last
    when their input is, so that a channels_last model's next convolution has nothing to convert."""
    cl = torch.channels_last
    feats = torch.randn(2 * 5, 8, 4, 6).contiguous(memory_format=cl).unflatten(0, (2, 5))  # (B, T, C, H, W)
    for part in (feats[:, 1:], feats[:, :-1], feats[:, :1].expand(-1, 4, -1, -1, -1)):
        flat = flatten_steps(part)
        assert torch.equal(flat, part.flatten(0, 1))
        assert flat.is_contiguous(memory_format=cl)
    nchw = torch.randn(3, 8, 4, 6, 5)
    assert torch.equal(flatten_steps(nchw), nchw.flatten(0, 1)) and flatten_steps(nchw).is_contiguous()

    features = torch.randn(3, 8, 4, 6).contiguous(memory_format=cl)
    noise = torch.randn(3, 2, 4, 6)  # NCHW, as torch.randn draws it
    joined = cat_channels([features, noise])
    assert torch.equal(joined, torch.cat([features, noise], dim=1)) and joined.is_contiguous(memory_format=cl)
    assert not torch.cat([features, noise], dim=1).is_contiguous(memory_format=cl)  # what the helper avoids
    plain = cat_channels([features.contiguous(), noise])
    assert plain.is_contiguous() and torch.equal(plain, joined)


# ---------------------------------------------------------------------------------------
# The learned background (background="learned")
# ---------------------------------------------------------------------------------------

@pytest.mark.usefixtures("one_thread")
def test_learned_background_is_one_bias_per_pixel_on_the_generators_output():
    """background="learned" adds one weight per pixel and colour, at zero, after the Generator and
    before the output mapping; the template's modules and their initial weights are unchanged."""
    torch.manual_seed(0)
    template = VideoCVAE(16, 8, 4, 16, output="sigmoid")
    torch.manual_seed(0)
    model = VideoCVAE(16, 8, 4, 16, output="sigmoid", background="learned")
    assert template.background is None and "background" not in template.state_dict()
    assert count(model) == count(template) + 3 * 32 * 64
    state = model.state_dict()
    assert [k for k in state if k not in template.state_dict()] == ["background"]
    assert state["background"].shape == (1, 3, 32, 64) and state["background"].abs().max() == 0
    for name, tensor in template.state_dict().items():
        assert torch.equal(tensor, state[name]), name

    gen = torch.Generator().manual_seed(1)
    prev, labels = torch.rand(2, 3, 32, 64, generator=gen), torch.rand(2, 3, 32, 64, generator=gen)
    z = torch.randn(2, 4, 32, 64, generator=gen)
    with torch.no_grad():
        prev_feat, label_feat = model.encode_frames(prev), model.encode_labels(labels)
        assert torch.equal(model.decode(prev_feat, label_feat, z), template.decode(prev_feat, label_feat, z))
        pattern = torch.randn(1, 3, 32, 64, generator=gen)
        model.background.copy_(pattern)
        torch.testing.assert_close(model.decode(prev_feat, label_feat, z),
                                   template.decode(prev_feat, label_feat, z) + pattern)

    # It learns: one update moves every one of its weights.
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    before = model.background.detach().clone()
    loss = ((model.to_image(model.decode(model.encode_frames(prev), model.encode_labels(labels), z)) - prev) ** 2)
    loss.mean().backward()
    optimizer.step()
    assert (model.background.detach() != before).all()
    with pytest.raises(ValueError, match="background"):
        VideoCVAE(background="median")
