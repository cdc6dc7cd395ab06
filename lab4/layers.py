"""The template's building blocks (its modules/layers.py): residual and depthwise-separable
convolution blocks with a gated feed-forward, all at stride 1; and the layout helpers that keep
a channels_last model's tensors channels_last.

Attribute names and nesting are the template's own (`block`, `conv1` as a Sequential, `adaptor`,
`conv`), so that a state_dict's keys are the template's and a checkpoint moves between the two
(lab4.template)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# The template's activations: LeakyReLU(0.01) in residual and depthwise blocks, 0.1 as the
# gate of the ConvFFN.
SLOPE = 0.01
FFN_SLOPE = 0.1


def _channels_innermost(x: torch.Tensor) -> bool:
    """A channels_last feature map (or a slice of one): stride 1 along the channels."""
    return x.shape[-3] > 1 and x.stride(-3) == 1


def cat_channels(parts: list[torch.Tensor]) -> torch.Tensor:
    """torch.cat along channels, channels_last when any part is.

    torch.cat of mixed layouts (channels_last features beside NCHW noise) comes out NCHW,
    and the next convolution of a channels_last model converts it back: a full extra copy
    of the widest tensor of the step. Converting the thin NCHW parts first costs far less.
    """
    if any(p.dim() == 4 and _channels_innermost(p) for p in parts):
        parts = [p.contiguous(memory_format=torch.channels_last) for p in parts]
    return torch.cat(parts, dim=1)


def flatten_steps(x: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B * T, C, H, W), as flatten(0, 1), keeping a channels_last layout.

    flatten() of a time slice has to copy, and copies into NCHW, which the next
    convolution of a channels_last model converts back; this copies in channels_last.
    """
    if _channels_innermost(x):
        return x.permute(0, 1, 3, 4, 2).flatten(0, 1).permute(0, 3, 1, 2)
    return x.flatten(0, 1)


def conv3x3(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)


def conv1x1(in_ch: int, out_ch: int) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=1)


class ResidualBlock(nn.Module):
    """3x3 conv, LeakyReLU, 3x3 conv, LeakyReLU, plus a skip (1x1 conv when widths differ)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv1 = conv3x3(in_ch, out_ch)
        self.conv2 = conv3x3(out_ch, out_ch)
        self.skip = conv1x1(in_ch, out_ch) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.leaky_relu(self.conv1(x), SLOPE)
        out = F.leaky_relu(self.conv2(out), SLOPE)
        return out + self.skip(x)


class DepthConv(nn.Module):
    """1x1 conv + LeakyReLU, depthwise 3x3 conv, 1x1 conv to out_ch, plus a skip (`adaptor`)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        # A Sequential, as the template's (keys conv1.0.*); created in the template's order, so a
        # seed draws the same initial weights.
        self.conv1 = nn.Sequential(conv1x1(in_ch, in_ch), nn.LeakyReLU(SLOPE))
        self.depth_conv = nn.Conv2d(in_ch, in_ch, kernel_size=3, padding=1, groups=in_ch)
        self.conv2 = conv1x1(in_ch, out_ch)
        # The template holds None when the widths agree; Identity has no weights either.
        self.adaptor = conv1x1(in_ch, out_ch) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.depth_conv(self.conv1(x)))
        return out + self.adaptor(x)


class ConvFFN(nn.Module):
    """Gated feed-forward: 1x1 conv c -> 4c, halves a, b; a * LeakyReLU(b); 1x1 conv 2c -> c."""

    def __init__(self, ch: int):
        super().__init__()
        self.conv = conv1x1(ch, 4 * ch)
        self.conv_out = conv1x1(2 * ch, ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.conv(x).chunk(2, dim=1)
        return x + self.conv_out(value * F.leaky_relu(gate, FFN_SLOPE))


# Checkpoints written before lab4 took the template's names (DepthConvBlock a Sequential, DepthConv's
# first conv bare and its skip `skip`, ConvFFN's first conv `conv_in`): their keys inside a block, and
# the template's for the same weights. Runs trained then still resume and predict.
LEGACY_BLOCK_KEYS = {
    "0.conv1.": "block.0.conv1.0.",
    "0.depth_conv.": "block.0.depth_conv.",
    "0.conv2.": "block.0.conv2.",
    "0.skip.": "block.0.adaptor.",
    "1.conv_in.": "block.1.conv.",
    "1.conv_out.": "block.1.conv_out.",
}


class DepthConvBlock(nn.Module):
    """DepthConv then ConvFFN, held in `block` as the template holds them (keys block.0.*, block.1.*)."""

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.block = nn.Sequential(DepthConv(in_ch, out_ch), ConvFFN(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:  # type: ignore[override]
        # Renames an earlier lab4 checkpoint's keys before they load (load_state_dict hands each
        # module its own copy of the dict, the caller's is untouched); the template's keys pass as
        # they are. By key, not by the state_dict's version metadata: the template's own blocks
        # carry the same version as the old ones.
        for key in [key for key in state_dict if key.startswith(prefix)]:
            rest = key[len(prefix):]
            for old, new in LEGACY_BLOCK_KEYS.items():
                if rest.startswith(old):
                    state_dict[prefix + new + rest[len(old):]] = state_dict.pop(key)
                    break
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
