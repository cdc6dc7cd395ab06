"""The frame scrubber: pose | ground truth | prediction | difference for one frame of a
validation rollout, enlarged with nearest-neighbour scaling.

`render_panel` (numpy + PIL, no widgets) draws one frame's panel and is what the tests
check; `Scrubber` wraps it in ipywidgets for the analysis notebook: a Play button linked
to a frame slider, and a run dropdown.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

if TYPE_CHECKING:
    from lab4.runs.results import RunData, Rollout

PANEL_TITLES = ("pose label", "ground truth", "prediction", "|difference|")
GAP = 4             # pixels of white between panels (after enlarging)


def font_size(scale: int) -> int:
    """Text grows with the frames: a notebook shrinks the wide panel to its page width, and text
    of a fixed size would end up a few pixels tall."""
    return max(12, 4 * scale)


def text_row(scale: int) -> int:
    """Pixels per line of text above and below the panels."""
    return font_size(scale) + 8

# A dark-to-bright colour ramp (black, purple, red, orange, pale yellow) for the error.
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], dtype=float)


def _as_frame(frame: np.ndarray, name: str) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[0] != 3:
        raise ValueError(f"{name}: expected a uint8 frame of shape (3, H, W), got {frame.dtype} {frame.shape}")
    return frame


def difference_image(prediction: np.ndarray, truth: np.ndarray, gain: float = 4.0) -> np.ndarray:
    """|prediction - truth| averaged over RGB, times `gain`, as a colour-mapped uint8 (3, H, W)
    frame: black where the prediction is exact, bright where the error reaches 1/gain of
    the full range."""
    prediction = _as_frame(prediction, "prediction")
    truth = _as_frame(truth, "truth")
    if prediction.shape != truth.shape:
        raise ValueError(f"prediction {prediction.shape} and truth {truth.shape} differ in shape")
    error = np.abs(prediction.astype(np.float32) - truth.astype(np.float32)).mean(axis=0) / 255.0
    level = np.clip(error * gain, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.floor(level).astype(int).clip(0, len(_RAMP) - 2)
    frac = (level - low)[..., None]
    rgb = _RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac
    return np.rint(rgb).astype(np.uint8).transpose(2, 0, 1)


def enlarge(frame: np.ndarray, scale: int) -> np.ndarray:
    """(3, H, W) -> (H*scale, W*scale, 3), each pixel a scale x scale block (nearest neighbour)."""
    if scale < 1:
        raise ValueError(f"scale={scale}: expected a positive integer")
    hwc = frame.transpose(1, 2, 0)
    return np.repeat(np.repeat(hwc, scale, axis=0), scale, axis=1)


def render_panel(pose: np.ndarray, truth: np.ndarray, prediction: np.ndarray, scale: int = 4,
                 gain: float = 4.0, caption: str | None = None, titles: Sequence[str] | None = PANEL_TITLES
                 ) -> np.ndarray:
    """One frame's panel as a uint8 (H', W', 3) RGB image: the pose label, the ground
    truth, the prediction and their difference (see difference_image) side by side, each
    enlarged `scale` times with nearest-neighbour scaling, titles above and `caption`
    (e.g. the frame's PSNR) below, on white.

    With titles=None and no caption the image is exactly the four enlarged frames with
    GAP white columns between them.
    """
    frames = [_as_frame(pose, "pose"), _as_frame(truth, "truth"), _as_frame(prediction, "prediction")]
    shapes = {f.shape for f in frames}
    if len(shapes) != 1:
        raise ValueError(f"pose, truth and prediction must have one shape, got {sorted(shapes)}")
    frames.append(difference_image(prediction, truth, gain))
    tiles = [enlarge(f, scale) for f in frames]
    h, w = tiles[0].shape[:2]
    top = text_row(scale) if titles else 0
    bottom = text_row(scale) if caption else 0
    width = 4 * w + 3 * GAP
    canvas = np.full((top + h + bottom, width, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        x = i * (w + GAP)
        canvas[top:top + h, x:x + w] = tile
    if titles or caption:
        image = Image.fromarray(canvas)
        draw = ImageDraw.Draw(image)
        font = ImageFont.load_default(size=font_size(scale))
        if titles:
            for i, text in enumerate(titles):
                if i == 3 and text == PANEL_TITLES[3]:
                    text = f"{text} x{gain:g}"
                draw.text((i * (w + GAP) + 2, 2), _fit(draw, text, font, w - 4), fill=(0, 0, 0), font=font)
        if caption:
            draw.text((2, top + h + 3), _fit(draw, caption, font, width - 4), fill=(0, 0, 0), font=font)
        canvas = np.asarray(image)
    return canvas


def _fit(draw: ImageDraw.ImageDraw, text: str, font: Any, width: int) -> str:
    """Cut `text` so it fits `width` pixels (an ellipsis marks the cut)."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def frame_caption(rollout: "Rollout", t: int) -> str:
    if t == 0:
        return f"frame 0 of {rollout.length - 1}: the given first frame (not predicted)"
    return (f"frame {t} of {rollout.length - 1}: PSNR {rollout.psnr[t - 1]:.2f} dB "
            f"(repeat-first-frame baseline {rollout.baseline_psnr[t - 1]:.2f} dB)")


def rollout_panel(rollout: "Rollout", t: int, scale: int = 4, gain: float = 4.0) -> np.ndarray:
    """render_panel for frame t of a validation rollout, captioned with the frame's PSNR."""
    if not 0 <= t < rollout.length:
        raise IndexError(f"frame {t}: the rollout has frames 0..{rollout.length - 1}")
    return render_panel(rollout.labels[t], rollout.truth[t], rollout.prediction[t], scale=scale, gain=gain,
                        caption=frame_caption(rollout, t))


def to_png(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


class Scrubber:
    """Widgets to step through the validation rollouts of several runs.

    runs: run name -> RunData (its val_rollout.npz is read when the run is chosen).
    `widget` is the thing to display; `show(run, t)` moves it from code.
    """

    def __init__(self, runs: Mapping[str, "RunData"], scale: int = 6, gain: float = 4.0, interval_ms: int = 80):
        import ipywidgets as widgets

        self.runs = {name: run for name, run in runs.items() if run.paths.val_rollout.is_file()}
        if not self.runs:
            raise ValueError("no run with a validation rollout (val_rollout.npz) to scrub through")
        self.scale, self.gain = scale, gain
        first = next(iter(self.runs))
        length = self.runs[first].rollout.length
        self.dropdown = widgets.Dropdown(options=list(self.runs), value=first, description="run")
        self.play = widgets.Play(value=0, min=0, max=length - 1, step=1, interval=interval_ms, description="play")
        self.slider = widgets.IntSlider(value=0, min=0, max=length - 1, description="frame",
                                        continuous_update=True, layout=widgets.Layout(width="420px"))
        widgets.jslink((self.play, "value"), (self.slider, "value"))
        self.image = widgets.Image(format="png")
        self.info = widgets.HTML()
        self.dropdown.observe(self._on_run, names="value")
        self.slider.observe(self._on_frame, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.dropdown, self.play, self.slider]), self.image, self.info])
        self._draw()

    @property
    def current(self) -> "Rollout":
        return self.runs[self.dropdown.value].rollout

    def _on_run(self, _change: Any) -> None:
        length = self.current.length
        self.slider.value = min(self.slider.value, length - 1)
        self.slider.max = self.play.max = length - 1
        self._draw()

    def _on_frame(self, _change: Any) -> None:
        self._draw()

    def _draw(self) -> None:
        run = self.runs[self.dropdown.value]
        t = int(self.slider.value)
        self.image.value = to_png(rollout_panel(self.current, t, self.scale, self.gain))
        cfg = run.config
        epoch = int(run.val_frames["epoch"].max()) if not run.val_frames.empty else "?"
        self.info.value = (f"<b>{frame_caption(self.current, t)}</b><br>measured on the validation rollout of "
                           f"<code>{cfg.get('data_root', '?')}/val</code> after epoch {epoch} "
                           f"(z={cfg.get('val_z', '?')}, the first frame given, each prediction fed back)")

    def show(self, run: str | None = None, t: int | None = None) -> np.ndarray:
        """Select a run and frame (as the widgets would) and return the panel drawn."""
        if run is not None:
            self.dropdown.value = run
        if t is not None:
            self.slider.value = t
        return rollout_panel(self.current, int(self.slider.value), self.scale, self.gain)
