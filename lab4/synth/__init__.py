"""A synthetic stand-in for the Lab 4 data: one dancer in a bright studio, in the real layout.

``generate_dataset`` writes frames and OpenPose-style labels exactly where the real
Kaggle data keeps them, so the same loader reads both::

    train/train_img/frame000000.png ...   train/train_label/frame000000.png ...
    val/val_img/...                       val/val_label/...
    test/test_img/<s>/frame000000.png     only the first frame of sequence s (as the real data)
    test/test_label/<s>/frame%06d.png     every label of sequence s
    test/test_gt/<s>/frame%06d.png        every true frame of sequence s (the real data has none)
    lab4_synth.json                       manifest, written last: its presence means "complete"

How a video is made: a choreography (a sequence of dance moves with cross-faded joint
angles, a tempo and an amplitude) drives a 3-D stick figure built from body
proportions; its 18 OpenPose keypoints, projected to the image, give both the label
(``lab4.synth.pose.draw_skeleton``) and the rendered body (filled limbs drawn 8x larger and
box-filtered down), composited over a studio background that is computed once per video. In the
`studio` style the labels show the keypoints as a pose estimator reports them (``estimator``:
jitter, limbs missing for a few frames, left-right swaps), drawn as faint as the footage's
(``pose.draw_footage_label``), and the studio has a textured wall and
floor with sharp-edged fittings: what makes real footage slower to learn (``pace``).

Every video draws from its own random stream, derived from (seed, split, video index),
so the output is byte-identical however many worker processes share the work, and the
validation and test videos (streams of their own) show dancers, studios and
choreographies that differ from every training video's.

The modules, in the order a video is made: ``sizes`` (frame geometry, dataset sizes and
styles), ``streams`` (the random streams), ``look`` (the dancer's appearance and the studio
background), ``choreography`` (moves as joint angles over time), ``body`` (the 3-D figure
and its keypoints), ``estimator`` (the labels' errors), ``render`` (one frame's pixels), ``video`` (a planned video) and
``generate`` (jobs, workers and the manifest on disk). Beside them: ``pose`` (OpenPose keypoints and
the skeleton the labels show), ``footage`` (`python -m lab4 data-stats`: a dataset's look measured as
the real footage's is) and ``pace`` (`python -m lab4 pace`: how fast a dataset is learned, beside the
footage).
"""

from __future__ import annotations

from lab4.synth.body import Figure, build_figure
from lab4.synth.choreography import (BLEND_BEATS, POSE_PARAMS, STAGES, Move, Stage, Style, evaluate_choreography,
                                     plan_choreography, sample_style)  # fmt: skip
from lab4.synth.generate import (FRAME_NAME, GENERATOR_VERSION, MANIFEST_NAME, PARTIAL_MARKER, SPLIT_FOLDERS,
                                 generate_dataset)  # fmt: skip
from lab4.synth.look import Appearance, Light, render_background, sample_appearance, studio_appearance
from lab4.synth.sizes import (DEFAULT_SIZE, DEFAULT_STYLE, FPS, FRAME_H, FRAME_W, SIZES, STYLES, SizeSpec, check_style,
                              describe, size_spec, sizes_help)  # fmt: skip
from lab4.synth.video import Video, plan_video, render_video

__all__ = [
    "BLEND_BEATS",
    "DEFAULT_SIZE",
    "DEFAULT_STYLE",
    "FPS",
    "FRAME_H",
    "FRAME_NAME",
    "FRAME_W",
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "PARTIAL_MARKER",
    "POSE_PARAMS",
    "SIZES",
    "SPLIT_FOLDERS",
    "STAGES",
    "STYLES",
    "Appearance",
    "Figure",
    "Light",
    "Move",
    "SizeSpec",
    "Stage",
    "Style",
    "Video",
    "build_figure",
    "check_style",
    "describe",
    "evaluate_choreography",
    "generate_dataset",
    "plan_choreography",
    "plan_video",
    "render_background",
    "render_video",
    "sample_appearance",
    "sample_style",
    "size_spec",
    "sizes_help",
    "studio_appearance",
]
