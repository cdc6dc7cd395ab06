"""OpenPose body keypoints (COCO, 18 points) and an OpenPose-style skeleton renderer.

The real Lab 4 labels are images of the dancer's skeleton as the OpenPose demo draws it:
coloured joint dots, then coloured limbs as filled ellipses blended 60 % over what is
already drawn, on a black background. ``draw_skeleton`` reproduces that look so that a
model trained on synthetic labels sees the same kind of input as with the real ones.

Keypoint coordinates follow OpenPose/OpenCV: pixel units with the centre of the top-left
pixel at (0, 0). A keypoint that is NaN is "not detected" and is skipped with its limbs,
as OpenPose skips undetected parts.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

NOSE = 0
NECK = 1
R_SHOULDER = 2
R_ELBOW = 3
R_WRIST = 4
L_SHOULDER = 5
L_ELBOW = 6
L_WRIST = 7
R_HIP = 8
R_KNEE = 9
R_ANKLE = 10
L_HIP = 11
L_KNEE = 12
L_ANKLE = 13
R_EYE = 14
L_EYE = 15
R_EAR = 16
L_EAR = 17

NUM_KEYPOINTS = 18

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck",
    "right_shoulder", "right_elbow", "right_wrist",
    "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle",
    "left_hip", "left_knee", "left_ankle",
    "right_eye", "left_eye", "right_ear", "left_ear",
)  # fmt: skip

# The 17 limbs the OpenPose demo draws (`draw_bodypose` uses the first 17 pairs of its
# limbSeq; the last two, ear-shoulder, exist only for the part-affinity fields).
LIMBS: tuple[tuple[int, int], ...] = (
    (NECK, R_SHOULDER), (NECK, L_SHOULDER),
    (R_SHOULDER, R_ELBOW), (R_ELBOW, R_WRIST),
    (L_SHOULDER, L_ELBOW), (L_ELBOW, L_WRIST),
    (NECK, R_HIP), (R_HIP, R_KNEE), (R_KNEE, R_ANKLE),
    (NECK, L_HIP), (L_HIP, L_KNEE), (L_KNEE, L_ANKLE),
    (NECK, NOSE),
    (NOSE, R_EYE), (R_EYE, R_EAR),
    (NOSE, L_EYE), (L_EYE, L_EAR),
)  # fmt: skip

# OpenPose's palette, in RGB: keypoint i and limb i both use COLORS[i] (the demo indexes
# the one list for both, so limb colours are not tied to their end points' colours).
COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0),
    (0, 255, 0), (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255),
    (0, 0, 255), (85, 0, 255), (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
LIMB_COLORS: tuple[tuple[int, int, int], ...] = COLORS[: len(LIMBS)]
KEYPOINT_COLORS: tuple[tuple[int, int, int], ...] = COLORS

# The demo blends each limb into the canvas as 0.4 * canvas + 0.6 * limb colour.
LIMB_ALPHA = 0.6


def default_limb_width(height: int) -> float:
    """Full limb thickness in output pixels for an image `height` pixels tall.

    OpenPose draws 8-pixel-thick limbs (stickwidth 4) on frames about 512 pixels tall;
    scaled down to a 32-pixel frame that would be half a pixel, too faint to condition
    on, so small images get at least 1.4 pixels.
    """
    return max(1.4, height / 64.0)


def default_joint_radius(height: int) -> float:
    """Joint dot radius in output pixels (OpenPose: 4 px, the same as the limb half-width)."""
    return max(0.8, height / 128.0)


def _to_canvas(points: np.ndarray, scale: int) -> np.ndarray:
    # Pixel centres sit at integer coordinates both in the output and in the supersampled
    # canvas, so output pixel centre u lands in the middle of its scale x scale block.
    return (points + 0.5) * scale - 0.5


_UNIT_CIRCLE = np.exp(1j * np.linspace(0.0, 2.0 * np.pi, 32, endpoint=False))


def _limb_polygon(a: np.ndarray, b: np.ndarray, half_width: float) -> np.ndarray:
    """OpenPose's limb shape (its ellipse2Poly): an ellipse spanning the limb whose minor
    semi-axis is the stick half-width, as an (N, 2) outline."""
    centre = complex(*(a + b) / 2.0)
    along = complex(*(b - a))
    length = abs(along)
    unit = along / length if length > 1e-9 else 1.0 + 0.0j
    outline = centre + unit * (_UNIT_CIRCLE.real * (length / 2.0) + 1j * _UNIT_CIRCLE.imag * half_width)
    return np.column_stack([outline.real, outline.imag])


def _blend_polygon(canvas: Image.Image, polygon: np.ndarray, colour: tuple[int, int, int], alpha: float) -> None:
    """Blend `colour` into the polygon's pixels as (1 - alpha) * canvas + alpha * colour."""
    # A mask of the polygon's bounding box only, filled with alpha: pasting a solid colour
    # through it is exactly the demo's addWeighted, at a fraction of a full-canvas blend.
    x0 = max(int(np.floor(polygon[:, 0].min())) - 1, 0)
    y0 = max(int(np.floor(polygon[:, 1].min())) - 1, 0)
    x1 = min(int(np.ceil(polygon[:, 0].max())) + 2, canvas.width)
    y1 = min(int(np.ceil(polygon[:, 1].max())) + 2, canvas.height)
    if x1 <= x0 or y1 <= y0:
        return
    mask = Image.new("L", (x1 - x0, y1 - y0), 0)
    ImageDraw.Draw(mask).polygon((polygon - (x0, y0)).ravel().tolist(), fill=int(round(alpha * 255)))
    canvas.paste(colour, (x0, y0, x1, y1), mask)


