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

The modules: ``layout`` (listing and checking the files), ``load`` (decoding and the caches)
and ``clips`` (which frames each training clip takes).
"""

from __future__ import annotations

from lab4.data.clips import CLIP_MODES, ClipSampler, dataset_style, gather_frames, train_video_lengths
from lab4.data.layout import (ALL_SPLITS, FRAME_H, FRAME_W, SYNTH_MANIFEST, TRAIN_VAL_SPLITS, DataLayoutError,
                              check_layout, frame_number, list_pngs, read_synth_manifest, sequence_folders,
                              split_files)  # fmt: skip
from lab4.data.load import (CACHE_DIR_NAME, CACHE_FORMAT_VERSION, TestSet, VideoSplit, clear_memory_cache,
                            decode_png, decode_pngs, fingerprint, load_frame_folders, load_split, load_test)  # fmt: skip

__all__ = [
    "ALL_SPLITS",
    "CACHE_DIR_NAME",
    "CACHE_FORMAT_VERSION",
    "CLIP_MODES",
    "FRAME_H",
    "FRAME_W",
    "SYNTH_MANIFEST",
    "TRAIN_VAL_SPLITS",
    "ClipSampler",
    "DataLayoutError",
    "TestSet",
    "VideoSplit",
    "check_layout",
    "read_synth_manifest",
    "clear_memory_cache",
    "dataset_style",
    "decode_png",
    "decode_pngs",
    "fingerprint",
    "frame_number",
    "gather_frames",
    "list_pngs",
    "load_frame_folders",
    "load_split",
    "load_test",
    "sequence_folders",
    "split_files",
    "train_video_lengths",
]
