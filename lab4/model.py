"""The Lab 4 conditional VAE, module for module as the assignment's template builds it.

Every feature map stays at the full 32 x 64 frame resolution: all convolutions have
stride 1, nothing pools or upsamples. Read top to bottom: the five modules (made of the
blocks in lab4.layers), then `VideoCVAE`, which wires them into the posterior (training) and
prior (generation) paths.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from lab4.config import CHOICES
from lab4.data.layout import FRAME_H, FRAME_W
from lab4.layers import SLOPE, ConvFFN, DepthConv, DepthConvBlock, ResidualBlock, cat_channels, conv1x1, conv3x3

# Clamp on logvar before exp(): a stray large logvar would overflow exp() in fp16 and
# blow up the KL; [-30, 20] leaves every reasonable variance untouched.
LOGVAR_MIN, LOGVAR_MAX = -30.0, 20.0


class RGB_Encoder(nn.Sequential):
    """Frame (3 channels) -> F feature channels."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(
            ResidualBlock(in_ch, out_ch // 8),
            DepthConvBlock(out_ch // 8, out_ch // 8),
            ResidualBlock(out_ch // 8, out_ch // 4),
            DepthConvBlock(out_ch // 4, out_ch // 4),
            ResidualBlock(out_ch // 4, out_ch // 2),
            DepthConvBlock(out_ch // 2, out_ch // 2),
            conv3x3(out_ch // 2, out_ch),
        )


class Label_Encoder(nn.Sequential):
    """Pose image (3 channels) -> L feature channels."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_ch, out_ch // 2, kernel_size=7),
            nn.BatchNorm2d(out_ch // 2),
            # The template writes nn.LeakyReLU(True): True lands in negative_slope, so this
            # is the identity. Kept, because the assignment says not to change the modules.
            nn.LeakyReLU(True),
            ResidualBlock(out_ch // 2, out_ch),
        )

    def forward(self, labels: torch.Tensor, per_frame: bool = False) -> torch.Tensor:
        """per_frame: the BatchNorm normalises each label frame by that frame's own statistics.

        That is what BatchNorm in training mode computes on a batch of one frame, which is how
        the template's Tester.py generates (it never enters eval mode). The labels are almost
        all white, so the normalised channels' variance is tiny (about 0.001 on real footage)
        and which statistics divide them moves a result by several dB. In training mode the
        running statistics then follow the per-frame ones (their average over the frames).
        """
        if not per_frame:
            return super().forward(labels)
        pad, conv, norm, *rest = self
        track = norm.training and norm.track_running_stats
        momentum = norm.momentum
        if track:
            norm.num_batches_tracked.add_(1)
            if momentum is None:  # a cumulative average, as BatchNorm keeps one
                momentum = 1.0 / float(norm.num_batches_tracked)
        x = F.instance_norm(conv(pad(labels)), norm.running_mean if track else None,
                            norm.running_var if track else None, norm.weight, norm.bias,
                            use_input_stats=True, momentum=momentum or 0.0, eps=norm.eps)
        for module in rest:
            x = module(x)
        return x


class Gaussian_Predictor(nn.Sequential):
    """[frame features, label features] -> (mu, logvar), each N x H x W."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(
            ResidualBlock(in_ch, out_ch // 4),
            DepthConvBlock(out_ch // 4, out_ch // 4),
            ResidualBlock(out_ch // 4, out_ch // 2),
            DepthConvBlock(out_ch // 2, out_ch // 2),
            ResidualBlock(out_ch // 2, out_ch),
            nn.LeakyReLU(True),  # identity, as in the template (see Label_Encoder)
            conv1x1(out_ch, 2 * out_ch),
        )

    def forward(self, frame_feat: torch.Tensor, label_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = super().forward(cat_channels([frame_feat, label_feat])).chunk(2, dim=1)
        return mu, logvar.clamp(LOGVAR_MIN, LOGVAR_MAX)


class Decoder_Fusion(nn.Sequential):
    """[previous-frame features, label features, z] -> D channels."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__(
            DepthConvBlock(in_ch, in_ch),
            ResidualBlock(in_ch, in_ch // 4),
            DepthConvBlock(in_ch // 4, in_ch // 2),
            ResidualBlock(in_ch // 2, in_ch // 2),
            DepthConvBlock(in_ch // 2, out_ch // 2),
            conv1x1(out_ch // 2, out_ch),
        )

    def forward(self, prev_feat: torch.Tensor, label_feat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return super().forward(cat_channels([prev_feat, label_feat, z]))


class Generator(nn.Sequential):
    """D channels -> RGB frame (before the output mapping to [0, 1])."""

    def __init__(self, in_ch: int, out_ch: int = 3):
        super().__init__(
            DepthConvBlock(in_ch, in_ch),
            ResidualBlock(in_ch, in_ch // 2),
            DepthConvBlock(in_ch // 2, in_ch // 2),
            ResidualBlock(in_ch // 2, in_ch // 4),
            DepthConvBlock(in_ch // 4, in_ch // 4),
            ResidualBlock(in_ch // 4, in_ch // 8),
            DepthConvBlock(in_ch // 8, in_ch // 8),
            conv1x1(in_ch // 8, out_ch),
        )


def init_identity(model: nn.Module) -> None:
    """Start the CVAE as the trivial baseline: the untrained model repeats the previous frame.

    With PyTorch's default init (what the template gets) each convolution shrinks the
    variance of what passes through it about threefold; along the ~20 convolutions between
    the previous frame and the output the frame all but vanishes, and a small CPU budget is
    spent learning to copy the static background, never getting to the motion. Here:
    - the last convolution of every residual, depthwise and feed-forward branch starts at
      zero, so each block starts as its skip (as in Fixup, Zhang et al. 2019, and the
      zero-initialised residual branches of Goyal et al. 2017);
    - the convolutions on the skip path (1x1 skips, the encoder's last conv, the fusion's
      and generator's output convs) start as identities on their first channels
      (`nn.init.dirac_`), which carries the previous frame's RGB from the encoder through
      the fusion (its first input channels) to the output;
    - the output conv of every Gaussian predictor (the posterior's, and the learned
      prior's when there is one) starts at zero: mu = 0, logvar = 0, so both start as
      N(0, I), the template's prior, and the KL between them starts at 0;
    - every other convolution is He-initialised for its LeakyReLU.
    So with the `clamp` output the untrained model outputs exactly its previous frame, and
    training learns the change. The modules are the template's; only the starting weights
    differ.
    """
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, a=SLOPE, nonlinearity="leaky_relu")
            nn.init.zeros_(module.bias)
    on_path: list[nn.Conv2d] = []
    at_zero: list[nn.Conv2d] = []
    for module in model.modules():
        if isinstance(module, (ResidualBlock, DepthConv)):
            at_zero.append(module.conv2)
            # The template names the skip `skip` in a ResidualBlock and `adaptor` in a DepthConv.
            skip = module.skip if isinstance(module, ResidualBlock) else module.adaptor
            if isinstance(skip, nn.Conv2d):
                on_path.append(skip)
        elif isinstance(module, ConvFFN):
            at_zero.append(module.conv_out)
        elif isinstance(module, (RGB_Encoder, Decoder_Fusion, Generator)):
            on_path.append(module[-1])
    for conv in on_path:
        nn.init.dirac_(conv.weight)
    for conv in at_zero:
        nn.init.zeros_(conv.weight)
    init_zero_kl(model)


def init_zero_kl(model: nn.Module) -> None:
    """Start every Gaussian predictor (the posterior's, and the learned prior's when there is one)
    at N(0, I): its output convolution at zero, so mu = 0 and logvar = 0 and the KL starts at 0.

    With PyTorch's default init the posterior starts a little off N(0, I) at every one of the
    N x 32 x 64 latent elements, and the template's KL sums them: about 1,800 averaged over the
    first 20 updates of `quick`, 2,400 in Cyclical's first cycle (the KL weight near 0 lets it
    grow), against a reconstruction term below 1; a Cyclical run at a CPU budget is slow to recover
    from it (docs/results.md). Everything else keeps its default init.
    """
    for module in model.modules():
        if isinstance(module, Gaussian_Predictor):
            nn.init.zeros_(module[-1].weight)
            nn.init.zeros_(module[-1].bias)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    """z = mu + eps * sigma with eps ~ N(0, I): a sample that gradients flow through."""
    eps = torch.randn_like(mu) if noise is None else noise
    return mu + eps * torch.exp(0.5 * logvar)


def kl_to_standard_normal(mu: torch.Tensor, logvar: torch.Tensor, batch_size: int) -> torch.Tensor:
    """KL(N(mu, sigma^2) || N(0, I)) summed over every latent element, divided by the batch size.

    As the template computes it: -0.5 * sum(1 + logvar - mu^2 - exp(logvar)) / batch_size.
    """
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / batch_size


def kl_between_gaussians(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor,
                         batch_size: int) -> torch.Tensor:
    """KL(N(mu_q, sigma_q^2) || N(mu_p, sigma_p^2)) of two diagonal Gaussians, summed over every
    latent element and divided by the batch size (as `kl_to_standard_normal`, which it equals
    for mu_p = 0, logvar_p = 0).

    Per element: 0.5 * (log sigma_p^2 - log sigma_q^2 + (sigma_q^2 + (mu_q - mu_p)^2) / sigma_p^2 - 1).
    """
    per_element = logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1
    return 0.5 * torch.sum(per_element) / batch_size


class VideoCVAE(nn.Module):
    """The five template modules plus the output mapping (and, with prior="learned", a sixth;
    with background="learned", one more tensor of weights).

    prior="fixed" is the template: p(z) = N(0, I). prior="learned" adds `Prior_Predictor`,
    a second Gaussian_Predictor (same structure, F+L -> N) that predicts p(z_t | x_{t-1}, p_t)
    from the previous frame's features (the same ones the decoder fuses) and the label's,
    as the learned prior of SVG-LP (Denton & Fergus, 2018).

    background="none" is the template. background="learned" adds `background`, a bias per pixel
    and colour (1 x 3 x 32 x 64) on the Generator's output. Every template convolution has
    stride 1 and shares its weights over the frame, so the template can draw a fixed camera's
    studio, the same at every pixel position in every frame, only by carrying it over from the
    previous frame through its narrowest layers (width/8 channels); a bias per pixel holds it
    in the weights and leaves the convolutions the performer.

    Shapes: frames and labels are (batch, 3, 32, 64) floats in [0, 1]. Each method works on
    any leading batch, so the trainer can call them on (batch x time) at once.
    """

    def __init__(self, F_dim: int = 128, L_dim: int = 32, N_dim: int = 12, D_out_dim: int = 192,
                 output: str = "clamp", init: str = "template", prior: str = "fixed", background: str = "none"):
        super().__init__()
        for name, value in (("output", output), ("init", init), ("prior", prior), ("background", background)):
            if value not in CHOICES[name]:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, CHOICES[name]))}, got {value!r}")
        if init == "identity" and min(F_dim, D_out_dim) < 24:
            raise ValueError(f"init='identity' needs F_dim and D_out_dim of at least 24 (got {F_dim}, {D_out_dim}): "
                             "the narrowest layers, width/8, must carry the frame's 3 colour channels")
        self.N_dim = N_dim
        self.output = output
        self.frame_transformation = RGB_Encoder(3, F_dim)
        self.label_transformation = Label_Encoder(3, L_dim)
        self.Gaussian_Predictor = Gaussian_Predictor(F_dim + L_dim, N_dim)
        self.Decoder_Fusion = Decoder_Fusion(F_dim + L_dim + N_dim, D_out_dim)
        self.Generator = Generator(D_out_dim)
        self.learned_prior = prior == "learned"
        if self.learned_prior:
            # Built last, so that the template modules draw the same initial weights from a
            # given seed whichever the prior; with "fixed" the module list (and state_dict)
            # is the template's.
            self.Prior_Predictor = Gaussian_Predictor(F_dim + L_dim, N_dim)
        # At zero, so the untrained model's output is the template's (and init="identity" still
        # starts as repeat-the-previous-frame); it draws no random numbers, so the modules' weights
        # from a given seed are the same either way.
        self.background = nn.Parameter(torch.zeros(1, 3, FRAME_H, FRAME_W)) if background == "learned" else None
        if init == "identity":
            init_identity(self)
        elif init == "zero-kl":
            init_zero_kl(self)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        return self.frame_transformation(frames)

    def encode_labels(self, labels: torch.Tensor, per_frame: bool = False) -> torch.Tensor:
        """per_frame: each label normalised by its own statistics (see Label_Encoder.forward)."""
        return self.label_transformation(labels, per_frame)

    def posterior(self, frame_feat: torch.Tensor, label_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """q(z | x_t, p_t): (mu, logvar) from the current frame's and label's features."""
        return self.Gaussian_Predictor(frame_feat, label_feat)

    def prior(self, prev_feat: torch.Tensor, label_feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """p(z | x_{t-1}, p_t): (mu, logvar) from the previous frame's and the label's features.

        Only with prior="learned"; the fixed prior N(0, I) has nothing to predict.
        """
        if not self.learned_prior:
            raise RuntimeError("prior='fixed': p(z) is N(0, I), there is no Prior_Predictor to call")
        return self.Prior_Predictor(prev_feat, label_feat)

    def decode(self, prev_feat: torch.Tensor, label_feat: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Fuse [previous frame, label, z] and generate the frame, before the output mapping."""
        raw = self.Generator(self.Decoder_Fusion(prev_feat, label_feat, z))
        return raw if self.background is None else raw + self.background

    def fit_output(self, raw: torch.Tensor) -> torch.Tensor:
        """What the reconstruction loss sees.

        With `clamp` that is the raw output, as in the template (its generator has no
        output activation); clamping inside the loss would pass no gradient to pixels
        outside [0, 1] and could leave them stuck there.
        """
        raw = raw.float()
        return torch.sigmoid(raw) if self.output == "sigmoid" else raw

    def to_image(self, raw: torch.Tensor) -> torch.Tensor:
        """Every frame that leaves the model (fed back, shown, scored) lies in [0, 1]."""
        return self.fit_output(raw).clamp(0.0, 1.0)
