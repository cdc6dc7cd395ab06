"""Reading the Lab 4 data (the real Kaggle data or our synthetic stand-in).

Layout under a data root (the same for real and synthetic data)::

    train/train_img/*.png, train/train_label/*.png   same file names (real: 23,410 each)
    val/val_img/*.png,     val/val_label/*.png       same file names (real: 630 each)
    test/test_img/<s>/*.png     first frame of test sequence s (s = 0..4 for the real data)
    test/test_label/<s>/*.png   the pose labels of sequence s (real: 630 each)
    test/test_gt/<s>/*.png      optional ground-truth frames (only synthetic data has them)

Frames are ordered by the integer in their file name (frame2.png before frame10.png), like
the assignment's loader. Every image becomes a uint8 RGB array of FRAME_H x FRAME_W in
C,H,W order; images of another size are resized exactly as the assignment's torchvision
``Resize((32, 64))`` on a PIL image does.

Decoding the 46,820 training PNGs takes minutes, so decoded arrays are cached beside the
data in ``<root>/.lab4_cache/<split>.npz``, keyed by a fingerprint of the source files
(names, sizes, modification times): any change to the files invalidates the cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from pathlib import Path

import numpy as np
from PIL import Image

FRAME_H: int = 32
FRAME_W: int = 64

TRAIN_VAL_SPLITS = ("train", "val")
ALL_SPLITS = ("train", "val", "test")
CLIP_MODES = ("chunks", "random", "spread")
# The manifest lab4.synth writes beside the splits; among other things it knows where each training video ends.
SYNTH_MANIFEST = "lab4_synth.json"

CACHE_DIR_NAME = ".lab4_cache"
# Bump when the decoded content changes for the same source files (e.g. a new resize rule),
# so that caches written by older code are not trusted.
CACHE_FORMAT_VERSION = 1

# Below this many files a worker pool costs more to start than it saves.
_POOL_MIN_FILES = 512
_POOL_CHUNKSIZE = 64
_MAX_WORKERS = 8

_LAYOUT_HINT = "(see data/README.md)"
_PREVIEW_NAMES = 5


class DataLayoutError(ValueError):
    """The data folder does not have the Lab 4 layout, or one of its files is unusable."""


@dataclass
class VideoSplit:
    """One split (train or val) held in memory.

    The arrays are shared with the in-process cache and are therefore read-only; take
    copies (``gather_frames`` does) before changing them.
    """

    frames: np.ndarray  # uint8 [N, 3, H, W]
    labels: np.ndarray  # uint8 [N, 3, H, W]
    names: list[str]

    def __len__(self) -> int:
        return len(self.names)


@dataclass
class TestSet:
    """The test sequences: the given first frames and the pose labels of every frame."""

    first_frames: np.ndarray  # uint8 [S, 3, H, W]
    labels: np.ndarray  # uint8 [S, T, 3, H, W]
    truth: np.ndarray | None  # uint8 [S, T, 3, H, W] from test/test_gt when present, else None


# ---------------------------------------------------------------------------------------
# File listing and layout checks (cheap: directory listings only, nothing is decoded)
# ---------------------------------------------------------------------------------------


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


def _test_files(root: Path) -> _TestFiles:
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
            _test_files(root)
        else:
            split_files(root, split)


# ---------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------


def decode_png(path: Path) -> np.ndarray:
    """One PNG as uint8 [3, FRAME_H, FRAME_W], resized like the assignment's loader."""
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if image.size != (FRAME_W, FRAME_H):
                # torchvision's Resize((32, 64)) on a PIL image calls exactly this; PIL
                # widens the bilinear kernel when shrinking, i.e. it antialiases.
                image = image.resize((FRAME_W, FRAME_H), Image.BILINEAR)
            pixels = np.asarray(image, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataLayoutError(f"{path}: cannot read this PNG ({error}); expected a readable image file") from None
    return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def _worker_count() -> int:
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_WORKERS))


def decode_pngs(paths: Sequence[Path], progress: bool = False, desc: str = "decoding") -> np.ndarray:
    """Decode many PNGs into uint8 [len(paths), 3, FRAME_H, FRAME_W], in parallel when worth it."""
    out = np.empty((len(paths), 3, FRAME_H, FRAME_W), dtype=np.uint8)
    workers = _worker_count()
    if len(paths) < _POOL_MIN_FILES or workers == 1:
        results = map(decode_png, paths)
        _fill(out, results, progress, desc)
    else:
        # Threads, not processes: Pillow releases the GIL while decoding and resizing, so
        # threads were as fast as a process pool in our measurements, without pickling and
        # without the fork/spawn pitfalls of process pools in notebooks and unguarded scripts.
        with ThreadPool(workers) as pool:
            results = pool.imap(decode_png, paths, chunksize=_POOL_CHUNKSIZE)
            _fill(out, results, progress, desc)
    return out


