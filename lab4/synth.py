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
(``lab4.pose.draw_skeleton``) and the rendered body (filled limbs drawn 8x larger and
box-filtered down), composited over a studio background that is computed once per video.

Every video draws from its own random stream, derived from (seed, split, video index),
so the output is byte-identical however many worker processes share the work, and the
validation and test videos (streams of their own) show dancers, studios and
choreographies that differ from every training video's.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lab4 import pose
from lab4.data import SYNTH_MANIFEST as MANIFEST_NAME  # the loader reads the training videos' lengths from it

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
# Written when generation starts and removed when it ends: a folder holding it holds an
# interrupted run of ours, which may be wiped and redone without asking for force=True.
PARTIAL_MARKER = "lab4_synth.partial"

FRAME_W = 64
FRAME_H = 32
FPS = 30.0
FRAME_NAME = "frame{:06d}.png"
SPLIT_FOLDERS = ("train", "val", "test")

# Supersampling factors: the body is drawn this many times larger, then box-filtered.
BODY_SUPERSAMPLE = 8
LABEL_SUPERSAMPLE = 8
BACKGROUND_SUPERSAMPLE = 4

_SPLIT_STREAM = {"train": 0, "val": 1, "test": 2}
_STUDIO_STREAM = 3  # the one performer and studio of a `studio` dataset, shared by every split
_APPEARANCE_STREAM = 0
_CHOREOGRAPHY_STREAM = 1


# ---------------------------------------------------------------------------------------
# Dataset sizes
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SizeSpec:
    """How many frames each split gets; train is several videos laid end to end."""

    name: str
    train_videos: tuple[int, ...]  # frames per training video
    val_frames: int
    test_sequences: int
    test_frames: int
    note: str = ""

    @property
    def train_frames(self) -> int:
        return sum(self.train_videos)

    @property
    def total_frames(self) -> int:
        """Distinct frames rendered (each one also gets a label)."""
        return self.train_frames + self.val_frames + self.test_sequences * self.test_frames


def _lab_train_videos(total: int = 23_410, length: int = 400) -> tuple[int, ...]:
    full, rest = divmod(total, length)
    return (length,) * full + ((rest,) if rest else ())


SIZES: dict[str, SizeSpec] = {
    "tiny": SizeSpec("tiny", (64, 64, 64), 96, 5, 96, "for tests"),
    "small": SizeSpec("small", (320,) * 20, 630, 5, 630, "the default, CPU-sized"),
    "lab": SizeSpec("lab", _lab_train_videos(), 630, 5, 630, "the real data's counts"),
}
DEFAULT_SIZE = "small"

# "studio": the real task's shape, one performer in one studio seen by one fixed camera in every
# split, labels drawn as the real ones (faint, thin, on white); val and test are new dances.
# "variety": every video its own dancer, studio and bold labels on black; val/test dancers unseen.
STYLES = ("studio", "variety")
DEFAULT_STYLE = "studio"


def check_style(style: str) -> str:
    if style not in STYLES:
        raise ValueError(f"unknown dataset style {style!r}; valid styles: {', '.join(STYLES)}")
    return style


def size_spec(size: str) -> SizeSpec:
    """The `SizeSpec` named `size`; ValueError listing the valid names otherwise."""
    try:
        return SIZES[size]
    except KeyError:
        raise ValueError(f"unknown dataset size {size!r}; valid sizes: {', '.join(SIZES)}") from None


def describe(size: str) -> dict[str, int]:
    """Frame counts of a dataset size, e.g. for a command-line help text."""
    spec = size_spec(size)
    return {
        "train_frames": spec.train_frames,
        "train_videos": len(spec.train_videos),
        "val_frames": spec.val_frames,
        "test_sequences": spec.test_sequences,
        "test_frames": spec.test_frames,
        "total_frames": spec.total_frames,
    }


