"""Drawing one frame: the figure painted as filled limbs on a supersampled canvas, box-filtered down and
composited over the studio background with a contact shadow and a faint floor reflection."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw

from lab4.synth.body import CHEST_DEPTH, HEAD_RX, HEAD_RY, HIP_DEPTH, Figure, P
from lab4.synth.look import RGB, Appearance
from lab4.synth.sizes import FRAME_H, FRAME_W

BODY_SUPERSAMPLE = 8  # the body is drawn this many times larger, then box-filtered

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
    chest = painter.px(math.hypot(app.shoulder_half * c, CHEST_DEPTH * s))
    hips = painter.px(math.hypot((app.hip_half + 0.03) * c, HIP_DEPTH * s))
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
    rx, ry = painter.px(HEAD_RX * app.head_scale), painter.px(HEAD_RY * app.head_scale)
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
    darkening = strength * np.outer(gy, gx)
    if app.cast_shadow:
        # Cast by a light to one side: longer and softer than the contact shadow, it slides
        # across the floor as the performer moves.
        cast_x = feet_x + app.cast_offset * fig.scale
        cx = np.exp(-(((np.arange(FRAME_W) - cast_x) / (spread + 0.25 * fig.scale)) ** 2))
        cy = np.exp(-(((np.arange(FRAME_H) - fig.feet_line - 0.5) / (0.1 * fig.scale)) ** 2)) * on_floor
        darkening = darkening + app.cast_shadow * np.outer(cy, cx)
    return 1.0 - np.minimum(darkening, 0.9)


def composite(background: np.ndarray, app: Appearance, fig: Figure, i: int) -> np.ndarray:
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
