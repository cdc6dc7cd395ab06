"""lab4's checkpoints against the assignment template's own module code, both ways (issue 25).

Below is a copy of the template's blocks (modules/layers.py) and modules (modules/modules.py) of the
NYCU DLP 2024 Lab 4 "Conditional VAE for video prediction", compacted: the same classes, attribute
names, nesting, creation order and forward passes, with the arguments the template never uses
(stride 2, depth_kernel) left out and its `reparameterize` TODO written out. `VAE_Model` holds the
five modules as the template's Trainer (and Tester.py's Test_model) does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from lab4 import cli
from lab4.config import make_config
from lab4.data import load_test
from lab4.device import to_float_images
from lab4.layers import LEGACY_BLOCK_KEYS
from lab4.model import VideoCVAE
from lab4.predict import load_trained, run_config
from lab4.rollout import rollout
from lab4.train import train

# ----- the template's modules/layers.py -----


class ResidualBlock(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, kernel_size=3, padding=1)
        self.leaky_relu = nn.LeakyReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_ch, out_ch, kernel_size=3, padding=1)
        self.skip = nn.Conv2d(in_ch, out_ch, kernel_size=1) if in_ch != out_ch else None

    def forward(self, x):
        out = self.leaky_relu(self.conv2(self.leaky_relu(self.conv1(x))))
        return out + (self.skip(x) if self.skip is not None else x)


class DepthConvBlock(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.block = nn.Sequential(DepthConv(in_ch, out_ch), ConvFFN(out_ch))

    def forward(self, x):
        return self.block(x)


class ConvFFN(nn.Module):
    def __init__(self, in_ch, slope=0.1):
        super().__init__()
        internal_ch = in_ch * 2
        self.conv = nn.Conv2d(in_ch, internal_ch * 2, 1)
        self.conv_out = nn.Conv2d(internal_ch, in_ch, 1)
        self.relu = nn.LeakyReLU(negative_slope=slope)

    def forward(self, x):
        x1, x2 = self.conv(x).chunk(2, 1)
        return x + self.conv_out(x1 * self.relu(x2))


class DepthConv(nn.Module):
    def __init__(self, in_ch, out_ch, slope=0.01):
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_ch, in_ch, 1), nn.LeakyReLU(negative_slope=slope))
        self.depth_conv = nn.Conv2d(in_ch, in_ch, 3, padding=1, groups=in_ch)
        self.conv2 = nn.Conv2d(in_ch, out_ch, 1)
        self.adaptor = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else None

    def forward(self, x):
        identity = self.adaptor(x) if self.adaptor is not None else x
        return self.conv2(self.depth_conv(self.conv1(x))) + identity


# ----- the template's modules/modules.py -----


class Generator(nn.Sequential):
    def __init__(self, input_nc, output_nc):
        super().__init__(
            DepthConvBlock(input_nc, input_nc), ResidualBlock(input_nc, input_nc // 2),
            DepthConvBlock(input_nc // 2, input_nc // 2), ResidualBlock(input_nc // 2, input_nc // 4),
            DepthConvBlock(input_nc // 4, input_nc // 4), ResidualBlock(input_nc // 4, input_nc // 8),
            DepthConvBlock(input_nc // 8, input_nc // 8), nn.Conv2d(input_nc // 8, 3, 1))


class RGB_Encoder(nn.Sequential):
    def __init__(self, in_chans, out_chans):
        super().__init__(
            ResidualBlock(in_chans, out_chans // 8), DepthConvBlock(out_chans // 8, out_chans // 8),
            ResidualBlock(out_chans // 8, out_chans // 4), DepthConvBlock(out_chans // 4, out_chans // 4),
            ResidualBlock(out_chans // 4, out_chans // 2), DepthConvBlock(out_chans // 2, out_chans // 2),
            nn.Conv2d(out_chans // 2, out_chans, 3, padding=1))


class Label_Encoder(nn.Sequential):
    def __init__(self, in_chans, out_chans, norm_layer=nn.BatchNorm2d):
        super().__init__(
            nn.ReflectionPad2d(3), nn.Conv2d(in_chans, out_chans // 2, kernel_size=7, padding=0),
            norm_layer(out_chans // 2), nn.LeakyReLU(True), ResidualBlock(out_chans // 2, out_chans))


class Gaussian_Predictor(nn.Sequential):
    def __init__(self, in_chans=48, out_chans=96):
        super().__init__(
            ResidualBlock(in_chans, out_chans // 4), DepthConvBlock(out_chans // 4, out_chans // 4),
            ResidualBlock(out_chans // 4, out_chans // 2), DepthConvBlock(out_chans // 2, out_chans // 2),
            ResidualBlock(out_chans // 2, out_chans), nn.LeakyReLU(True),
            nn.Conv2d(out_chans, out_chans * 2, kernel_size=1))

    def reparameterize(self, mu, logvar):
        return mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)

    def forward(self, img, label):
        mu, logvar = torch.chunk(super().forward(torch.cat([img, label], dim=1)), 2, dim=1)
        return self.reparameterize(mu, logvar), mu, logvar


class Decoder_Fusion(nn.Sequential):
    def __init__(self, in_chans=48, out_chans=96):
        super().__init__(
            DepthConvBlock(in_chans, in_chans), ResidualBlock(in_chans, in_chans // 4),
            DepthConvBlock(in_chans // 4, in_chans // 2), ResidualBlock(in_chans // 2, in_chans // 2),
            DepthConvBlock(in_chans // 2, out_chans // 2), nn.Conv2d(out_chans // 2, out_chans, 1, 1))

    def forward(self, img, label, parm):
        return super().forward(torch.cat([img, label, parm], dim=1))


class VAE_Model(nn.Module):
    """The modules of the template's Trainer.py VAE_Model (its loss and optimiser left out)."""

    def __init__(self, F_dim=128, L_dim=32, N_dim=12, D_out_dim=192):
        super().__init__()
        self.frame_transformation = RGB_Encoder(3, F_dim)
        self.label_transformation = Label_Encoder(3, L_dim)
        self.Gaussian_Predictor = Gaussian_Predictor(F_dim + L_dim, N_dim)
        self.Decoder_Fusion = Decoder_Fusion(F_dim + L_dim + N_dim, D_out_dim)
        self.Generator = Generator(input_nc=D_out_dim, output_nc=3)


