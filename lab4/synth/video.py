"""One video: its look, its choreography and the figure in every frame; the pixels on demand."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from lab4.synth import estimator, pose
from lab4.synth.body import Figure, build_figure
from lab4.synth.choreography import STAGES, Move, Style, evaluate_choreography, plan_choreography, sample_style
from lab4.synth.look import Appearance, render_background, sample_appearance, studio_appearance
from lab4.synth.render import composite
from lab4.synth.sizes import FPS, FRAME_H, FRAME_W, check_style
from lab4.synth.streams import CHOREOGRAPHY_STREAM, LABEL_STREAM, stream

LABEL_SUPERSAMPLE = 8  # labels are drawn this many times larger, then box-filtered (the variety style)


@dataclass
class Video:
    """A planned video: its look, its choreography and the figure in every frame."""

    appearance: Appearance
    style: Style
    moves: list[Move]
    figure: Figure
    background: np.ndarray  # float32 (H, W, 3)
    style_name: str = "variety"
    label_keypoints: np.ndarray | None = None  # (n, 18, 2) what the labels show; None: the figure's own

    def __len__(self) -> int:
        return len(self.figure.yaw)

    def frame(self, i: int) -> np.ndarray:
        """Frame i as uint8 RGB (H, W, 3)."""
        return composite(self.background, self.appearance, self.figure, i)

    def label(self, i: int) -> Image.Image:
        """The pose label of frame i, as OpenPose would draw it (on white at the footage's size for `studio`)."""
        if self.style_name == "studio":
            points = self.figure.keypoints if self.label_keypoints is None else self.label_keypoints
            return pose.draw_footage_label(points[i], (FRAME_W, FRAME_H))
        return pose.draw_skeleton(self.figure.keypoints[i], (FRAME_W, FRAME_H), supersample=LABEL_SUPERSAMPLE)


def plan_video(seed: int, split: str, index: int, n_frames: int, style: str = "variety") -> Video:
    """Video `index` of `split`: everything but the pixels, which `Video.frame` draws.

    In the `studio` style every video shares one performer and studio; only the dance, from the
    video's own stream, differs."""
    check_style(style)
    stage = STAGES[style]
    app = studio_appearance(seed) if style == "studio" else sample_appearance(seed, split, index)
    rng = stream(seed, split, index, CHOREOGRAPHY_STREAM)
    dance = sample_style(rng, stage)
    scale = app.height * FRAME_H
    units_per_width = FRAME_W / scale
    beats = dance.first_beat + np.arange(n_frames) / FPS * dance.bpm / 60.0
    moves = plan_choreography(rng, dance, float(beats[-1]) if n_frames else 0.0, units_per_width, stage)
    params = evaluate_choreography(moves, beats, units_per_width)
    figure = build_figure(params, app)
    # The studio's labels are an estimator's, with its errors; the variety style keeps perfect ones.
    found = (estimator.estimate(figure.keypoints, stream(seed, split, index, LABEL_STREAM), estimator.STUDIO_ERRORS)
             if style == "studio" else None)
    return Video(app, dance, moves, figure, render_background(app), style, found)


def render_video(seed: int, split: str, index: int, n_frames: int,
                 style: str = "variety") -> tuple[np.ndarray, np.ndarray]:
    """Frames and labels of one video as uint8 arrays (n, H, W, 3), without touching disk."""
    video = plan_video(seed, split, index, n_frames, style)
    frames = np.stack([video.frame(i) for i in range(n_frames)])
    labels = np.stack([np.asarray(video.label(i)) for i in range(n_frames)])
    return frames, labels