def draw_skeleton(
    keypoints: np.ndarray,
    size: tuple[int, int],
    *,
    limb_width: float | None = None,
    joint_radius: float | None = None,
    supersample: int = 8,
    background: tuple[int, int, int] = (0, 0, 0),
) -> Image.Image:
    """Draw an OpenPose-style skeleton on an RGB image of `size` = (width, height), black by default.

    `keypoints` is an (18, 2) array of (x, y) pixel coordinates in the output image, in
    the order of ``KEYPOINT_NAMES``; NaN rows are undetected keypoints and are skipped
    together with their limbs. `limb_width` (full thickness) and `joint_radius` are in
    output pixels (defaults: ``default_limb_width``/``default_joint_radius``). The
    drawing is done `supersample` times larger and box-filtered down, so thin limbs
    come out anti-aliased instead of as jagged one-pixel staircases.
    """
    width, height = size
    points = np.asarray(keypoints, dtype=np.float64)
    if points.shape != (NUM_KEYPOINTS, 2):
        raise ValueError(f"keypoints must have shape ({NUM_KEYPOINTS}, 2), got {points.shape}")
    scale = max(1, int(supersample))
    half_width = (limb_width if limb_width is not None else default_limb_width(height)) / 2.0 * scale
    radius = (joint_radius if joint_radius is not None else default_joint_radius(height)) * scale
    visible = np.isfinite(points).all(axis=1)
    pts = _to_canvas(points, scale)

    canvas = Image.new("RGB", (width * scale, height * scale), background)
    draw = ImageDraw.Draw(canvas)
    # Joints first, limbs over them, as the demo does: the joint dots show through the
    # translucent limbs and stay visible where limbs meet.
    for index in np.flatnonzero(visible):
        x, y = pts[index]
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=KEYPOINT_COLORS[index])
    for (a, b), colour in zip(LIMBS, LIMB_COLORS):
        if visible[a] and visible[b]:
            _blend_polygon(canvas, _limb_polygon(pts[a], pts[b], half_width), colour, LIMB_ALPHA)
    return canvas.reduce(scale) if scale > 1 else canvas


# The real Lab 4 labels: the demo's drawing (limbs 8 px thick, joints of radius 4) on white, then
# shrunk by the loader's resize. Drawn on the footage's 1024 x 512 frames and shrunk 16x, the labels
# come out half again as bold as the footage's (`data-stats`: ink 0.0095 per pixel against 0.0063,
# ten times the pixels over 0.3); drawn at 768 rows and shrunk 24x they measure as the footage's do.
SOURCE_HEIGHT = 768
SOURCE_STICK_WIDTH = 8.0
SOURCE_JOINT_RADIUS = 4.0
WHITE = (255, 255, 255)


def draw_footage_label(keypoints: np.ndarray, size: tuple[int, int], source_height: int = SOURCE_HEIGHT) -> Image.Image:
    """A label as the real data's look: the skeleton drawn at the footage's resolution on white,
    then box-filtered down to `size`, so that its limbs are faint sub-pixel lines."""
    width, height = size
    ratio = height / source_height
    return draw_skeleton(keypoints, size, limb_width=SOURCE_STICK_WIDTH * ratio,
                         joint_radius=SOURCE_JOINT_RADIUS * ratio, supersample=round(1 / ratio),
                         background=WHITE)
