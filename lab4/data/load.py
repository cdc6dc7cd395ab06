"""Decoding a split's PNGs into uint8 arrays, cached on disk beside the data and in memory for the
life of the process."""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.pool import ThreadPool
from pathlib import Path

import numpy as np
from PIL import Image

from lab4.data.layout import (FRAME_H, FRAME_W, DataLayoutError, list_pngs, list_test_files, sequence_folders,
                              split_files)  # fmt: skip

CACHE_DIR_NAME = ".lab4_cache"
# Bump when the decoded content changes for the same source files (e.g. a new resize rule),
# so that caches written by older code are not trusted.
CACHE_FORMAT_VERSION = 1

# Below this many files a worker pool costs more to start than it saves.
_POOL_MIN_FILES = 512
_POOL_CHUNKSIZE = 64
_MAX_WORKERS = 8


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
        # threads keep up with a process pool, without pickling and without the fork/spawn
        # pitfalls of process pools in notebooks and unguarded scripts.
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


# The in-memory cache, for the life of the process.
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
    files = list_test_files(root)
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