# ----- the tests -----

DEFAULT, SMOKE = (128, 32, 12, 192), (16, 8, 4, 16)


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Small tensors: one thread is as fast, and the machine may be busy."""


def shapes(module: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(key, tuple(value.shape)) for key, value in module.state_dict().items()]


@pytest.mark.parametrize("sizes", [DEFAULT, SMOKE], ids=["default", "smoke"])
def test_state_dict_is_the_templates_key_for_key(sizes):
    torch.manual_seed(0)
    template = VAE_Model(*sizes)
    torch.manual_seed(0)
    ours = VideoCVAE(*sizes)
    assert shapes(ours) == shapes(template)  # the same keys, in the same order, of the same shapes
    # Built in the template's order, the same seed draws the same initial weights.
    theirs = template.state_dict()
    assert all(torch.equal(value, theirs[key]) for key, value in ours.state_dict().items())


def test_a_checkpoint_of_the_older_key_layout_still_loads():
    """Runs trained before lab4 took the template's names keep resuming and predicting."""
    model = VideoCVAE(*SMOKE)
    old = {}
    for key, value in model.state_dict().items():
        for before, now in LEGACY_BLOCK_KEYS.items():
            key = key.replace(f".{now}", f".{before}")
        old[key] = value + 1.0 if value.is_floating_point() else value
    assert "frame_transformation.1.0.skip.weight" not in old  # a width-keeping block: no skip conv
    assert "Decoder_Fusion.2.0.skip.weight" in old and "Generator.0.1.conv_in.weight" in old
    fresh = VideoCVAE(*SMOKE)
    fresh.load_state_dict(old, strict=True)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), old.values()))


@pytest.fixture(scope="module", params=["clamp", "sigmoid"])
def template_run(request, tmp_path_factory, tiny_data) -> Path:
    """A short smoke run on the tiny synthetic data, with either output the profiles use."""
    run = tmp_path_factory.mktemp("runs") / f"smoke-{request.param}"
    cfg = make_config("smoke", {"data_root": str(tiny_data), "num_epoch": 1, "partial": 0.25, "val_vi_len": 6,
                                "threads": 1, "output": request.param})
    train(cfg, run, progress=False)
    return run


def exported_template(run: Path, out: Path, capsys) -> tuple[VAE_Model, str]:
    """`lab4 export` of a run, loaded strictly into the template's modules as Tester.py loads it; and
    what export printed for Tester.py."""
    assert cli.main(["export", str(run), "--template", str(out)]) == 0
    payload = torch.load(out, weights_only=True)  # plain tensors only
    assert list(payload) == ["state_dict"]
    template = VAE_Model(*SMOKE)
    template.load_state_dict(payload["state_dict"], strict=True)
    return template, capsys.readouterr().out


