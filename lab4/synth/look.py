"""The look of a video, everything that does not move: the dancer's appearance and the studio
background, computed once per video."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab4.synth.sizes import FRAME_H, FRAME_W
from lab4.synth.streams import APPEARANCE_STREAM, STUDIO_STREAM, stream

BACKGROUND_SUPERSAMPLE = 4  # the background is rendered this many times larger, then box-filtered

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
class StudioStructure:
    """The studio's fine structure, which a model must carry from frame to frame where a smooth wall
    asks nothing of it: the wall's and floor's texture (`texture`: its sd in grey levels before the
    box filter, a 1/f spectrum) and `fixtures` sharp-edged fittings on the wall (sockets, panels, a
    door frame)."""

    texture: float = 0.0
    fixtures: int = 0


# Chosen by what it does to the learning pace (docs/results.md, `python -m lab4 pace`): with the
# pose estimator's errors (lab4.synth.estimator.STUDIO_ERRORS), the default data is learned at about
# the real footage's pace.
STUDIO_STRUCTURE = StudioStructure(texture=16.0, fixtures=16)


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
    # The studio's uneven light: a bright band along the top of the frame (the lighting rig), and
    # a soft shadow cast across the floor by a key light to one side (offset in standing heights).
    top_band: float = 0.0
    cast_shadow: float = 0.0
    cast_offset: float = 0.0
    structure: StudioStructure = StudioStructure()
    texture_seed: int = 0  # draws the structure


def sample_appearance(seed: int, split: str, index: int) -> Appearance:
    """The appearance of video `index` of `split` (deterministic in its arguments)."""
    rng = stream(seed, split, index, APPEARANCE_STREAM)
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
    grey wall under a bright band of light at the top, lit unevenly (brighter and darker regions
    across the wall and the floor), a lighter floor where the performer casts a soft shadow, and
    a performer in a dark grey long-sleeved top and trousers, about 26 of the 32 rows tall."""
    rng = np.random.default_rng([seed, STUDIO_STREAM, 0, APPEARANCE_STREAM])
    grey = rng.uniform(168, 182)
    wall = _jitter(rng, (int(grey), int(grey + 1), int(grey + 3)), 1.5)
    # Lights at the wall's top, and darker regions (negative strength) lower down between them.
    lights = tuple(
        Light(x=float(x + rng.uniform(-0.08, 0.08)), y=float(y + rng.uniform(-0.04, 0.04)),
              radius=float(rng.uniform(0.2, 0.3)), strength=float(sign * rng.uniform(18, 28)))
        for x, y, sign in ((0.3, 0.0, 1.0), (1.0, 0.05, 1.0), (1.7, 0.0, 1.0), (0.65, 0.55, -1.0), (1.5, 0.6, -1.0))
    )  # fmt: skip
    return Appearance(
        skin=_jitter(rng, (222, 172, 140), 5),
        hair=_jitter(rng, (50, 42, 38), 3),
        hair_style="short",
        shirt=_jitter(rng, (100, 100, 110), 3),
        long_sleeves=True,
        trousers=_jitter(rng, (88, 89, 98), 3),
        shorts=False,
        shoes=_jitter(rng, (60, 60, 64), 2),
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
        shadow=0.22,
        reflection=0.04,
        top_band=float(rng.uniform(40, 50)),
        cast_shadow=0.2,
        cast_offset=float(rng.choice((-1.0, 1.0)) * rng.uniform(0.25, 0.35)),
        structure=STUDIO_STRUCTURE,
        texture_seed=int(rng.integers(2**31)),
    )


def _box_down(image: np.ndarray, factor: int) -> np.ndarray:
    h, w = image.shape[0] // factor, image.shape[1] // factor
    return image.reshape(h, factor, w, factor, -1).mean(axis=(1, 3))


def _pink_noise(rng: np.random.Generator, shape: tuple[int, int], stretch: float = 1.0) -> np.ndarray:
    """Noise of unit sd with a 1/f amplitude spectrum (fine grain and broad blotches alike), its
    features `stretch` times longer across than down."""
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :] * stretch
    radius = np.hypot(fy, fx)
    spectrum = np.where(radius > 0, 1.0 / np.maximum(radius, 1e-9), 0.0)
    noise = np.fft.irfft2(np.fft.rfft2(rng.normal(size=shape)) * spectrum, s=shape)
    return noise / noise.std()


def _structure(app: Appearance, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(H*s, W*s) grey levels added to the studio: its texture and fittings (Appearance.structure)."""
    rng = np.random.default_rng(app.texture_seed)
    shape = (y.shape[0], x.shape[1])
    on_wall = (y < app.horizon)[:, :, 0]
    # The floor's boards run across the frame: its grain is longer across than down.
    grain = np.where(on_wall, _pink_noise(rng, shape), _pink_noise(rng, shape, stretch=4.0))
    structure = app.structure.texture * grain
    yy, xx = y[:, :, 0], x[:, :, 0]
    for _ in range(app.structure.fixtures):
        # A sharp-edged fitting on the wall, lighter or darker than it; about one in three a tall
        # one (a door frame, a panel's edge) reaching the skirting.
        width = rng.uniform(0.02, 0.12)
        tall = rng.random() < 0.35
        top = rng.uniform(0.05, 0.5)
        bottom = app.horizon if tall else top + rng.uniform(0.03, 0.12)
        left = rng.uniform(0.0, 2.0 - width)
        inside = (yy >= top) & (yy < bottom) & (xx >= left) & (xx < left + width)
        structure = structure + np.where(inside, rng.choice((-1.0, 1.0)) * rng.uniform(8.0, 30.0), 0.0)
    return structure


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
    if app.top_band:
        wall = wall + app.top_band * np.exp(-((y / 0.1) ** 2)) * tint
    image = np.where(y < app.horizon, wall, floor)
    if app.structure.texture or app.structure.fixtures:
        image = image + _structure(app, y, x)[..., None] * tint
    # A skirting board: a soft dark line where the wall meets the floor.
    image = image * (1.0 - 0.1 * np.exp(-(((y - app.horizon) * FRAME_H / 0.6) ** 2)))
    # Lens vignetting, so corners are a little darker than the centre, as in real footage.
    aspect = FRAME_W / FRAME_H
    image = image * (1.0 - 0.08 * (((x / aspect) - 0.5) ** 2 * 4.0 + (y - 0.5) ** 2 * 1.5))
    return np.clip(_box_down(image, s), 0.0, 255.0).astype(np.float32)