def sizes_help() -> str:
    """One line per size: its counts and what it is for."""
    lines = []
    for name, spec in SIZES.items():
        default = ", default" if name == DEFAULT_SIZE else ""
        lines.append(
            f"{name}: {spec.train_frames:,} train frames ({len(spec.train_videos)} videos), "
            f"{spec.val_frames} val, {spec.test_sequences} x {spec.test_frames} test "
            f"({spec.note}{default})"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------
# Random streams and appearance
# ---------------------------------------------------------------------------------------

RGB = tuple[int, int, int]

_SHIRTS: tuple[RGB, ...] = (
    (200, 35, 45), (35, 55, 125), (236, 236, 230), (32, 32, 38), (125, 125, 130),
    (45, 125, 65), (228, 196, 48), (228, 125, 160), (25, 140, 150), (228, 115, 35),
    (112, 55, 140), (95, 150, 210), (150, 35, 60),
)  # fmt: skip
_TROUSERS: tuple[RGB, ...] = (
    (45, 65, 115), (28, 28, 34), (92, 92, 98), (170, 150, 112), (218, 218, 212),
    (70, 48, 36), (32, 46, 82),
)  # fmt: skip
_SKINS: tuple[RGB, ...] = (
    (241, 196, 164), (226, 174, 134), (200, 138, 98), (162, 106, 70), (114, 74, 48), (84, 55, 38),
)  # fmt: skip
_HAIRS: tuple[RGB, ...] = (
    (28, 22, 20), (62, 42, 28), (112, 78, 44), (205, 175, 110), (145, 62, 32), (150, 150, 150),
)  # fmt: skip
_SHOES: tuple[RGB, ...] = ((240, 240, 240), (32, 32, 32), (185, 45, 45), (60, 62, 160), (122, 92, 62))
_HAIR_STYLES = ("short", "long", "bun")
_FLOOR_STYLES = ("grey", "wood", "light")


def _stream(seed: int, split: str, index: int, purpose: int) -> np.random.Generator:
    # One stream per (seed, split, video, purpose): videos are independent of each other
    # and of the order in which workers render them.
    return np.random.default_rng([seed, _SPLIT_STREAM[split], index, purpose])


def _jitter(rng: np.random.Generator, colour: RGB, spread: float) -> RGB:
    values = np.clip(np.asarray(colour, float) + rng.normal(0.0, spread, 3), 0, 255)
    return (int(round(values[0])), int(round(values[1])), int(round(values[2])))


def _scaled(colour: RGB, factor: float) -> RGB:
    # One factor for all channels: a darker or lighter version of the same hue.
    return (int(colour[0] * factor), int(colour[1] * factor), int(colour[2] * factor))


def _mix(a: RGB, b: RGB, weight_b: float) -> RGB:
    return (
        int((1 - weight_b) * a[0] + weight_b * b[0]),
        int((1 - weight_b) * a[1] + weight_b * b[1]),
        int((1 - weight_b) * a[2] + weight_b * b[2]),
    )


def _pick(rng: np.random.Generator, palette: tuple[RGB, ...], spread: float = 10.0) -> RGB:
    return _jitter(rng, palette[int(rng.integers(len(palette)))], spread)


@dataclass(frozen=True)
class Light:
    """A soft ceiling light seen on the wall: position and radius as fractions of the frame height."""

    x: float
    y: float
    radius: float
    strength: float


@dataclass(frozen=True)
class Appearance:
    """Everything about one video that does not move: the dancer's look and the studio."""

    skin: RGB
    hair: RGB
    hair_style: str
    shirt: RGB
    long_sleeves: bool
    trousers: RGB
    shorts: bool
    shoes: RGB
    height: float  # standing height as a fraction of the frame height
    shoulder_half: float  # body proportions, in standing heights
    hip_half: float
    leg_scale: float
    limb_scale: float
    head_scale: float
    wall: RGB
    wall_gradient: float
    floor: RGB
    floor_gradient: float
    horizon: float  # wall/floor boundary, fraction of the frame height
    feet_row: int  # the feet stand on the boundary above this pixel row
    lights: tuple[Light, ...]
    light_tint: RGB
    shadow: float
    reflection: float


def sample_appearance(seed: int, split: str, index: int) -> Appearance:
    """The appearance of video `index` of `split` (deterministic in its arguments)."""
    rng = _stream(seed, split, index, _APPEARANCE_STREAM)
    grey = rng.uniform(188, 226)
    warmth = rng.uniform(-7, 7)
    wall = _jitter(rng, (int(grey + warmth), int(grey), int(grey - warmth)), 2.5)
    floor_style = _FLOOR_STYLES[int(rng.integers(len(_FLOOR_STYLES)))]
    if floor_style == "wood":
        # Varnished wood, muted towards the wall's grey as studio lighting washes it out.
        wood = _scaled((178, 142, 104), rng.uniform(0.85, 1.1))
        floor = _jitter(rng, _mix(wood, _scaled(wall, 0.85), 0.4), 3)
    elif floor_style == "grey":
        floor = _jitter(rng, _scaled(wall, rng.uniform(0.72, 0.86)), 3)
    else:
        floor = _jitter(rng, _scaled(wall, rng.uniform(0.9, 0.97)), 3)
    lights = tuple(
        Light(x=float(rng.uniform(0.1, 1.9)), y=float(rng.uniform(-0.08, 0.12)),
              radius=float(rng.uniform(0.12, 0.3)), strength=float(rng.uniform(22, 55)))
        for _ in range(int(rng.integers(1, 4)))
    )  # fmt: skip
    return Appearance(
        skin=_pick(rng, _SKINS, 6),
        hair=_pick(rng, _HAIRS, 8),
        hair_style=_HAIR_STYLES[int(rng.integers(len(_HAIR_STYLES)))],
        shirt=_pick(rng, _SHIRTS, 14),
        long_sleeves=bool(rng.random() < 0.4),
        trousers=_pick(rng, _TROUSERS, 10),
        shorts=bool(rng.random() < 0.2),
        shoes=_pick(rng, _SHOES, 10),
        height=float(rng.uniform(0.62, 0.78)),
        shoulder_half=float(rng.uniform(0.1, 0.125)),
        hip_half=float(rng.uniform(0.07, 0.09)),
        leg_scale=float(rng.uniform(0.95, 1.05)),
        limb_scale=float(rng.uniform(0.9, 1.2)),
        head_scale=float(rng.uniform(0.92, 1.08)),
        wall=wall,
        wall_gradient=float(rng.uniform(-0.2, 0.02)),
        floor=floor,
        floor_gradient=float(rng.uniform(-0.12, 0.1)),
        horizon=float(rng.uniform(0.7, 0.78)),
        feet_row=int(rng.integers(27, 30)),
        lights=lights,
        light_tint=_jitter(rng, (255, 248, 235), 4),
        shadow=float(rng.uniform(0.2, 0.35)),
        reflection=float(rng.uniform(0.06, 0.16)),
    )


def studio_appearance(seed: int) -> Appearance:
    """The one performer and studio of a `studio` dataset, as the real footage shows them: a pale
    grey wall lit in soft patches by ceiling lights, a lighter floor, and a performer in a dark
    long-sleeved top and dark trousers, about 26 of the 32 rows tall."""
    rng = np.random.default_rng([seed, _STUDIO_STREAM, 0, _APPEARANCE_STREAM])
    grey = rng.uniform(178, 192)
    wall = _jitter(rng, (int(grey), int(grey + 1), int(grey + 3)), 1.5)
    lights = tuple(
        Light(x=float(x + rng.uniform(-0.08, 0.08)), y=float(rng.uniform(-0.06, 0.04)),
              radius=float(rng.uniform(0.16, 0.24)), strength=float(rng.uniform(14, 22)))
        for x in (0.35, 1.0, 1.65)
    )  # fmt: skip
    return Appearance(
        skin=_jitter(rng, (222, 172, 140), 5),
        hair=_jitter(rng, (30, 24, 22), 3),
        hair_style="short",
        shirt=_jitter(rng, (40, 40, 48), 3),
        long_sleeves=True,
        trousers=_jitter(rng, (30, 31, 38), 3),
        shorts=False,
        shoes=_jitter(rng, (26, 26, 28), 2),
        height=0.84,
        shoulder_half=0.105,
        hip_half=0.07,
        leg_scale=1.0,
        limb_scale=1.0,
        head_scale=1.0,
        wall=wall,
        wall_gradient=-0.05,
        floor=_scaled(wall, 1.1),
        floor_gradient=0.04,
        horizon=0.74,
        feet_row=30,
        lights=lights,
        light_tint=(255, 250, 240),
        shadow=0.18,
        reflection=0.04,
    )


# ---------------------------------------------------------------------------------------
# The studio background (once per video)
# ---------------------------------------------------------------------------------------


def _box_down(image: np.ndarray, factor: int) -> np.ndarray:
    h, w = image.shape[0] // factor, image.shape[1] // factor
    return image.reshape(h, factor, w, factor, -1).mean(axis=(1, 3))


def render_background(app: Appearance) -> np.ndarray:
    """The empty studio of a video as float32 RGB in [0, 255], shape (FRAME_H, FRAME_W, 3).

    Rendered 4x larger and averaged down so the wall/floor edge is anti-aliased. Lengths
    are measured in frame heights so that lights stay round on the 2:1 frame.
    """
    s = BACKGROUND_SUPERSAMPLE
    y = ((np.arange(FRAME_H * s) + 0.5) / (FRAME_H * s))[:, None, None]
    x = ((np.arange(FRAME_W * s) + 0.5) / (FRAME_H * s))[None, :, None]
    wall = np.asarray(app.wall, np.float64) * (1.0 + app.wall_gradient * (y - 0.3))
    tint = np.asarray(app.light_tint, np.float64) / 255.0
    floor_glow = np.zeros_like(y * x)
    for light in app.lights:
        blob = np.exp(-((x - light.x) ** 2 + (y - light.y) ** 2) / (2.0 * light.radius**2))
        wall = wall + light.strength * blob * tint
        # A glossy floor shows each light as a soft vertical streak below it.
        streak = np.exp(-((x - light.x) ** 2) / (2.0 * (0.6 * light.radius) ** 2))
        floor_glow = floor_glow + 0.35 * light.strength * streak
    depth = (y - app.horizon) / (1.0 - app.horizon)  # 0 at the wall, 1 at the bottom edge
    floor = np.asarray(app.floor, np.float64) * (1.0 + app.floor_gradient * depth)
    floor = floor + floor_glow * np.exp(-3.0 * depth) * tint
    image = np.where(y < app.horizon, wall, floor)
    # A skirting board: a soft dark line where the wall meets the floor.
    image = image * (1.0 - 0.1 * np.exp(-(((y - app.horizon) * FRAME_H / 0.6) ** 2)))
    # Lens vignetting, so corners are a little darker than the centre, as in real footage.
    aspect = FRAME_W / FRAME_H
    image = image * (1.0 - 0.08 * (((x / aspect) - 0.5) ** 2 * 4.0 + (y - 0.5) ** 2 * 1.5))
    return np.clip(_box_down(image, s), 0.0, 255.0).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Choreography: dance moves as joint angles over time
# ---------------------------------------------------------------------------------------

# Angles in radians. Arms: "abd" swings the segment in the picture plane (0 hanging down,
# pi/2 straight out sideways, pi straight up, negative across the body); "flex" lifts it
# towards the camera. Legs: "hip_abd" spreads the leg sideways, "hip_flex" lifts the
# thigh forward, "knee" bends the shin back. x is the dancer's place across the frame (a
# fraction of its width), x_off a move's sway around it, bounce a hop in standing heights.
POSE_PARAMS: tuple[str, ...] = (
    "x", "x_off", "yaw", "lean", "bow", "bounce", "head_tilt",
    "r_sh_abd", "r_sh_flex", "r_el_abd", "r_el_flex",
    "l_sh_abd", "l_sh_flex", "l_el_abd", "l_el_flex",
    "r_hip_abd", "r_hip_flex", "r_knee",
    "l_hip_abd", "l_hip_flex", "l_knee",
)  # fmt: skip
_REST: dict[str, float] = {
    "r_sh_abd": 0.12, "l_sh_abd": 0.12, "r_sh_flex": 0.05, "l_sh_flex": 0.05,
    "r_el_abd": 0.1, "l_el_abd": 0.1, "r_el_flex": 0.3, "l_el_flex": 0.3,
    "r_hip_abd": 0.05, "l_hip_abd": 0.05,
}  # fmt: skip

BLEND_BEATS = 1.0  # cross-fade between consecutive moves
_WALK_SPEED = 0.7  # standing heights per second, an unhurried walk
_STRIDE = 0.75  # standing heights travelled per full gait cycle


@dataclass(frozen=True)
class Move:
    """One move of a choreography, `start` and `duration` in beats."""

    name: str
    start: float
    duration: float
    amplitude: float
    lead: int  # -1: the dancer's right side leads, +1: the left
    facing: float  # a small turn away from the camera held during the move
    x0: float
    x1: float  # == x0 except for walks

    @property
    def end(self) -> float:
        return self.start + self.duration


@dataclass(frozen=True)
class Stage:
    """Where and how fast a dataset style dances: places across the frame (fractions of its
    width), how often the dancer walks to another one and how far, the tempo range."""

    x_range: tuple[float, float]
    start_x: tuple[float, float]
    walk_chance: float
    min_walk: float
    bpm: tuple[float, float]
    amplitude: tuple[float, float]


STAGES: dict[str, Stage] = {
    "variety": Stage((0.22, 0.78), (0.32, 0.68), 0.6, 0.2, (92, 128), (0.75, 1.1)),
    # The real footage: a dancer who mostly dances on the spot near the middle of the frame, at
    # a pace where consecutive frames differ little (their PSNR is about 42-43 dB).
    "studio": Stage((0.47, 0.53), (0.48, 0.52), 0.1, 0.03, (44, 60), (0.35, 0.5)),
}


@dataclass(frozen=True)
class Style:
    """Per-video dancing style."""

    bpm: float
    amplitude: float
    first_beat: float  # the beat at frame 0: videos start in the middle of a move
    start_x: float


Params = dict[str, np.ndarray]


def _smootherstep(u: np.ndarray) -> np.ndarray:
    # C2-smooth 0 -> 1 ease; f(u) + f(1 - u) == 1, so two cross-faded moves' weights sum to 1.
    u = np.clip(u, 0.0, 1.0)
    return u * u * u * (u * (6.0 * u - 15.0) + 10.0)


def _rise(beats: np.ndarray, period: float) -> np.ndarray:
    """0 -> 1 -> 0 once per `period` beats, starting at 0."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * beats / period)


def _sides(lead: int) -> tuple[str, str]:
    return ("r", "l") if lead < 0 else ("l", "r")


def _set_arm(p: Params, side: str, sh_abd, sh_flex, el_abd, el_flex) -> None:
    p[f"{side}_sh_abd"], p[f"{side}_sh_flex"] = sh_abd, sh_flex
    p[f"{side}_el_abd"], p[f"{side}_el_flex"] = el_abd, el_flex


def _groove(b: np.ndarray, m: Move, p: Params) -> None:
    """Knees dip on every beat, fists pump in front of the chest in turn."""
    a = m.amplitude
    dip = 0.25 * a * _rise(b, 1.0)
    swing = np.sin(np.pi * b)
    for side, sign in (("r", 1.0), ("l", -1.0)):
        p[f"{side}_knee"], p[f"{side}_hip_flex"] = dip, 0.5 * dip
        _set_arm(p, side, 0.35 + 0.1 * sign * swing, 0.3, -(1.7 + 0.6 * a * sign * swing), 0.5)
    p["lean"] = 0.06 * a * swing
    p["head_tilt"] = 0.1 * a * np.sin(np.pi * b + 0.5)


def _arm_wave(b: np.ndarray, m: Move, p: Params) -> None:
    """Arms held out sideways with a wave travelling through them."""
    a = m.amplitude
    for side, phase in (("r", 0.0), ("l", m.lead * np.pi / 2)):
        wave = np.pi * b + phase
        _set_arm(p, side, 1.45 + 0.2 * np.sin(wave), 0.0, 1.5 + 0.8 * a * np.sin(wave - 0.9), 0.0)
        p[f"{side}_knee"] = 0.15 * _rise(b, 1.0)
    p["lean"] = 0.08 * a * np.sin(np.pi * b / 2)


def _arms_up(b: np.ndarray, m: Move, p: Params) -> None:
    """Both arms rise slowly overhead and come down again over four beats, knees bouncing."""
    up = _rise(b, 4.0)
    for side in ("r", "l"):
        lift = 0.2 + 2.35 * m.amplitude * up
        _set_arm(p, side, lift, 0.1, lift + 0.25 * up, 0.1)
        p[f"{side}_knee"] = 0.3 * (1.0 - up)
        p[f"{side}_hip_flex"] = 0.15 * (1.0 - up)


def _step_side(b: np.ndarray, m: Move, p: Params) -> None:
    """Step-touch from side to side, arms opening as the legs open."""
    a = m.amplitude
    p["x_off"] = 0.05 * a * m.lead * np.sin(np.pi * b / 2)
    open_ = np.abs(np.cos(np.pi * b / 2))
    p["lean"] = -0.07 * a * m.lead * np.cos(np.pi * b / 2)
    for side in ("r", "l"):
        p[f"{side}_hip_abd"] = 0.05 + 0.2 * a * open_
        p[f"{side}_knee"] = 0.2 * (1.0 - open_)
        _set_arm(p, side, 0.3 + 0.7 * a * open_, 0.2, 0.6 + 1.2 * a * open_, 0.4)


def _squat(b: np.ndarray, m: Move, p: Params) -> None:
    """Deep knee bends every two beats, arms reaching forward for balance."""
    d = m.amplitude * _rise(b, 2.0)
    for side in ("r", "l"):
        p[f"{side}_hip_flex"], p[f"{side}_knee"], p[f"{side}_hip_abd"] = 0.9 * d, 1.8 * d, 0.05 + 0.35 * d
        _set_arm(p, side, 0.2 + 0.6 * d, 0.2 + 0.9 * d, 0.3 + 0.7 * d, 0.2 + 1.0 * d)
    p["bow"] = 0.25 * d


def _turn(b: np.ndarray, m: Move, p: Params) -> None:
    """A full spin, arms opening on the way round."""
    u = np.clip((b - BLEND_BEATS / 2) / (m.duration - BLEND_BEATS), 0.0, 1.0)
    # The spin lives only where this move has full weight, and it ends at 0 rather than
    # 2*pi so that the cross-fade into the next move does not unwind it.
    spin = np.where(u >= 1.0, 0.0, m.lead * 2.0 * np.pi * _smootherstep(u))
    p["yaw"] = m.facing + spin
    open_ = np.sin(np.pi * u)
    for side in ("r", "l"):
        _set_arm(p, side, 0.2 + 1.0 * m.amplitude * open_, 0.0, 0.4 + 1.1 * m.amplitude * open_, 0.1)
        p[f"{side}_knee"] = 0.12 * (1.0 - open_)


def _disco(b: np.ndarray, m: Move, p: Params) -> None:
    """Disco point: one arm from up-and-out to down-and-across, the other hand on the hip."""
    lead, other = _sides(m.lead)
    reach = _rise(b, 2.0)
    angle = -0.5 + 2.9 * m.amplitude * reach
    _set_arm(p, lead, angle, 0.15, angle + 0.1, 0.15)
    _set_arm(p, other, 0.55, 0.1, -1.4, 0.2)
    p["lean"] = 0.1 * m.amplitude * (reach - 0.5) * (-m.lead)
    p[f"{lead}_knee"] = 0.25 * reach


def _kick(b: np.ndarray, m: Move, p: Params) -> None:
    """Alternate knee lifts (or side kicks), arms out for balance."""
    a = m.amplitude
    wave = np.sin(np.pi * b)
    lifts = {"r": np.maximum(wave, 0.0) ** 2, "l": np.maximum(-wave, 0.0) ** 2}
    side_kick = m.lead > 0
    for side, lift in lifts.items():
        if side_kick:
            p[f"{side}_hip_abd"], p[f"{side}_knee"] = 0.05 + 0.65 * a * lift, 0.3 * lift
        else:
            p[f"{side}_hip_flex"], p[f"{side}_knee"] = 1.2 * a * lift, 1.6 * a * lift
        _set_arm(p, side, 1.2, 0.1, 1.6, 0.1)
    p["lean"] = 0.08 * wave


def _sway(b: np.ndarray, m: Move, p: Params) -> None:
    """Hands in the air, body swaying from side to side."""
    a = m.amplitude
    sway = np.sin(np.pi * b / 2)
    p["lean"] = 0.16 * a * sway
    p["x_off"] = 0.02 * a * sway
    for side in ("r", "l"):
        _set_arm(p, side, 2.3 + 0.25 * sway, 0.1, 2.7 + 0.3 * np.sin(np.pi * b), 0.1)
        p[f"{side}_knee"] = 0.15 * _rise(b, 1.0)


def _jumping_jack(b: np.ndarray, m: Move, p: Params) -> None:
    """Jumping jacks: arms and legs open and close together with a hop."""
    a = m.amplitude
    open_ = _rise(b, 2.0)
    for side in ("r", "l"):
        lift = 0.2 + 2.4 * a * open_
        _set_arm(p, side, lift, 0.0, lift + 0.2, 0.0)
        p[f"{side}_hip_abd"] = 0.05 + 0.3 * a * open_
    p["bounce"] = 0.04 * a * np.sin(np.pi * b) ** 2


def _walk(b: np.ndarray, m: Move, p: Params, units_per_width: float) -> None:
    """Walk to a new place across the frame, turned towards it, legs and arms swinging."""
    u = (b - BLEND_BEATS / 2) / (m.duration - BLEND_BEATS)
    travel = _smootherstep(u)
    p["x"] = m.x0 + (m.x1 - m.x0) * travel
    direction = 1.0 if m.x1 > m.x0 else -1.0
    p["yaw"] = direction * 1.2 + m.facing
    distance = np.abs(p["x"] - m.x0) * units_per_width  # in standing heights
    phase = 2.0 * np.pi * distance / _STRIDE
    uc = np.clip(u, 0.0, 1.0)
    # Gait amplitude follows the speed (smootherstep's slope peaks at 1.875), so the
    # legs come to rest as the dancer stops.
    pace = np.sqrt(np.clip(30.0 * uc**2 * (1.0 - uc) ** 2 / 1.875, 0.0, 1.0))
    swing = np.sin(phase)
    for side, sign in (("r", 1.0), ("l", -1.0)):
        p[f"{side}_hip_flex"] = 0.5 * pace * sign * swing
        p[f"{side}_knee"] = 0.9 * pace * np.maximum(sign * np.cos(phase), 0.0) ** 2
        _set_arm(p, side, 0.12, -0.45 * pace * sign * swing, 0.1, 0.3 - 0.3 * pace * sign * swing)


_DANCE_MOVES: dict[str, Callable[[np.ndarray, Move, Params], None]] = {
    "groove": _groove,
    "arm_wave": _arm_wave,
    "arms_up": _arms_up,
    "step_side": _step_side,
    "squat": _squat,
    "turn": _turn,
    "disco": _disco,
    "kick": _kick,
    "sway": _sway,
    "jumping_jack": _jumping_jack,
}


def sample_style(rng: np.random.Generator, stage: Stage = STAGES["variety"]) -> Style:
    return Style(
        bpm=float(rng.uniform(*stage.bpm)),
        amplitude=float(rng.uniform(*stage.amplitude)),
        first_beat=float(-rng.uniform(0.0, 4.0)),
        start_x=float(rng.uniform(*stage.start_x)),
    )


def plan_choreography(
    rng: np.random.Generator, style: Style, beats_needed: float, units_per_width: float,
    stage: Stage = STAGES["variety"],
) -> list[Move]:
    """Moves covering beats [style.first_beat - blend, beats_needed + blend], back to back.

    Every few moves the dancer walks to another place, so over a video they use the
    whole width of the frame.
    """
    moves: list[Move] = []
    beat = style.first_beat - BLEND_BEATS
    x = style.start_x
    since_walk = int(rng.integers(0, 3))
    previous = ""
    names = list(_DANCE_MOVES)
    while beat < beats_needed + BLEND_BEATS:
        amplitude = style.amplitude * float(rng.uniform(0.85, 1.1))
        lead = int(rng.choice((-1, 1)))
        if since_walk >= 2 and rng.random() < stage.walk_chance:
            target = _walk_target(rng, x, stage)
            seconds = abs(target - x) * units_per_width / _WALK_SPEED
            duration = float(max(3, math.ceil(seconds * style.bpm / 60.0 + BLEND_BEATS)))
            moves.append(Move("walk", beat, duration, amplitude, lead, float(rng.uniform(-0.2, 0.2)), x, target))
            x, since_walk, previous = target, 0, "walk"
        else:
            name = previous
            while name == previous:
                name = names[int(rng.integers(len(names)))]
            duration = float(rng.choice((3, 4))) if name == "turn" else float(rng.choice((4, 6, 8)))
            moves.append(Move(name, beat, duration, amplitude, lead, float(rng.uniform(-0.3, 0.3)), x, x))
            since_walk, previous = since_walk + 1, name
        beat += moves[-1].duration
    return moves


def _walk_target(rng: np.random.Generator, x: float, stage: Stage) -> float:
    lo, hi = stage.x_range
    candidates = [t for t in np.linspace(lo, hi, 25) if abs(t - x) >= stage.min_walk]
    return float(candidates[int(rng.integers(len(candidates)))])


def evaluate_choreography(moves: list[Move], beats: np.ndarray, units_per_width: float) -> Params:
    """The pose parameters at each beat time: every move's angles, cross-faded."""
    total = {name: np.zeros_like(beats) for name in POSE_PARAMS}
    half = BLEND_BEATS / 2
    for move in moves:
        inside = (beats > move.start - half) & (beats < move.end + half)
        if not inside.any():
            continue
        b = beats[inside]
        local = b - move.start
        p: Params = {name: np.full_like(b, _REST.get(name, 0.0)) for name in POSE_PARAMS}
        p["x"] = np.full_like(b, move.x0)
        p["yaw"] = np.full_like(b, move.facing)
        if move.name == "walk":
            _walk(local, move, p, units_per_width)
        else:
            _DANCE_MOVES[move.name](local, move, p)
        weight = _smootherstep((b - (move.start - half)) / BLEND_BEATS) * (
            1.0 - _smootherstep((b - (move.end - half)) / BLEND_BEATS)
        )
        for name in POSE_PARAMS:
            total[name][inside] += weight * p[name]
    return total


# ---------------------------------------------------------------------------------------
# The body: a 3-D stick figure from proportions and joint angles, projected to the image
# ---------------------------------------------------------------------------------------

# Named points of the figure; the first 18 are the OpenPose keypoints in their order.
_POINT_NAMES: tuple[str, ...] = (
    "nose", "neck", "r_sh", "r_el", "r_wr", "l_sh", "l_el", "l_wr",
    "r_hip", "r_knee", "r_ank", "l_hip", "l_knee", "l_ank",
    "r_eye", "l_eye", "r_ear", "l_ear",
    "pelvis", "head", "r_hand", "l_hand", "r_toe", "l_toe", "waist", "crotch", "hair",
)  # fmt: skip
P = {name: i for i, name in enumerate(_POINT_NAMES)}

# Proportions in standing heights (head top to soles is about 0.97).
_TORSO = 0.29
_HEAD_OFFSET = 0.085  # neck to head centre
_HEAD_RX, _HEAD_RY = 0.05, 0.062
_UPPER_ARM, _FOREARM, _HAND = 0.165, 0.145, 0.055
_THIGH, _SHIN, _ANKLE_H, _FOOT = 0.24, 0.235, 0.04, 0.085
_CHEST_DEPTH, _HIP_DEPTH = 0.07, 0.065


@dataclass
class Figure:
    """A video's figure, frame by frame, in output pixels (pixel centres at integers)."""

    xy: np.ndarray  # (n, len(_POINT_NAMES), 2)
    depth: np.ndarray  # (n, len(_POINT_NAMES)) towards the camera, in standing heights
    yaw: np.ndarray  # (n,)
    keypoints: np.ndarray  # (n, 18, 2), NaN where OpenPose would not see the point
    scale: float  # pixels per standing height
    feet_line: float  # image y of the floor contact line
    bounce: np.ndarray  # (n,)


def _direction(side: float, abd: np.ndarray, flex: np.ndarray) -> np.ndarray:
    return np.stack([side * np.sin(abd) * np.cos(flex), -np.cos(abd) * np.cos(flex), np.sin(flex)], axis=-1)


def _tilt(v: np.ndarray, angle: np.ndarray) -> np.ndarray:
    # Rotate in the picture plane so that "up" leans by `angle` towards +x.
    c, s = np.cos(angle)[:, None], np.sin(angle)[:, None]
    x, y, z = v[:, 0:1], v[:, 1:2], v[:, 2:3]
    return np.concatenate([x * c + y * s, -x * s + y * c, z], axis=1)


def _body_points(p: Params, app: Appearance) -> np.ndarray:
    """3-D points (n, K, 3) with the pelvis at the origin: x to the dancer's left (image
    right when facing the camera), y up, z towards the camera."""
    n = len(p["x"])
    lean, bow = p["lean"], p["bow"]
    up = np.stack([np.zeros(n), np.ones(n), np.zeros(n)], axis=1)
    spine = np.stack([np.sin(lean), np.cos(lean) * np.cos(bow), np.cos(lean) * np.sin(bow)], axis=1)
    across = np.stack([np.cos(lean), -np.sin(lean), np.zeros(n)], axis=1)
    forward = np.array([0.0, 0.0, 1.0])
    pts = np.zeros((n, len(_POINT_NAMES), 3))
    neck = _TORSO * spine
    pts[:, P["neck"]] = neck
    pts[:, P["waist"]] = 0.06 * spine
    pts[:, P["crotch"]] = -0.05 * up

    head_up = _tilt(up, lean + p["head_tilt"])
    head_across = _tilt(np.tile([1.0, 0.0, 0.0], (n, 1)), lean + p["head_tilt"])
    rx, ry = _HEAD_RX * app.head_scale, _HEAD_RY * app.head_scale
    head = neck + _HEAD_OFFSET * app.head_scale * head_up
    pts[:, P["head"]] = head
    pts[:, P["nose"]] = head + 0.95 * rx * forward - 0.2 * ry * head_up
    pts[:, P["hair"]] = head - 0.7 * rx * forward - 0.5 * ry * head_up

    for prefix, side in (("r", -1.0), ("l", 1.0)):
        pts[:, P[f"{prefix}_eye"]] = head + side * 0.42 * rx * head_across + 0.2 * ry * head_up + 0.8 * rx * forward
        pts[:, P[f"{prefix}_ear"]] = head + side * rx * head_across - 0.1 * rx * forward
        shoulder = neck + side * app.shoulder_half * across - 0.02 * spine
        upper = _tilt(_direction(side, p[f"{prefix}_sh_abd"], p[f"{prefix}_sh_flex"]), lean)
        lower = _tilt(_direction(side, p[f"{prefix}_el_abd"], p[f"{prefix}_el_flex"]), lean)
        elbow = shoulder + _UPPER_ARM * upper
        wrist = elbow + _FOREARM * lower
        pts[:, P[f"{prefix}_sh"]], pts[:, P[f"{prefix}_el"]] = shoulder, elbow
        pts[:, P[f"{prefix}_wr"]], pts[:, P[f"{prefix}_hand"]] = wrist, wrist + _HAND * lower

        hip = np.tile([side * app.hip_half, 0.0, 0.0], (n, 1))
        abd, flex = p[f"{prefix}_hip_abd"], p[f"{prefix}_hip_flex"]
        knee = hip + _THIGH * app.leg_scale * _direction(side, abd, flex)
        ankle = knee + _SHIN * app.leg_scale * _direction(side, abd, flex - p[f"{prefix}_knee"])
        toe = ankle + np.array([side * 0.3 * _FOOT, -0.7 * _ANKLE_H, 0.95 * _FOOT])
        pts[:, P[f"{prefix}_hip"]], pts[:, P[f"{prefix}_knee"]] = hip, knee
        pts[:, P[f"{prefix}_ank"]], pts[:, P[f"{prefix}_toe"]] = ankle, toe

    # Stand on the lower foot (a squat lowers the body, a kick lifts one foot), then hop.
    sole = np.minimum(pts[:, P["r_ank"], 1], pts[:, P["l_ank"], 1]) - _ANKLE_H
    pts[:, :, 1] -= (sole - p["bounce"])[:, None]
    return pts


def _face_visibility(pts: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Which of the 18 keypoints a pose estimator would find: face points turned away
    from the camera are missed (nose and eyes from behind, the far ear in profile)."""
    n = len(yaw)
    visible = np.ones((n, pose.NUM_KEYPOINTS), dtype=bool)
    facing = np.cos(yaw)
    visible[:, pose.NOSE] = facing > -0.1
    head_depth = _rotated_depth(pts[:, P["head"]], yaw)
    for index, name in ((pose.R_EYE, "r_eye"), (pose.L_EYE, "l_eye"), (pose.R_EAR, "r_ear"), (pose.L_EAR, "l_ear")):
        rel = _rotated_depth(pts[:, P[name]], yaw) - head_depth
        threshold = 0.2 * _HEAD_RX if name.endswith("eye") else -0.5 * _HEAD_RX
        visible[:, index] = rel > threshold
    return visible


def _rotated_depth(points: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    return -points[..., 0] * np.sin(yaw) + points[..., 2] * np.cos(yaw)


def build_figure(p: Params, app: Appearance) -> Figure:
    """Project the figure: turned by yaw about the vertical axis, seen straight on."""
    pts = _body_points(p, app)
    yaw = p["yaw"]
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = pts[..., 0] * c + pts[..., 2] * s
    depth = -pts[..., 0] * s + pts[..., 2] * c
    scale = app.height * FRAME_H
    feet_line = app.feet_row - 0.5
    centre = (p["x"] + p["x_off"]) * FRAME_W - 0.5
    xy = np.stack([centre[:, None] + x * scale, feet_line - pts[..., 1] * scale], axis=-1)
    keypoints = xy[:, : pose.NUM_KEYPOINTS].copy()
    keypoints[~_face_visibility(pts, yaw)] = np.nan
    return Figure(xy, depth, yaw, keypoints, scale, feet_line, p["bounce"])


# ---------------------------------------------------------------------------------------
# Drawing one frame
# ---------------------------------------------------------------------------------------

_HALF_CIRCLE = np.exp(1j * np.linspace(-np.pi / 2, np.pi / 2, 7))


def _capsule(p0: np.ndarray, p1: np.ndarray, r0: float, r1: float) -> list[float]:
    """A limb: a stadium from p0 to p1 with end radii r0 and r1 (a flat xy list for PIL)."""
    a, b = complex(p0[0], p0[1]), complex(p1[0], p1[1])
    length = abs(b - a)
    unit = (b - a) / length if length > 1e-6 else 1.0 + 0.0j
    outline = np.concatenate([b + r1 * unit * _HALF_CIRCLE, a - r0 * unit * _HALF_CIRCLE])
    return np.column_stack([outline.real, outline.imag]).ravel().tolist()


def _shade(colour: RGB, depth: float) -> RGB:
    # Nearer parts a little brighter, farther ones darker: a cheap depth cue that keeps
    # crossing limbs apart.
    f = 1.0 + 0.9 * min(max(depth, -0.12), 0.12)
    return (min(int(colour[0] * f), 255), min(int(colour[1] * f), 255), min(int(colour[2] * f), 255))


@dataclass
class _Painter:
    """Draws the figure of one frame on a supersampled canvas (the person's crop only)."""

    app: Appearance
    scale: float  # output pixels per standing height
    ss: int
    shapes: list[tuple[float, int, Callable[[ImageDraw.ImageDraw], None]]] = field(default_factory=list)

    def px(self, length: float) -> float:
        """A body length in canvas pixels."""
        return length * self.scale * self.ss

    def add(self, depth: float, draw: Callable[[ImageDraw.ImageDraw], None]) -> None:
        self.shapes.append((depth, len(self.shapes), draw))

    def paint(self, draw: ImageDraw.ImageDraw) -> None:
        for _, _, shape in sorted(self.shapes, key=lambda s: (s[0], s[1])):
            shape(draw)


def _limb(painter: _Painter, depth: float, pieces: list[tuple[np.ndarray, np.ndarray, float, float, RGB]]) -> None:
    def draw(d: ImageDraw.ImageDraw) -> None:
        for p0, p1, r0, r1, colour in pieces:
            d.polygon(_capsule(p0, p1, painter.px(r0), painter.px(r1)), fill=_shade(colour, depth) + (255,))

    painter.add(depth, draw)


def _arm_parts(painter: _Painter, q: np.ndarray, z: np.ndarray, prefix: str) -> None:
    app, k = painter.app, painter.app.limb_scale
    sh, el, wr, hand = (q[P[f"{prefix}_{n}"]] for n in ("sh", "el", "wr", "hand"))
    sleeve = app.shirt
    pieces = [(sh, el, 0.026 * k, 0.022 * k, sleeve if app.long_sleeves else app.skin)]
    if not app.long_sleeves:
        pieces.append((sh, sh + 0.5 * (el - sh), 0.031 * k, 0.028 * k, sleeve))
    pieces.append((el, wr, 0.022 * k, 0.018 * k, sleeve if app.long_sleeves else app.skin))
    pieces.append((wr, hand, 0.02 * k, 0.02 * k, app.skin))
    depth = float(z[P[f"{prefix}_sh"]] + z[P[f"{prefix}_el"]] + z[P[f"{prefix}_wr"]]) / 3 + 0.015
    _limb(painter, depth, pieces)


def _leg_parts(painter: _Painter, q: np.ndarray, z: np.ndarray, prefix: str) -> None:
    app, k = painter.app, painter.app.limb_scale
    hip, knee, ankle, toe = (q[P[f"{prefix}_{n}"]] for n in ("hip", "knee", "ank", "toe"))
    if app.shorts:
        pieces = [
            (hip, knee, 0.042 * k, 0.032 * k, app.skin),
            (hip, hip + 0.5 * (knee - hip), 0.052 * k, 0.045 * k, app.trousers),
            (knee, ankle, 0.03 * k, 0.022 * k, app.skin),
        ]
    else:
        pieces = [(hip, knee, 0.05 * k, 0.037 * k, app.trousers), (knee, ankle, 0.035 * k, 0.027 * k, app.trousers)]
    pieces.append((ankle, toe, 0.025, 0.022, app.shoes))
    depth = float(z[P[f"{prefix}_hip"]] + z[P[f"{prefix}_knee"]] + z[P[f"{prefix}_ank"]]) / 3 - 0.01
    _limb(painter, depth, pieces)


def _torso_parts(painter: _Painter, q: np.ndarray, z: np.ndarray, yaw: float) -> None:
    app = painter.app
    neck, waist, crotch, pelvis = q[P["neck"]], q[P["waist"]], q[P["crotch"]], q[P["pelvis"]]
    spine = neck - pelvis
    spine = spine / max(float(np.hypot(*spine)), 1e-6)
    normal = np.array([-spine[1], spine[0]])
    c, s = math.cos(yaw), math.sin(yaw)
    # The torso seen at an angle: half the width of an elliptic cross-section.
    chest = painter.px(math.hypot(app.shoulder_half * c, _CHEST_DEPTH * s))
    hips = painter.px(math.hypot((app.hip_half + 0.03) * c, _HIP_DEPTH * s))
    arm_r = painter.px(0.028 * app.limb_scale)
    depth = float(z[P["neck"]] + z[P["pelvis"]]) / 2
    shirt, trousers = _shade(app.shirt, depth) + (255,), _shade(app.trousers, depth) + (255,)
    inset = max(chest - arm_r, 0.0)

    def band(upper: np.ndarray, upper_half: float, lower: np.ndarray, lower_half: float) -> list[float]:
        corners = (upper + normal * upper_half, upper - normal * upper_half,
                   lower - normal * lower_half, lower + normal * lower_half)  # fmt: skip
        return np.concatenate(corners).tolist()

    def draw(d: ImageDraw.ImageDraw) -> None:
        d.polygon(band(waist, hips, crotch, 0.95 * hips), fill=trousers)
        d.polygon(band(neck, chest, waist, 0.98 * hips), fill=shirt)
        # Round shoulders: a capsule across the top of the shirt.
        d.polygon(_capsule(neck + normal * inset, neck - normal * inset, 1.1 * arm_r, 1.1 * arm_r), fill=shirt)

    painter.add(depth, draw)


def _head_parts(painter: _Painter, q: np.ndarray, z: np.ndarray, yaw: float) -> None:
    app = painter.app
    head, neck = q[P["head"]], q[P["neck"]]
    rx, ry = painter.px(_HEAD_RX * app.head_scale), painter.px(_HEAD_RY * app.head_scale)
    facing, turned = math.cos(yaw), math.sin(yaw)
    depth = float(z[P["head"]]) + 0.02
    skin, hair = _shade(app.skin, depth) + (255,), _shade(app.hair, depth) + (255,)
    # How much of the head is hair: a cap from the front, all of it from behind.
    back = min(max(0.5 - 0.5 * facing, 0.0), 1.0)
    cap_x = head[0] - turned * 0.35 * rx * (1.0 - back)
    cap_y = head[1] - 0.32 * ry * (1.0 - back)
    cap_rx, cap_ry = rx * (1.02 + 0.04 * back), ry * (0.72 + 0.34 * back)
    neck_r = painter.px(0.021 * app.limb_scale)

    if app.hair_style == "long":
        hair_depth = float(z[P["hair"]])
        tail = q[P["hair"]]

        def draw_long(d: ImageDraw.ImageDraw) -> None:
            outline = _capsule(head, tail + (tail - head) * 0.4, rx * 0.95, rx * 0.8)
            d.polygon(outline, fill=_shade(app.hair, hair_depth) + (255,))

        painter.add(hair_depth, draw_long)

    def draw(d: ImageDraw.ImageDraw) -> None:
        d.polygon(_capsule(neck, head, neck_r, neck_r), fill=skin)
        d.ellipse((head[0] - rx, head[1] - ry, head[0] + rx, head[1] + ry), fill=skin)
        d.ellipse((cap_x - cap_rx, cap_y - cap_ry, cap_x + cap_rx, cap_y + cap_ry), fill=hair)
        if app.hair_style == "bun":
            bx, by, br = head[0] - turned * 0.5 * rx, head[1] - 0.95 * ry, 0.5 * rx
            d.ellipse((bx - br, by - br, bx + br, by + br), fill=hair)

    painter.add(depth, draw)


def _paint_figure(app: Appearance, fig: Figure, i: int, origin: tuple[int, int], size: tuple[int, int]) -> Image.Image:
    """The person of frame i as straight-alpha RGBA, box-filtered to output pixels.

    `origin` is the output pixel at the crop's top-left corner and `size` its size in
    output pixels; drawing only the crop keeps the 8x supersampling affordable.
    """
    ss = BODY_SUPERSAMPLE
    q = (fig.xy[i] - np.asarray(origin, float) + 0.5) * ss - 0.5
    z = fig.depth[i]
    yaw = float(fig.yaw[i])
    painter = _Painter(app, fig.scale, ss)
    for prefix in ("r", "l"):
        _leg_parts(painter, q, z, prefix)
        _arm_parts(painter, q, z, prefix)
    _torso_parts(painter, q, z, yaw)
    _head_parts(painter, q, z, yaw)
    canvas = Image.new("RGBA", (size[0] * ss, size[1] * ss), (0, 0, 0, 0))
    painter.paint(ImageDraw.Draw(canvas))
    return canvas.reduce(ss)


def _person_box(fig: Figure, i: int, margin: float) -> tuple[int, int, int, int] | None:
    xy = fig.xy[i]
    x0 = max(int(math.floor(xy[:, 0].min() - margin)), 0)
    y0 = max(int(math.floor(xy[:, 1].min() - margin)), 0)
    x1 = min(int(math.ceil(xy[:, 0].max() + margin)) + 1, FRAME_W)
    y1 = min(int(math.ceil(xy[:, 1].max() + margin)) + 1, FRAME_H)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def _shadow(app: Appearance, fig: Figure, i: int) -> np.ndarray:
    """Multiplicative darkening (H, W) of a soft contact shadow around the feet."""
    xy = fig.xy[i]
    feet_x = (xy[P["r_ank"], 0] + xy[P["l_ank"], 0]) / 2
    spread = abs(xy[P["r_ank"], 0] - xy[P["l_ank"], 0]) / 2 + 0.13 * fig.scale
    gx = np.exp(-(((np.arange(FRAME_W) - feet_x) / spread) ** 2))
    on_floor = np.arange(FRAME_H) + 0.5 >= app.horizon * FRAME_H
    gy = np.exp(-(((np.arange(FRAME_H) - fig.feet_line) / (0.05 * fig.scale)) ** 2)) * on_floor
    strength = app.shadow / (1.0 + 20.0 * float(fig.bounce[i]))
    return 1.0 - strength * np.outer(gy, gx)


def _composite(background: np.ndarray, app: Appearance, fig: Figure, i: int) -> np.ndarray:
    colour = np.zeros((FRAME_H, FRAME_W, 3), np.float32)
    alpha = np.zeros((FRAME_H, FRAME_W, 1), np.float32)
    margin = 0.08 * fig.scale + 1.0
    box = _person_box(fig, i, margin)
    if box is not None:
        x0, y0, x1, y1 = box
        patch = np.asarray(_paint_figure(app, fig, i, (x0, y0), (x1 - x0, y1 - y0)), np.float32)
        a = patch[..., 3:] / 255.0
        colour[y0:y1, x0:x1] = patch[..., :3] * a  # premultiplied, so it can be flipped and faded
        alpha[y0:y1, x0:x1] = a
    frame = background * _shadow(app, fig, i)[..., None]
    # A faint mirror image in the floor: rows below the contact line mirror those above.
    m = app.feet_row
    rows = min(m, FRAME_H - m)
    fade = (app.reflection * np.exp(-np.arange(rows) / (0.08 * fig.scale)))[:, None, None].astype(np.float32)
    mirrored_c, mirrored_a = colour[m - rows : m][::-1], alpha[m - rows : m][::-1]
    frame[m : m + rows] = frame[m : m + rows] * (1.0 - fade * mirrored_a) + fade * mirrored_c
    frame = frame * (1.0 - alpha) + colour
    return np.clip(frame + 0.5, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------------------
# One video
# ---------------------------------------------------------------------------------------


@dataclass
class Video:
    """A planned video: its look, its choreography and the figure in every frame."""

    appearance: Appearance
    style: Style
    moves: list[Move]
    figure: Figure
    background: np.ndarray  # float32 (H, W, 3)
    style_name: str = "variety"

    def __len__(self) -> int:
        return len(self.figure.yaw)

    def frame(self, i: int) -> np.ndarray:
        """Frame i as uint8 RGB (H, W, 3)."""
        return _composite(self.background, self.appearance, self.figure, i)

    def label(self, i: int) -> Image.Image:
        """The pose label of frame i, as OpenPose would draw it (on white at the footage's size for `studio`)."""
        if self.style_name == "studio":
            return pose.draw_footage_label(self.figure.keypoints[i], (FRAME_W, FRAME_H))
        return pose.draw_skeleton(self.figure.keypoints[i], (FRAME_W, FRAME_H), supersample=LABEL_SUPERSAMPLE)


def plan_video(seed: int, split: str, index: int, n_frames: int, style: str = "variety") -> Video:
    """Video `index` of `split`: everything but the pixels, which `Video.frame` draws.

    In the `studio` style every video shares one performer and studio; only the dance, from the
    video's own stream, differs."""
    check_style(style)
    stage = STAGES[style]
    app = studio_appearance(seed) if style == "studio" else sample_appearance(seed, split, index)
    rng = _stream(seed, split, index, _CHOREOGRAPHY_STREAM)
    dance = sample_style(rng, stage)
    scale = app.height * FRAME_H
    units_per_width = FRAME_W / scale
    beats = dance.first_beat + np.arange(n_frames) / FPS * dance.bpm / 60.0
    moves = plan_choreography(rng, dance, float(beats[-1]) if n_frames else 0.0, units_per_width, stage)
    params = evaluate_choreography(moves, beats, units_per_width)
    return Video(app, dance, moves, build_figure(params, app), render_background(app), style)


def render_video(seed: int, split: str, index: int, n_frames: int,
                 style: str = "variety") -> tuple[np.ndarray, np.ndarray]:
    """Frames and labels of one video as uint8 arrays (n, H, W, 3), without touching disk."""
    video = plan_video(seed, split, index, n_frames, style)
    frames = np.stack([video.frame(i) for i in range(n_frames)])
    labels = np.stack([np.asarray(video.label(i)) for i in range(n_frames)])
    return frames, labels


# ---------------------------------------------------------------------------------------
# Writing the dataset
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Job:
    """One video to render and where its files go."""

    seed: int
    split: str
    index: int
    n_frames: int
    first_number: int  # number of its first file (train frames are numbered across videos)
    image_dir: str
    label_dir: str
    first_frame_dir: str = ""  # test only: where the given first frame goes
    style: str = "variety"


def _run_job(job: _Job) -> int:
    video = plan_video(job.seed, job.split, job.index, job.n_frames, job.style)
    image_dir, label_dir = Path(job.image_dir), Path(job.label_dir)
    image_dir.mkdir(parents=True, exist_ok=True)
    label_dir.mkdir(parents=True, exist_ok=True)
    for i in range(job.n_frames):
        name = FRAME_NAME.format(job.first_number + i)
        frame = Image.fromarray(video.frame(i), "RGB")
        frame.save(image_dir / name, format="PNG")
        video.label(i).save(label_dir / name, format="PNG")
        if i == 0 and job.first_frame_dir:
            first_dir = Path(job.first_frame_dir)
            first_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(image_dir / name, first_dir / name)
    return job.n_frames


def _jobs(root: Path, spec: SizeSpec, seed: int, style: str) -> list[_Job]:
    jobs: list[_Job] = []
    number = 0
    for index, length in enumerate(spec.train_videos):
        jobs.append(_Job(seed, "train", index, length, number, str(root / "train" / "train_img"),
                         str(root / "train" / "train_label"), style=style))  # fmt: skip
        number += length
    val = root / "val"
    jobs.append(_Job(seed, "val", 0, spec.val_frames, 0, str(val / "val_img"), str(val / "val_label"), style=style))
    for s in range(spec.test_sequences):
        test = root / "test"
        jobs.append(_Job(seed, "test", s, spec.test_frames, 0, str(test / "test_gt" / str(s)),
                         str(test / "test_label" / str(s)), str(test / "test_img" / str(s)), style))  # fmt: skip
    # Longest first, so that no worker is left with a long video at the end.
    return sorted(jobs, key=lambda j: -j.n_frames)


def _expected_counts(spec: SizeSpec) -> dict[str, int]:
    counts = {
        "train/train_img": spec.train_frames,
        "train/train_label": spec.train_frames,
        "val/val_img": spec.val_frames,
        "val/val_label": spec.val_frames,
    }
    for s in range(spec.test_sequences):
        counts[f"test/test_img/{s}"] = 1
        counts[f"test/test_label/{s}"] = spec.test_frames
        counts[f"test/test_gt/{s}"] = spec.test_frames
    return counts


def _is_complete(root: Path, spec: SizeSpec) -> bool:
    for folder, count in _expected_counts(spec).items():
        path = root / folder
        if not path.is_dir() or sum(1 for n in os.listdir(path) if n.endswith(".png")) != count:
            return False
    return (root / "test" / "test_img").is_dir() and len(os.listdir(root / "test" / "test_img")) == spec.test_sequences


def _manifest(spec: SizeSpec, seed: int, style: str) -> dict:
    return {
        "generator": "lab4.synth",
        "version": GENERATOR_VERSION,
        "style": style,
        "size": spec.name,
        "seed": seed,
        "frame_width": FRAME_W,
        "frame_height": FRAME_H,
        "fps": FPS,
        "counts": describe(spec.name),
        "train_video_lengths": list(spec.train_videos),
        "folders": _expected_counts(spec),
    }


def _read_manifest(root: Path) -> dict | None:
    path = root / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _same_dataset(manifest: dict, spec: SizeSpec, seed: int, style: str) -> bool:
    # A manifest without a style was written before there were styles: it is `variety` data.
    return (manifest.get("generator") == "lab4.synth" and manifest.get("version") == GENERATOR_VERSION
            and manifest.get("style", "variety") == style
            and manifest.get("size") == spec.name and manifest.get("seed") == seed)  # fmt: skip


def _holds_dataset_files(root: Path) -> bool:
    # Only what we would overwrite counts: unrelated files beside the split folders (a
    # README, the loader's cache) neither block generation nor get deleted.
    return any((root / name).exists() and any((root / name).iterdir()) for name in SPLIT_FOLDERS)


def _describe_manifest(manifest: dict) -> str:
    if not manifest:
        return "an unreadable lab4_synth.json"
    return (f"a synthetic dataset of style {manifest.get('style', 'variety')!r}, size {manifest.get('size')!r}, "
            f"seed {manifest.get('seed')}, generator version {manifest.get('version')}")  # fmt: skip


def _clear(root: Path) -> None:
    (root / MANIFEST_NAME).unlink(missing_ok=True)
    for name in SPLIT_FOLDERS:
        if (root / name).exists():
            shutil.rmtree(root / name)


def _write_json_atomically(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _say(message: str, progress: bool) -> None:
    log.info(message)
    if progress:
        print(message, flush=True)


def _render_all(jobs: list[_Job], workers: int, total: int, desc: str, progress: bool) -> None:
    from tqdm import tqdm

    def bar() -> tqdm:
        return tqdm(total=total, unit="frame", desc=desc, disable=not progress, smoothing=0.1)

    if workers <= 1:
        with bar() as shown:
            for job in jobs:
                shown.update(_run_job(job))
        return
    # fork: workers need no re-import of the caller's __main__, which `python -m` or a
    # notebook would otherwise re-run; they touch only numpy and PIL. The pool starts
    # before the progress bar so that no tqdm monitor thread exists when it forks.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    with context.Pool(workers) as pool, bar() as shown:
        for done in pool.imap_unordered(_run_job, jobs, chunksize=1):
            shown.update(done)


def generate_dataset(
    root: Path,
    size: str = DEFAULT_SIZE,
    seed: int = 0,
    force: bool = False,
    workers: int | None = None,
    progress: bool = True,
    style: str = DEFAULT_STYLE,
) -> Path:
    """Write the synthetic dataset of `size` and `style` (see STYLES) into `root` and return `root`.

    Returns at once if `root` already holds this very dataset (same size, seed and
    generator version, all files present). Raises FileExistsError if it holds other data
    (another synthetic dataset, or split folders without our manifest) unless `force`,
    which deletes the train/, val/ and test/ folders first; nothing else in `root` is
    touched. A run interrupted part-way is redone without `force`. `workers` processes
    render videos in parallel (default: one per CPU); the bytes written do not depend on it.
    """
    spec = size_spec(size)
    check_style(style)
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    root = Path(root)
    manifest = _read_manifest(root)
    interrupted = (root / PARTIAL_MARKER).exists()
    if manifest is not None and _same_dataset(manifest, spec, seed, style):
        if _is_complete(root, spec):
            (root / PARTIAL_MARKER).unlink(missing_ok=True)
            _say(f"{root}: synthetic dataset ({style}, {size}, seed {seed}) already generated", progress)
            return root
        _say(f"{root}: files of this dataset are missing; generating it again", progress)
    elif manifest is not None and not force:
        raise FileExistsError(
            f"{root} already holds {_describe_manifest(manifest)}, not style {style!r} size {size!r} seed {seed}; "
            "pass force=True (CLI: --force) to overwrite it"
        )
    elif manifest is None and interrupted:
        _say(f"{root}: redoing an interrupted generation", progress)
    elif manifest is None and _holds_dataset_files(root) and not force:
        raise FileExistsError(
            f"{root} already holds train/, val/ or test/ data that this generator did not write "
            "(no lab4_synth.json); pass force=True (CLI: --force) to overwrite it"
        )

    root.mkdir(parents=True, exist_ok=True)
    # The marker goes first, so that a run stopped even while clearing is recognised as ours.
    _write_json_atomically(root / PARTIAL_MARKER, {"style": style, "size": spec.name, "seed": seed,
                                                   "version": GENERATOR_VERSION})
    _clear(root)
    jobs = _jobs(root, spec, seed, style)
    count = (os.cpu_count() or 1) if workers is None else workers
    _render_all(jobs, max(1, min(count, len(jobs))), spec.total_frames, f"synthetic {style} {size} data", progress)
    if not _is_complete(root, spec):
        raise RuntimeError(f"{root}: generation finished but files are missing; run it again")
    _write_json_atomically(root / MANIFEST_NAME, _manifest(spec, seed, style))
    (root / PARTIAL_MARKER).unlink(missing_ok=True)
    return root


__all__ = [
    "Appearance",
    "DEFAULT_SIZE",
    "FRAME_H",
    "FRAME_W",
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "SIZES",
    "SizeSpec",
    "Video",
    "describe",
    "generate_dataset",
    "plan_video",
    "render_background",
    "render_video",
    "sample_appearance",
    "size_spec",
    "sizes_help",
]
