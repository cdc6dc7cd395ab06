"""The Lab 4 layout: listing a data root's PNGs in frame order and checking that frames, labels and
test sequences pair up. Cheap: directory listings only, nothing is decoded."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

FRAME_H: int = 32
FRAME_W: int = 64

TRAIN_VAL_SPLITS = ("train", "val")
ALL_SPLITS = ("train", "val", "test")
# The manifest lab4.synth writes beside the splits; among other things it knows where each training video ends.
SYNTH_MANIFEST = "lab4_synth.json"


def read_synth_manifest(root: Path) -> dict | None:
    """The synthetic data's manifest: None where there is none (the real data), {} where it cannot
    be read as a JSON object."""
    path = Path(root) / SYNTH_MANIFEST
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


_LAYOUT_HINT = "(see data/README.md)"
_PREVIEW_NAMES = 5


class DataLayoutError(ValueError):
    """The data folder does not have the Lab 4 layout, or one of its files is unusable."""


_NUMBER = re.compile(r"\d+")


def frame_number(path: Path) -> int:
    """The integer in a file name, the assignment's sort key (frame000123.png -> 123)."""
    match = _NUMBER.search(Path(path).stem)
    if match is None:
        raise DataLayoutError(
            f"{path}: file name has no frame number; expected names like frame000123.png, "
            "because frames are ordered by the integer in their name"
        )
    return int(match.group())


def _require_root(root: Path) -> None:
    if not root.is_dir():
        raise DataLayoutError(
            f"{root}: data root not found; expected a folder holding train/, val/ and test/ "
            f"{_LAYOUT_HINT}"
        )


def _require_folder(folder: Path, expected: str) -> None:
    if not folder.is_dir():
        raise DataLayoutError(f"{folder}: folder not found; expected {expected} {_LAYOUT_HINT}")


def _preview(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_PREVIEW_NAMES])
    more = len(names) - _PREVIEW_NAMES
    return shown + (f", ... ({more} more)" if more > 0 else "")


def list_pngs(folder: Path, expected: str) -> list[Path]:
    """The PNG files of a folder in frame order; error if the folder is missing or has none."""
    _require_folder(folder, expected)
    pngs: list[str] = []
    others: list[str] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.is_file() or entry.name.startswith("."):
                continue
            if entry.name.lower().endswith(".png"):
                pngs.append(entry.name)
            else:
                others.append(entry.name)
    if not pngs:
        found = f" (it holds {len(others)} other files, e.g. {_preview(sorted(others))})" if others else ""
        raise DataLayoutError(f"{folder}: no PNG files{found}; expected {expected} {_LAYOUT_HINT}")
    # Sorting plain names (not Path objects) keeps listing 23k files fast; the name breaks
    # ties so that the order never depends on the directory listing.
    numbered = sorted((_name_number(folder, name), name) for name in pngs)
    return [folder / name for _, name in numbered]


def _name_number(folder: Path, name: str) -> int:
    match = _NUMBER.search(name[: -len(".png")])
    if match is None:
        frame_number(folder / name)  # raises the error that names the file
    return int(match.group())  # type: ignore[union-attr]


def _check_same_names(img_dir: Path, img: list[Path], label_dir: Path, labels: list[Path]) -> None:
    img_names = [p.name for p in img]
    label_names = [p.name for p in labels]
    if img_names == label_names:
        return
    label_set, img_set = set(label_names), set(img_names)
    only_img = [n for n in img_names if n not in label_set]
    only_label = [n for n in label_names if n not in img_set]
    details = []
    if only_img:
        details.append(f"only in {img_dir.name}: {_preview(only_img)}")
    if only_label:
        details.append(f"only in {label_dir.name}: {_preview(only_label)}")
    if len(img) != len(labels):
        raise DataLayoutError(
            f"{img_dir} has {len(img)} PNGs but {label_dir} has {len(labels)}; expected one "
            f"label per frame with the same file name ({'; '.join(details)})"
        )
    raise DataLayoutError(
        f"{img_dir} and {label_dir}: file names differ; expected one label per frame with "
        f"the same file name ({'; '.join(details)})"
    )