def _fill(out: np.ndarray, results, progress: bool, desc: str) -> None:
    if progress:
        from tqdm import tqdm

        results = tqdm(results, total=len(out), desc=desc, unit="png")
    for i, pixels in enumerate(results):
        out[i] = pixels


# ---------------------------------------------------------------------------------------
# Cache: on disk beside the data, and in memory for the life of the process
# ---------------------------------------------------------------------------------------

_MEMORY: dict[tuple[str, str, str], object] = {}


def clear_memory_cache() -> None:
    """Forget the splits kept in memory by load_split / load_test."""
    _MEMORY.clear()


def fingerprint(root: Path, paths: Sequence[Path]) -> str:
    """A digest of the files' relative names, sizes and modification times (and the frame size)."""
    digest = hashlib.sha256(f"v{CACHE_FORMAT_VERSION} {FRAME_H}x{FRAME_W}\n".encode())
    # Plain strings and os.stat: pathlib's per-call overhead dominated this for 46k files.
    root_prefix = os.path.join(str(root), "")
    lines = []
    for path in map(str, paths):
        stat = os.stat(path)
        if stat.st_size == 0:
            raise DataLayoutError(f"{path}: file is empty (0 bytes); expected a PNG image")
        # Relative names, so that a data folder that moves keeps its cache.
        name = path[len(root_prefix) :] if path.startswith(root_prefix) else path
        lines.append(f"{name}\t{stat.st_size}\t{stat.st_mtime_ns}\n")
    digest.update("".join(lines).encode())
    return digest.hexdigest()


def _cache_path(root: Path, name: str) -> Path:
    return root / CACHE_DIR_NAME / f"{name}.npz"