def test_an_exported_checkpoint_loads_strictly_into_the_template_and_gives_the_same_outputs(template_run, tmp_path,
                                                                                            capsys):
    template, _ = exported_template(template_run, tmp_path / "export" / "lab4.ckpt", capsys)
    template.eval()  # module by module in eval mode: the weights and the running buffers both carried over
    ours, _, _ = load_trained(template_run, "best", device=torch.device("cpu"))

    torch.manual_seed(1)
    frames, labels, z = torch.rand(2, 3, 32, 64), torch.rand(2, 3, 32, 64), torch.randn(2, SMOKE[2], 32, 64)
    with torch.no_grad():
        frame_feat, label_feat = ours.encode_frames(frames), ours.encode_labels(labels)
        torch.testing.assert_close(frame_feat, template.frame_transformation(frames), rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(label_feat, template.label_transformation(labels), rtol=1e-4, atol=1e-5)
        _, mu, logvar = template.Gaussian_Predictor(frame_feat, label_feat)
        torch.testing.assert_close(ours.posterior(frame_feat, label_feat), (mu, logvar), rtol=1e-4, atol=1e-5)
        raw = template.Generator(template.Decoder_Fusion(frame_feat, label_feat, z))
        torch.testing.assert_close(ours.decode(frame_feat, label_feat, z), raw, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("field, value", [("prior", "learned"), ("background", "learned")])
def test_export_refuses_a_run_whose_modules_are_not_the_templates(tmp_path, capsys, field, value):
    run = tmp_path / "run"
    run.mkdir()
    make_config("smoke", {field: value}).save(run / "config.json")  # refused before any checkpoint is read
    assert cli.main(["export", str(run), "--template", str(tmp_path / "out.ckpt")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(run / "config.json") in err and f"{field}=" in err
    assert not (tmp_path / "out.ckpt").exists()


def run_tester_loop(model: VAE_Model, first: torch.Tensor, labels: torch.Tensor, sigmoid: bool,
                z_seed: int | None = None) -> torch.Tensor:
    """The test loop of the template's Tester.py (Test_model.val_one_step, as students complete it).

    `main` calls `model.eval()`, which Test_model's own `eval(self)` (the loop over the test
    sequences) shadows: the modules stay in training mode, so the Label_Encoder's BatchNorm
    normalises each label by that label's statistics. One sequence at a time (batch 1), one step
    at a time; z = 0, or `torch.randn` per step after `torch.manual_seed(z_seed)`; each frame
    (through the sigmoid export notes for such a run) clamped and fed back as the previous frame.
    """
    assert model.training  # as Tester.py leaves it
    sequences = []
    with torch.no_grad():
        for seq in range(first.shape[0]):
            if z_seed is not None:
                torch.manual_seed(z_seed)
            prev, frames = first[seq:seq + 1], [first[seq:seq + 1]]
            for t in range(1, labels.shape[1]):
                label_feat = model.label_transformation(labels[seq, t][None])
                human_feat_hat = model.frame_transformation(prev)
                z = torch.zeros(1, SMOKE[2], 32, 64) if z_seed is None else torch.randn(1, SMOKE[2], 32, 64)
                out = model.Generator(model.Decoder_Fusion(human_feat_hat, label_feat, z))
                prev = (torch.sigmoid(out) if sigmoid else out).clamp(0, 1)
                frames.append(prev)
            sequences.append(torch.cat(frames))
    return torch.stack(sequences)


def grey_levels(frames: torch.Tensor) -> np.ndarray:
    return np.round(frames.numpy() * 255).astype(int)


def assert_same_frames(ours: np.ndarray, theirs: np.ndarray) -> None:
    """The same frames up to the rounding to 8 bits: lab4 runs channels_last and normalises the labels
    of a whole rollout in one call, the template NCHW one frame at a time, so a value at a rounding
    boundary may land a grey level apart (measured: about 1 pixel in 500,000)."""
    diff = np.abs(ours.astype(int) - theirs)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-4, (diff.max(), (diff > 0).mean())


def test_lab4_predict_gives_the_frames_of_the_templates_tester(template_run, tiny_data, tmp_path, capsys):
    """A trained run's `lab4 predict` (label_norm frame, the default) and its `lab4 export`ed checkpoint
    run through Tester.py's loop give the same frames, for either output, z = 0 and sampled z alike."""
    template, printed = exported_template(template_run, tmp_path / "lab4.ckpt", capsys)
    sigmoid = run_config(template_run).output == "sigmoid"
    assert ("torch.sigmoid" in printed) == sigmoid and "clamp each generated frame" in printed
    assert "label_norm='frame'" in printed and "the same frames" in printed

    out = tmp_path / "predicted"
    assert cli.main(["predict", str(template_run), "--z", "zero", "--no-gif", "--out", str(out)]) == 0
    predicted = np.load(out / "predictions.npy")
    test = load_test(tiny_data)
    first, labels = to_float_images(test.first_frames, "cpu"), to_float_images(test.labels, "cpu")
    theirs = grey_levels(run_tester_loop(template, first, labels, sigmoid))
    assert predicted.shape == theirs.shape and predicted.shape[1] > 90
    assert_same_frames(predicted, theirs)

    # The comparison is not vacuous: the frames follow the labels far beyond the tolerance ...
    blank = grey_levels(run_tester_loop(template, first[:2], torch.ones_like(labels[:2]), sigmoid))
    assert (np.abs(blank - theirs[:2]) > 1).mean() > 0.01
    # ... and the Tester with its BatchNorm in eval mode (running statistics) gives other frames,
    # which is what `lab4 predict --label-norm running` gives.
    # (A fresh copy: the loops above, in training mode, moved the running buffers, as Tester.py's do.)
    template_running, _ = exported_template(template_run, tmp_path / "lab4.ckpt", capsys)
    template_running.label_transformation.eval()
    running = grey_levels(run_tester_loop(template_running, first, labels, sigmoid))
    assert (np.abs(running - theirs) > 1).mean() > 0.01
    assert cli.main(["predict", str(template_run), "--z", "zero", "--no-gif", "--out", str(out),
                     "--label-norm", "running"]) == 0
    assert_same_frames(np.load(out / "predictions.npy"), running)

    # z from the prior: one sequence, the same seed gives the same draws in both.
    model, _, _ = load_trained(template_run, "best", device=torch.device("cpu"))
    sampled = rollout(model, first[:1], labels[:1], z_mode="prior", generator=torch.Generator().manual_seed(5))
    assert_same_frames(grey_levels(sampled), grey_levels(run_tester_loop(template, first[:1], labels[:1], sigmoid, 5)))


def test_a_template_checkpoint_predicts_through_lab4_predict(template_run, tiny_data, tmp_path, capsys):
    """A checkpoint as the template's Trainer saves it, in a folder without config.json, sized by
    --profile/--set: `lab4 predict` gives the Tester's frames."""
    template, _ = exported_template(template_run, tmp_path / "lab4.ckpt", capsys)
    output = run_config(template_run).output
    ckpt = tmp_path / "epoch=3.ckpt"
    # As the template's Trainer.save writes it (its "optimizer" key holds the weights again).
    torch.save({"state_dict": template.state_dict(), "optimizer": template.state_dict(), "lr": 1e-3, "tfr": 1.0,
                "last_epoch": 3}, ckpt)

    out = tmp_path / "predicted"
    args = ["predict", str(out), "--checkpoint", str(ckpt), "--data", str(tiny_data), "--no-gif"]
    assert cli.main(args + ["--profile", "smoke", "--set", f"output={output}", "--z", "zero"]) == 0
    predicted = np.load(out / "test" / "predictions.npy")
    assert (out / "test" / "submission.csv").is_file()
    test = load_test(tiny_data)
    theirs = run_tester_loop(template, to_float_images(test.first_frames, "cpu"), to_float_images(test.labels, "cpu"),
                         sigmoid=output == "sigmoid")
    assert_same_frames(predicted, grey_levels(theirs))
    # Sized by a profile with a learned background (quick's): the file holds the template's modules only.
    out_background = tmp_path / "predicted-background"
    assert cli.main(["predict", str(out_background)] + args[2:] + ["--profile", "smoke", "--set", f"output={output}",
                                                                  "--set", "background=learned", "--z", "zero"]) == 0
    assert np.array_equal(np.load(out_background / "test" / "predictions.npy"), predicted)

    # Sizes that do not fit: one line naming the file and the first key that does not fit.
    capsys.readouterr()
    assert cli.main(args + ["--set", "F_dim=32"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(ckpt) in err and "'frame_transformation.0.conv1.weight'" in err
