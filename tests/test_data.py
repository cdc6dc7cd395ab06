"""lab4.data: layout checks, decoding, the decoded-data cache, and training clips."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from lab4 import data
from lab4.data import (ClipSampler, DataLayoutError, gather_frames, load_frame_folders, load_split, load_test,
                       train_video_lengths)


@pytest.fixture(autouse=True)
def _fresh_memory_cache():
    data.clear_memory_cache()
    yield
    data.clear_memory_cache()


def _refuse_decoding(*args, **kwargs):
    raise AssertionError("PNGs were decoded although the cache should have been used")


# ---------------------------------------------------------------------------------------
# Loading a valid layout
# ---------------------------------------------------------------------------------------


def test_valid_layout_loads_in_numeric_frame_order(make_dataset):
    ds = make_dataset(n_train=20, n_val=8)
    data.check_layout(ds.root)

    train = load_split(ds.root, "train")
    assert len(train) == 20
    assert train.frames.shape == train.labels.shape == (20, 3, data.FRAME_H, data.FRAME_W)
    assert train.frames.dtype == train.labels.dtype == np.uint8
    # frame2 before frame10, although "frame10" < "frame2" as text.
    assert train.names == [f"frame{i}.png" for i in range(20)]
    np.testing.assert_array_equal(train.frames, ds.train_frames)
    np.testing.assert_array_equal(train.labels, ds.train_labels)

    val = load_split(ds.root, "val")
    np.testing.assert_array_equal(val.frames, ds.val_frames)
    np.testing.assert_array_equal(val.labels, ds.val_labels)


def test_test_split_loads_with_and_without_ground_truth(make_dataset, tmp_path):
    ds = make_dataset(n_test=3, test_len=4)
    test = load_test(ds.root)
    assert test.first_frames.shape == (3, 3, 32, 64)
    assert test.labels.shape == (3, 4, 3, 32, 64)
    assert test.truth is None
    np.testing.assert_array_equal(test.first_frames, ds.test_first)
    np.testing.assert_array_equal(test.labels, ds.test_labels)

    shutil.rmtree(ds.root)
    ds = make_dataset(n_test=2, test_len=3, with_gt=True)
    test = load_test(ds.root)
    np.testing.assert_array_equal(test.truth, ds.test_truth)
    np.testing.assert_array_equal(load_frame_folders(ds.root / "test" / "test_gt"), ds.test_truth)


def test_first_png_in_frame_order_is_the_first_frame(make_dataset, write_png):
    ds = make_dataset(n_test=2)
    later = np.zeros((3, 32, 64), np.uint8)
    write_png(ds.root / "test" / "test_img" / "0" / "frame10.png", later)
    np.testing.assert_array_equal(load_test(ds.root).first_frames, ds.test_first)


def test_loaded_arrays_are_read_only(make_dataset):
    ds = make_dataset()
    train = load_split(ds.root, "train")
    with pytest.raises(ValueError):
        train.frames[0, 0, 0, 0] = 1


def test_larger_images_are_resized_like_torchvision_resize(make_dataset, write_png):
    ds = make_dataset()
    rng = np.random.default_rng(1)
    big = rng.integers(0, 256, (3, 64, 128), dtype=np.uint8)  # 128 wide, 64 high
    path = ds.root / "train" / "train_img" / "frame3.png"
    write_png(path, big)

    loaded = load_split(ds.root, "train").frames[3]
    expected = Image.fromarray(big.transpose(1, 2, 0)).resize((64, 32), Image.BILINEAR)
    np.testing.assert_array_equal(loaded, np.asarray(expected).transpose(2, 0, 1))


def test_shrinking_is_antialiased(tmp_path):
    # A one-pixel checkerboard averages to grey when shrunk with antialiasing; bilinear
    # sampling without it (torch's interpolate, antialias=False) would keep 0s and 255s.
    checker = (np.indices((64, 128)).sum(axis=0) % 2 * 255).astype(np.uint8)
    path = tmp_path / "frame1.png"
    Image.fromarray(checker).save(path)
    small = data.decode_png(path)
    assert small.shape == (3, 32, 64)
    assert 120 <= small.min() and small.max() <= 135


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "LA"])
def test_other_image_modes_become_rgb(tmp_path, mode):
    rng = np.random.default_rng(2)
    rgb = Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8))
    image = rgb.convert(mode)
    path = tmp_path / f"frame1_{mode}.png"
    image.save(path)

    pixels = data.decode_png(path)
    assert pixels.shape == (3, 32, 64) and pixels.dtype == np.uint8
    expected = np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1)
    np.testing.assert_array_equal(pixels, expected)


def test_many_files_decode_in_a_worker_pool_with_the_same_result(make_dataset, monkeypatch):
    ds = make_dataset(n_train=20)
    monkeypatch.setattr(data.load, "_POOL_MIN_FILES", 1)
    monkeypatch.setattr(data.load, "_POOL_CHUNKSIZE", 3)
    train = load_split(ds.root, "train", cache=False)
    np.testing.assert_array_equal(train.frames, ds.train_frames)
    np.testing.assert_array_equal(train.labels, ds.train_labels)


# ---------------------------------------------------------------------------------------
# Malformed layouts: one clear error each, naming the path and what was expected
# ---------------------------------------------------------------------------------------


def test_missing_root(tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(DataLayoutError) as error:
        data.check_layout(root)
    assert str(root) in str(error.value)
    assert "data root not found" in str(error.value)


def test_missing_split_folder(make_dataset):
    ds = make_dataset()
    label_dir = ds.root / "train" / "train_label"
    shutil.rmtree(label_dir)
    with pytest.raises(DataLayoutError) as error:
        load_split(ds.root, "train")
    message = str(error.value)
    assert message.startswith(f"{label_dir}: folder not found")
    assert "expected the label PNGs of the train split" in message
    assert "data/README.md" in message


def test_image_label_count_mismatch(make_dataset):
    ds = make_dataset(n_train=20)
    (ds.root / "train" / "train_label" / "frame7.png").unlink()
    with pytest.raises(DataLayoutError) as error:
        data.check_layout(ds.root, ["train"])
    message = str(error.value)
    assert "train_img has 20 PNGs" in message and "train_label has 19" in message
    assert "only in train_img: frame7.png" in message


def test_image_label_name_mismatch(make_dataset):
    ds = make_dataset(n_val=8)
    label_dir = ds.root / "val" / "val_label"
    (label_dir / "frame3.png").rename(label_dir / "frame30.png")
    with pytest.raises(DataLayoutError) as error:
        load_split(ds.root, "val")
    message = str(error.value)
    assert str(label_dir) in message and "file names differ" in message
    assert "only in val_img: frame3.png" in message and "only in val_label: frame30.png" in message


def test_unreadable_png_is_named(make_dataset):
    ds = make_dataset()
    broken = ds.root / "train" / "train_img" / "frame5.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG")
    with pytest.raises(DataLayoutError) as error:
        load_split(ds.root, "train")
    assert str(broken) in str(error.value)
    assert "cannot read this PNG" in str(error.value)


def test_truncated_png_is_named(make_dataset):
    ds = make_dataset()
    broken = ds.root / "val" / "val_label" / "frame2.png"
    broken.write_bytes(broken.read_bytes()[:200])
    with pytest.raises(DataLayoutError, match="cannot read this PNG") as error:
        load_split(ds.root, "val")
    assert str(broken) in str(error.value)


def test_empty_png_file_is_reported_before_decoding(make_dataset, monkeypatch):
    ds = make_dataset()
    empty = ds.root / "train" / "train_img" / "frame4.png"
    empty.write_bytes(b"")
    monkeypatch.setattr(data.load, "decode_pngs", _refuse_decoding)
    with pytest.raises(DataLayoutError) as error:
        load_split(ds.root, "train")
    assert str(empty) in str(error.value) and "0 bytes" in str(error.value)


def test_empty_split(make_dataset):
    ds = make_dataset()
    img_dir = ds.root / "val" / "val_img"
    for png in img_dir.glob("*.png"):
        png.unlink()
    (img_dir / "notes.txt").write_text("moved elsewhere")
    with pytest.raises(DataLayoutError) as error:
        data.check_layout(ds.root, ["val"])
    message = str(error.value)
    assert message.startswith(f"{img_dir}: no PNG files")
    assert "notes.txt" in message and "expected the frame PNGs of the val split" in message


def test_name_without_frame_number(make_dataset, write_png):
    ds = make_dataset()
    odd = ds.root / "train" / "train_img" / "cover.png"
    write_png(odd, np.zeros((3, 32, 64), np.uint8))
    with pytest.raises(DataLayoutError) as error:
        data.check_layout(ds.root, ["train"])
    assert str(odd) in str(error.value)
    assert "no frame number" in str(error.value)


def test_missing_test_sequence_in_labels(make_dataset):
    ds = make_dataset(n_test=3)
    shutil.rmtree(ds.root / "test" / "test_label" / "2")
    with pytest.raises(DataLayoutError) as error:
        load_test(ds.root)
    message = str(error.value)
    assert str(ds.root / "test" / "test_img") in message and str(ds.root / "test" / "test_label") in message
    assert "0..2" in message and "0..1" in message and "expected the same sequence folders" in message


def test_gap_in_test_sequence_folders(make_dataset):
    ds = make_dataset(n_test=3)
    shutil.rmtree(ds.root / "test" / "test_img" / "1")
    with pytest.raises(DataLayoutError) as error:
        data.check_layout(ds.root, ["test"])
    message = str(error.value)
    assert str(ds.root / "test" / "test_img") in message
    assert "found: 0, 2" in message and "expected folders named 0..N-1" in message


def test_unexpected_folder_among_test_sequences(make_dataset):
    ds = make_dataset(n_test=2)
    (ds.root / "test" / "test_label" / "extra").mkdir()
    (ds.root / "test" / "test_label" / ".ipynb_checkpoints").mkdir()  # hidden: ignored
    with pytest.raises(DataLayoutError, match="unexpected folder 'extra'"):
        load_test(ds.root)


def test_test_img_folder_without_png(make_dataset):
    ds = make_dataset(n_test=2)
    folder = ds.root / "test" / "test_img" / "1"
    for png in folder.glob("*.png"):
        png.unlink()
    with pytest.raises(DataLayoutError) as error:
        load_test(ds.root)
    assert str(error.value).startswith(f"{folder}: no PNG files")
    assert "expected the first frame of this test sequence" in str(error.value)


def test_test_sequences_of_different_lengths(make_dataset):
    ds = make_dataset(n_test=2, test_len=4)
    (ds.root / "test" / "test_label" / "1" / "frame3.png").unlink()
    with pytest.raises(DataLayoutError, match=r"different numbers of labels \(0: 4, 1: 3\)"):
        load_test(ds.root)


def test_ground_truth_count_must_match_labels(make_dataset):
    ds = make_dataset(n_test=2, test_len=4, with_gt=True)
    gt_folder = ds.root / "test" / "test_gt" / "0"
    (gt_folder / "frame0.png").unlink()
    with pytest.raises(DataLayoutError) as error:
        load_test(ds.root)
    assert str(gt_folder) in str(error.value) and "3 ground-truth PNGs but its labels have 4" in str(error.value)


def test_frame_folders_of_different_lengths(make_dataset):
    ds = make_dataset(n_test=2, test_len=4, with_gt=True)
    (ds.root / "test" / "test_gt" / "1" / "frame0.png").unlink()
    with pytest.raises(DataLayoutError, match=r"different numbers of frames \(0: 4, 1: 3\)"):
        load_frame_folders(ds.root / "test" / "test_gt")


def test_unknown_split_names_the_parameter(make_dataset):
    ds = make_dataset()
    with pytest.raises(ValueError, match="split must be one of"):
        load_split(ds.root, "test")
    with pytest.raises(ValueError, match="splits must be among"):
        data.check_layout(ds.root, ["training"])


# ---------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------


def test_cache_is_written_and_reused(make_dataset, monkeypatch):
    ds = make_dataset()
    first = load_split(ds.root, "val")
    assert (ds.root / ".lab4_cache" / "val.npz").is_file()
    assert not list((ds.root / ".lab4_cache").glob("*.tmp"))

    # Same process: the split is kept in memory.
    assert load_split(ds.root, "val") is first

    # A new process (simulated): read from disk, nothing decoded.
    data.clear_memory_cache()
    monkeypatch.setattr(data.load, "decode_pngs", _refuse_decoding)
    again = load_split(ds.root, "val")
    np.testing.assert_array_equal(again.frames, ds.val_frames)
    np.testing.assert_array_equal(again.labels, ds.val_labels)
    assert again.names == first.names


def test_test_split_cache_is_reused(make_dataset, monkeypatch):
    ds = make_dataset(with_gt=True)
    load_test(ds.root)
    data.clear_memory_cache()
    monkeypatch.setattr(data.load, "decode_pngs", _refuse_decoding)
    test = load_test(ds.root)
    np.testing.assert_array_equal(test.labels, ds.test_labels)
    np.testing.assert_array_equal(test.truth, ds.test_truth)


def test_cache_is_invalidated_when_a_file_changes(make_dataset, write_png):
    ds = make_dataset()
    load_split(ds.root, "train")

    changed = ds.root / "train" / "train_img" / "frame6.png"
    new_pixels = np.full((3, 32, 64), 77, np.uint8)
    stat = changed.stat()
    write_png(changed, new_pixels)
    # Rule out a coarse file-system clock hiding the rewrite.
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))

    in_memory = load_split(ds.root, "train")
    np.testing.assert_array_equal(in_memory.frames[6], new_pixels)

    data.clear_memory_cache()
    from_disk = load_split(ds.root, "train")
    np.testing.assert_array_equal(from_disk.frames[6], new_pixels)
    np.testing.assert_array_equal(from_disk.frames[5], ds.train_frames[5])


def test_cache_is_invalidated_when_a_file_is_added(make_dataset, write_png):
    ds = make_dataset(n_val=8)
    load_split(ds.root, "val")
    extra = np.full((3, 32, 64), 9, np.uint8)
    write_png(ds.root / "val" / "val_img" / "frame8.png", extra)
    write_png(ds.root / "val" / "val_label" / "frame8.png", extra)
    data.clear_memory_cache()
    val = load_split(ds.root, "val")
    assert len(val) == 9
    np.testing.assert_array_equal(val.frames[8], extra)


def test_damaged_cache_is_rebuilt(make_dataset):
    ds = make_dataset()
    load_split(ds.root, "val")
    (ds.root / ".lab4_cache" / "val.npz").write_bytes(b"garbage")
    data.clear_memory_cache()
    np.testing.assert_array_equal(load_split(ds.root, "val").frames, ds.val_frames)


def test_unwritable_cache_folder_falls_back_with_a_warning(make_dataset):
    ds = make_dataset()
    # A file where the cache folder should be fails like read-only data, even for root.
    (ds.root / ".lab4_cache").write_text("in the way")
    with pytest.warns(UserWarning, match="cannot write the decoded-data cache") as caught:
        val = load_split(ds.root, "val")
    assert len(caught) == 1
    np.testing.assert_array_equal(val.frames, ds.val_frames)


def test_no_cache_writes_nothing(make_dataset):
    ds = make_dataset()
    val = load_split(ds.root, "val", cache=False)
    np.testing.assert_array_equal(val.frames, ds.val_frames)
    assert not (ds.root / ".lab4_cache").exists()


# ---------------------------------------------------------------------------------------
# Training clips
# ---------------------------------------------------------------------------------------


def test_chunks_follow_the_template_and_drop_the_tail():
    sampler = ClipSampler(num_frames=20, clip_len=6, mode="chunks", shuffle=False)
    assert len(sampler) == 3
    np.testing.assert_array_equal(sampler.starts(epoch=0, seed=0), [0, 6, 12])
    assert sampler.starts(0, 0).dtype == np.int64


def test_shuffled_chunks_are_a_permutation_deterministic_in_seed_and_epoch():
    sampler = ClipSampler(num_frames=160, clip_len=4, mode="chunks", shuffle=True)
    starts = sampler.starts(epoch=3, seed=7)
    assert sorted(starts.tolist()) == list(range(0, 160, 4))
    np.testing.assert_array_equal(starts, sampler.starts(epoch=3, seed=7))
    assert not np.array_equal(starts, sampler.starts(epoch=4, seed=7))
    assert not np.array_equal(starts, sampler.starts(epoch=3, seed=8))


def test_random_mode_has_the_same_clip_count_at_valid_offsets():
    sampler = ClipSampler(num_frames=50, clip_len=16, mode="random", shuffle=True)
    starts = sampler.starts(epoch=0, seed=1)
    assert len(starts) == 50 // 16
    assert starts.min() >= 0 and starts.max() <= 50 - 16
    np.testing.assert_array_equal(starts, sampler.starts(epoch=0, seed=1))

    many = ClipSampler(num_frames=1000, clip_len=2, mode="random", shuffle=True).starts(epoch=0, seed=1)
    assert len(set(many.tolist())) > 300 and many.max() <= 998  # not the chunk grid

    in_order = ClipSampler(num_frames=1000, clip_len=2, mode="random", shuffle=False).starts(epoch=0, seed=1)
    assert np.all(np.diff(in_order) >= 0)


@pytest.mark.parametrize(("fraction", "kept"), [(1.0, 10), (0.4, 4), (0.25, 2), (0.01, 1)])
def test_fraction_keeps_the_first_clips(fraction, kept):
    sampler = ClipSampler(num_frames=100, clip_len=10, mode="chunks", shuffle=True)
    full = sampler.starts(epoch=2, seed=0)
    part = sampler.starts(epoch=2, seed=0, fraction=fraction)
    assert len(part) == kept == sampler.clips_per_epoch(fraction)
    np.testing.assert_array_equal(part, full[:kept])


def test_clip_sampler_rejects_bad_parameters():
    with pytest.raises(ValueError, match=r"train_vi_len .* split size 20 \(got 1\)"):
        ClipSampler(num_frames=20, clip_len=1)
    with pytest.raises(ValueError, match=r"train_vi_len .* split size 20 \(got 21\)"):
        ClipSampler(num_frames=20, clip_len=21)
    with pytest.raises(ValueError, match=r"one of \('chunks', 'random'\).*'sliding'"):
        ClipSampler(num_frames=20, clip_len=4, mode="sliding")
    with pytest.raises(ValueError, match="fraction"):
        ClipSampler(num_frames=20, clip_len=4).starts(0, 0, fraction=0.0)


def test_clips_of_consecutive_modes_are_their_starts_onwards():
    for mode in ("chunks", "random"):
        sampler = ClipSampler(num_frames=100, clip_len=6, mode=mode, shuffle=True)
        starts = sampler.starts(epoch=1, seed=3, fraction=0.5)
        np.testing.assert_array_equal(sampler.clips(epoch=1, seed=3, fraction=0.5), starts[:, None] + np.arange(6))


def test_train_video_lengths_come_from_the_synthetic_manifest(tmp_path):
    assert train_video_lengths(tmp_path, 100) == [100]  # real data: one video
    (tmp_path / "lab4_synth.json").write_text(json.dumps({"train_video_lengths": [60, 40]}))
    assert train_video_lengths(tmp_path, 100) == [60, 40]
    assert train_video_lengths(tmp_path, 90) == [90]  # the manifest describes other files
    (tmp_path / "lab4_synth.json").write_text("{not json")
    assert train_video_lengths(tmp_path, 100) == [100]


def test_gather_frames_returns_the_frames_at_those_indices(make_dataset):
    ds = make_dataset(n_train=20)
    train = load_split(ds.root, "train")
    index = np.array([[0, 5, 19], [13, 2, 3]])
    frames, labels = gather_frames(train, index)
    assert frames.shape == labels.shape == (2, 3, 3, 32, 64)
    assert frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, ds.train_frames[index])
    np.testing.assert_array_equal(labels, ds.train_labels[index])
    assert frames.flags.writeable  # a copy, free to change
    with pytest.raises(ValueError, match=r"frame index 20 is out of range; expected 0..19"):
        gather_frames(train, np.array([[0, 20]]))


@pytest.mark.parametrize("mode", ["chunks", "random"])
def test_draw_gives_exactly_the_clips_asked_for(mode: str) -> None:
    sampler = ClipSampler(40, 5, mode)
    first_pass = sampler.clips(epoch=3, seed=1)
    drawn = sampler.draw(epoch=3, seed=1, count=19)
    assert drawn.shape == (19, 5)
    np.testing.assert_array_equal(drawn[:8], first_pass)  # the first pass is the epoch's own draw
    np.testing.assert_array_equal(drawn, sampler.draw(epoch=3, seed=1, count=19))
    assert not np.array_equal(drawn[8:16], first_pass)  # later passes are drawn anew


def test_dataset_style_reads_the_manifest(tmp_path) -> None:
    assert data.dataset_style(tmp_path) == "not synthetic"  # the real data has no manifest
    (tmp_path / "lab4_synth.json").write_text(json.dumps({"size": "tiny"}))
    assert data.dataset_style(tmp_path) == "variety"  # written before there were styles
    (tmp_path / "lab4_synth.json").write_text(json.dumps({"style": "studio"}))
    assert data.dataset_style(tmp_path) == "studio"