def _read_cache(path: Path, key: str, count: int) -> np.ndarray | None:
    """The cached pixels if the cache file exists and matches the fingerprint, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as archive:
            if str(archive["fingerprint"]) != key:
                return None
            pixels = archive["pixels"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # a damaged cache is rebuilt, not reported
    if pixels.shape != (count, 3, FRAME_H, FRAME_W) or pixels.dtype != np.uint8:
        return None
    return pixels


def _write_cache(path: Path, key: str, pixels: np.ndarray, names: list[str]) -> None:
    """Write the cache atomically; on a read-only data folder warn and carry on without it."""
    tmp_name = None
    try:
        path.parent.mkdir(exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=path.stem + ".", suffix=".tmp", delete=False) as tmp:
            tmp_name = tmp.name
            np.savez(tmp, pixels=pixels, names=np.array(names, dtype=np.str_), fingerprint=np.array(key))
        os.chmod(tmp_name, 0o644)  # temporary files are private; others sharing the data may read the cache
        os.replace(tmp_name, path)
    except OSError as error:
        if tmp_name is not None:
            Path(tmp_name).unlink(missing_ok=True)
        warnings.warn(f"cannot write the decoded-data cache {path} ({error}); continuing without it", stacklevel=2)


def _decode_cached(root: Path, name: str, paths: list[Path], key: str, cache: bool, progress: bool) -> np.ndarray:
    """Pixels of the given files, from the disk cache when its fingerprint is still `key`."""
    cache_file = _cache_path(root, name)
    if cache:
        pixels = _read_cache(cache_file, key, len(paths))
        if pixels is not None:
            return pixels
    pixels = decode_pngs(paths, progress=progress, desc=f"decoding {name}")
    if cache:
        _write_cache(cache_file, key, pixels, [p.relative_to(root).as_posix() for p in paths])
    return pixels


def _memoised(root: Path, name: str, key: str, cache: bool, build: Callable[[], object]) -> object:
    if not cache:
        return build()
    memo_key = (str(root.resolve()), name, key)
    if memo_key not in _MEMORY:
        # Older versions of the same split are dropped so that memory does not grow with edits.
        for stale in [k for k in _MEMORY if k[:2] == memo_key[:2]]:
            del _MEMORY[stale]
        _MEMORY[memo_key] = build()
    return _MEMORY[memo_key]


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


# ---------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------


def load_split(root: Path, split: str, cache: bool = True, progress: bool = False) -> VideoSplit:
    """Load the train or val split as uint8 arrays [N, 3, FRAME_H, FRAME_W].

    With cache=True the decoded arrays are read from (or written to) <root>/.lab4_cache and
    kept in memory for the rest of the process; cache=False decodes every PNG again.
    """
    root = Path(root).absolute()
    img, labels = split_files(root, split)
    paths = img + labels
    key = fingerprint(root, paths)

    def build() -> VideoSplit:
        pixels = _decode_cached(root, split, paths, key, cache, progress)
        n = len(img)
        return VideoSplit(
            frames=_read_only(pixels[:n]),
            labels=_read_only(pixels[n:]),
            names=[p.name for p in img],
        )

    return _memoised(root, split, key, cache, build)  # type: ignore[return-value]


def load_test(root: Path, cache: bool = True) -> TestSet:
    """Load the test split: first frames [S, 3, H, W], labels and (if present) truth [S, T, 3, H, W]."""
    root = Path(root).absolute()
    files = _test_files(root)
    label_paths = [p for seq in files.labels for p in seq]
    truth_paths = [p for seq in files.truth for p in seq] if files.truth is not None else []
    paths = files.first_frames + label_paths + truth_paths
    key = fingerprint(root, paths)

    def build() -> TestSet:
        pixels = _decode_cached(root, "test", paths, key, cache, progress=False)
        s, t = len(files.labels), len(files.labels[0])
        first = pixels[:s]
        labels = pixels[s : s + s * t].reshape(s, t, 3, FRAME_H, FRAME_W)
        truth = pixels[s + s * t :].reshape(s, t, 3, FRAME_H, FRAME_W) if files.truth is not None else None
        return TestSet(
            first_frames=_read_only(first),
            labels=_read_only(labels),
            truth=_read_only(truth) if truth is not None else None,
        )

    return _memoised(root, "test", key, cache, build)  # type: ignore[return-value]


def load_frame_folders(folder: Path) -> np.ndarray:
    """Frames of sequence subfolders 0/, 1/, ... of a folder as uint8 [S, T, 3, FRAME_H, FRAME_W].

    Used to load ground truth for scoring; every sequence must have the same number of frames.
    Not cached.
    """
    folder = Path(folder)
    sequences = sequence_folders(folder, "the frame PNGs of each sequence")
    files = [list_pngs(s, "the frame PNGs of this sequence") for s in sequences]
    lengths = {len(seq) for seq in files}
    if len(lengths) > 1:
        counts = ", ".join(f"{s.name}: {len(seq)}" for s, seq in zip(sequences, files))
        raise DataLayoutError(
            f"{folder}: sequences have different numbers of frames ({counts}); "
            "expected the same number in every sequence"
        )
    pixels = decode_pngs([p for seq in files for p in seq])
    return pixels.reshape(len(files), len(files[0]), 3, FRAME_H, FRAME_W)


# ---------------------------------------------------------------------------------------
# Training clips
# ---------------------------------------------------------------------------------------


def train_video_lengths(root: Path, num_frames: int) -> list[int]:
    """Lengths of the videos the train split concatenates, in frame order.

    The synthetic data's manifest records them; the real data's train split is footage of one
    dancer in one studio and counts as one video (as the template's chunks treat it).
    """
    try:
        lengths = json.loads((Path(root) / SYNTH_MANIFEST).read_text())["train_video_lengths"]
    except (OSError, ValueError, KeyError, TypeError):
        return [num_frames]
    if not isinstance(lengths, list) or sum(lengths) != num_frames or min(lengths, default=0) < 1:
        return [num_frames]
    return [int(n) for n in lengths]


def dataset_style(root: Path) -> str:
    """What a dataset is, for captions: "studio" or "variety" synthetic data (a manifest written
    before styles existed is variety data), else "not synthetic" (the real data, or another)."""
    try:
        manifest = json.loads((Path(root) / SYNTH_MANIFEST).read_text())
    except (OSError, ValueError):
        return "not synthetic"
    if not isinstance(manifest, dict):
        return "not synthetic"
    return str(manifest.get("style", "variety"))


class ClipSampler:
    """The frames of each training clip, clip_len of them.

    mode "chunks" reproduces the template: consecutive non-overlapping chunks
    (num_frames // clip_len of them; a partial tail is dropped). mode "random" draws the
    same number of clips per epoch, each at a random offset, so that every frame can start
    a clip over the epochs. mode "spread" (for models conditioned on the first frame of a clip,
    reference="first") draws the same number of clips, each a random reference frame followed
    by clip_len - 1 other frames of the same video from anywhere in it, in frame order: the
    model then learns to paint the dancer far from where the reference frame shows her, as a
    630-frame rollout from one first frame asks, not only the few pixels a 16-frame clip moves.
    `video_lengths` (summing to num_frames) keeps spread clips inside one video.
    """

    def __init__(self, num_frames: int, clip_len: int, mode: str = "chunks", shuffle: bool = True,
                 video_lengths: Sequence[int] | None = None) -> None:
        if mode not in CLIP_MODES:
            raise ValueError(f"clip mode must be one of {CLIP_MODES} (got {mode!r})")
        if clip_len < 2 or clip_len > num_frames:
            raise ValueError(
                f"train_vi_len must be between 2 and the split size {num_frames} (got {clip_len}); "
                "a clip needs a previous frame and at least one frame to predict"
            )
        self.num_frames = num_frames
        self.clip_len = clip_len
        self.mode = mode
        self.shuffle = shuffle
        self.video_lengths = list(video_lengths) if video_lengths is not None else [num_frames]
        if sum(self.video_lengths) != num_frames:
            raise ValueError(f"video lengths sum to {sum(self.video_lengths)}, expected the split's {num_frames} frames")
        if mode == "spread" and max(self.video_lengths) < clip_len:
            raise ValueError(f"train_vi_len={clip_len}: clip_mode='spread' needs a training video of at least "
                             f"that many frames (the longest has {max(self.video_lengths)})")

    @property
    def num_clips(self) -> int:
        return self.num_frames // self.clip_len

    def clips_per_epoch(self, fraction: float = 1.0) -> int:
        """round(fraction * num_clips), at least one: the template's fast_train / partial options."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction (the template's partial / fast_partial) must be in (0, 1] (got {fraction})")
        return max(1, int(round(fraction * self.num_clips)))

    def __len__(self) -> int:
        return self.num_clips

    def starts(self, epoch: int, seed: int, fraction: float = 1.0, repeat: int = 0) -> np.ndarray:
        """int64 start indices for this epoch, deterministic in (seed, epoch, repeat).

        fraction < 1 keeps the first round(fraction * n) clips (at least one), like the
        template's fast_train / partial options. `repeat` numbers further passes over the
        data within one epoch (see `draw`).
        """
        keep = self.clips_per_epoch(fraction)
        rng = np.random.default_rng([seed, epoch] + ([repeat] if repeat else []))
        n = self.num_clips
        if self.mode == "spread":
            raise ValueError("clip_mode='spread' clips are not consecutive frames: use clips(), not starts()")
        if self.mode == "chunks":
            starts = np.arange(n, dtype=np.int64) * self.clip_len
        else:
            starts = rng.integers(0, self.num_frames - self.clip_len + 1, size=n, dtype=np.int64)
            if not self.shuffle:
                starts.sort()  # "not shuffled" means in frame order, as in chunks mode
        if self.shuffle:
            starts = rng.permutation(starts)
        return starts[:keep]

    def clips(self, epoch: int, seed: int, fraction: float = 1.0, repeat: int = 0) -> np.ndarray:
        """int64 frame indices (clips, clip_len) for this epoch, deterministic in (seed, epoch, repeat)."""
        if self.mode != "spread":
            return self.starts(epoch, seed, fraction, repeat)[:, None] + np.arange(self.clip_len, dtype=np.int64)
        keep = self.clips_per_epoch(fraction)
        rng = np.random.default_rng([seed, epoch, 1] + ([repeat] if repeat else []))
        lengths = np.array(self.video_lengths, dtype=np.int64)
        usable = lengths >= self.clip_len
        # Videos drawn in proportion to their length, so that every usable frame is as likely.
        videos = rng.choice(len(lengths), size=self.num_clips, p=np.where(usable, lengths, 0) / lengths[usable].sum())
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        out = np.empty((self.num_clips, self.clip_len), dtype=np.int64)
        for row, video in enumerate(videos):
            picked = rng.choice(lengths[video], size=self.clip_len, replace=False)
            # The reference first, the targets in frame order (they may lie before it).
            picked[1:].sort()
            out[row] = offsets[video] + picked
        if not self.shuffle:
            out = out[np.argsort(out[:, 0], kind="stable")]
        return out[:keep]

    def draw(self, epoch: int, seed: int, count: int) -> np.ndarray:
        """Exactly `count` clips for this epoch: whole passes over the data (each drawn as
        `clips` draws one epoch), the last one cut short. A budget in updates takes its clips
        from here, so that it does the same work on a dataset of any size."""
        passes = [self.clips(epoch, seed, repeat=r) for r in range(-(-count // self.num_clips))]
        return np.concatenate(passes)[:count]


def gather_frames(split: VideoSplit, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames and labels at `index` (clips, clip_len), each uint8 [clips, clip_len, 3, H, W]."""
    index = np.asarray(index, dtype=np.int64)
    bad = index[(index < 0) | (index >= len(split))]
    if bad.size:
        raise ValueError(f"frame index {int(bad[0])} is out of range; expected 0..{len(split) - 1}")
    return split.frames[index], split.labels[index]

