"""What a synthetic dataset is: the frame geometry, the sizes (frames per split) and the styles."""

from __future__ import annotations

from dataclasses import dataclass

FRAME_W = 64
FRAME_H = 32
FPS = 30.0


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