def split_files(root: Path, split: str) -> tuple[list[Path], list[Path]]:
    """The frame and label PNGs of the train or val split, in frame order, checked to pair up."""
    if split not in TRAIN_VAL_SPLITS:
        raise ValueError(f"split must be one of {TRAIN_VAL_SPLITS} (got {split!r}); use load_test for 'test'")
    root = Path(root)
    _require_root(root)
    split_dir = root / split
    _require_folder(split_dir, f"the {split} split with {split}_img/ and {split}_label/")
    img_dir, label_dir = split_dir / f"{split}_img", split_dir / f"{split}_label"
    _require_folder(img_dir, f"the frame PNGs of the {split} split")
    _require_folder(label_dir, f"the label PNGs of the {split} split")
    img = list_pngs(img_dir, f"the frame PNGs of the {split} split (frameNNNNNN.png)")
    labels = list_pngs(label_dir, f"the label PNGs of the {split} split (frameNNNNNN.png)")
    _check_same_names(img_dir, img, label_dir, labels)
    return img, labels


def sequence_folders(folder: Path, expected: str) -> list[Path]:
    """The sequence subfolders 0/, 1/, ... of a folder, in numeric order.

    Hidden folders (e.g. .ipynb_checkpoints) and loose files are ignored; any other folder,
    or a gap in the numbering, is an error.
    """
    _require_folder(folder, expected)
    numbered: dict[int, Path] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if not entry.is_dir() or entry.name.startswith("."):
                continue
            if not entry.name.isdigit() or str(int(entry.name)) != entry.name:
                raise DataLayoutError(
                    f"{folder}: unexpected folder {entry.name!r}; expected only sequence "
                    "folders named 0, 1, 2, ... (0..4 for the real data)"
                )
            numbered[int(entry.name)] = Path(entry.path)
    count = len(numbered)
    if count == 0 or sorted(numbered) != list(range(count)):
        found = ", ".join(str(n) for n in sorted(numbered)) or "none"
        raise DataLayoutError(
            f"{folder}: sequence folders found: {found}; expected folders named 0..N-1 "
            f"(0..4 for the real data) holding {expected} {_LAYOUT_HINT}"
        )
    return [numbered[i] for i in range(count)]


def _check_same_sequences(a_dir: Path, a: list[Path], b_dir: Path, b: list[Path]) -> None:
    if len(a) != len(b):
        raise DataLayoutError(
            f"{a_dir} has sequence folders 0..{len(a) - 1} but {b_dir} has 0..{len(b) - 1}; "
            "expected the same sequence folders in both"
        )


@dataclass
class _TestFiles:
    first_frames: list[Path]
    labels: list[list[Path]]
    truth: list[list[Path]] | None


def list_test_files(root: Path) -> _TestFiles:
    root = Path(root)
    _require_root(root)
    test_dir = root / "test"
    _require_folder(test_dir, "the test split with test_img/ and test_label/")
    img_dir, label_dir, gt_dir = test_dir / "test_img", test_dir / "test_label", test_dir / "test_gt"
    img_seqs = sequence_folders(img_dir, "the first frame of each test sequence")
    label_seqs = sequence_folders(label_dir, "the label PNGs of each test sequence")
    _check_same_sequences(img_dir, img_seqs, label_dir, label_seqs)

    # Several PNGs in a test_img folder are allowed: the first in frame order is the first frame.
    first_frames = [list_pngs(s, "the first frame of this test sequence")[0] for s in img_seqs]
    labels = [list_pngs(s, "the label PNGs of this test sequence") for s in label_seqs]
    lengths = {len(seq) for seq in labels}
    if len(lengths) > 1:
        counts = ", ".join(f"{s.name}: {len(seq)}" for s, seq in zip(label_seqs, labels))
        raise DataLayoutError(
            f"{label_dir}: test sequences have different numbers of labels ({counts}); "
            "expected the same number in every sequence (630 for the real data)"
        )

    truth = None
    if gt_dir.exists():
        gt_seqs = sequence_folders(gt_dir, "the ground-truth frames of each test sequence")
        _check_same_sequences(label_dir, label_seqs, gt_dir, gt_seqs)
        truth = [list_pngs(s, "the ground-truth frames of this test sequence") for s in gt_seqs]
        for s, gt, lab in zip(gt_seqs, truth, labels):
            if len(gt) != len(lab):
                raise DataLayoutError(
                    f"{s} has {len(gt)} ground-truth PNGs but its labels have {len(lab)}; "
                    "expected one ground-truth frame per label"
                )
    return _TestFiles(first_frames, labels, truth)


def check_layout(root: Path, splits: Sequence[str] = ALL_SPLITS) -> None:
    """Check folders, file names and counts of the given splits; nothing is decoded.

    Raises DataLayoutError naming the first problem found.
    """
    if isinstance(splits, str):
        splits = (splits,)
    unknown = [s for s in splits if s not in ALL_SPLITS]
    if unknown:
        raise ValueError(f"splits must be among {ALL_SPLITS} (got {list(splits)})")
    for split in splits:
        if split == "test":
            list_test_files(root)
        else:
            split_files(root, split)
