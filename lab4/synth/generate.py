"""Writing a dataset: one job per video, rendered by a pool of workers, and the manifest written last."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from lab4.data import SYNTH_MANIFEST as MANIFEST_NAME  # the loader reads the training videos' lengths from it
from lab4.data import read_synth_manifest
from lab4.synth.sizes import (DEFAULT_SIZE, DEFAULT_STYLE, FPS, FRAME_H, FRAME_W, SizeSpec, check_style, describe,
                              size_spec)  # fmt: skip
from lab4.synth.video import plan_video

log = logging.getLogger(__name__)

GENERATOR_VERSION = 5
# Written when generation starts and removed when it ends: a folder holding it holds an
# interrupted run of ours, which may be wiped and redone without asking for force=True.
PARTIAL_MARKER = "lab4_synth.partial"
FRAME_NAME = "frame{:06d}.png"
SPLIT_FOLDERS = ("train", "val", "test")


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
    manifest = read_synth_manifest(root)
    interrupted = (root / PARTIAL_MARKER).exists()
    if manifest is not None and _same_dataset(manifest, spec, seed, style):
        if _is_complete(root, spec):
            (root / PARTIAL_MARKER).unlink(missing_ok=True)
            _say(f"{root}: synthetic dataset ({style}, {size}, seed {seed}) already generated", progress)
            return root
        _say(f"{root}: files of this dataset are missing; generating it again", progress)
    elif manifest is not None and _same_dataset({**manifest, "version": GENERATOR_VERSION}, spec, seed, style):
        # An older generator's rendering of the same dataset: nothing in it was made by hand.
        _say(f"{root}: written by generator version {manifest.get('version')}; generating it again with "
             f"version {GENERATOR_VERSION}", progress)
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
