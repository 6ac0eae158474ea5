"""Tests for kerascnn.data.sources: every kind of input, streamed."""

import os
import time
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerascnn import datasets
from kerascnn.data import normalization_layer, resolve_data, split_indices
from kerascnn.data.sources import ArraySource, FileSource, StreamSource

CLASSES = ("ant", "bee", "cat")


def _folder(root, per_class=(6, 6, 6), size=(12, 10), mode="RGB"):
    """Class folders of PNGs whose pixel (0, 0) identifies the image."""
    for c, (name, count) in enumerate(zip(CLASSES, per_class)):
        os.makedirs(root / name, exist_ok=True)
        for i in range(count):
            value = 80 * c + i
            array = np.full((size[0], size[1], 3), value, np.uint8)
            image = Image.fromarray(array)
            if mode != "RGB":
                image = image.convert(mode)
            image.save(root / name / f"{i:03d}.png")
    return root


def _ids(source, **kwargs):
    seen, labels = [], []
    for x, y in source.dataset(4, **kwargs):
        assert x.dtype == tf.float32 and y.dtype == tf.int64
        seen.extend(int(v) for v in x.numpy()[:, 0, 0, 0])
        labels.extend(int(v) for v in y.numpy())
    return seen, labels


def test_folder_streamed_stratified_and_every_image_once(tmp_path):
    root = _folder(tmp_path / "imgs", per_class=(10, 10, 10))
    resolved = resolve_data(str(root), validation_split=0.2, test_split=0.1,
                            seed=3)
    assert resolved.class_names == list(CLASSES)
    assert resolved.input_shape == (12, 10, 3)
    train, val, test = resolved.train, resolved.validation, resolved.test
    assert isinstance(train, FileSource) and train.kind == "files"
    assert (train.num_samples, val.num_samples, test.num_samples) == (21, 6, 3)
    # Stratified: every class in every split, as split_indices on the list.
    np.testing.assert_array_equal(train.class_counts(3), [7, 7, 7])
    np.testing.assert_array_equal(val.class_counts(3), [2, 2, 2])
    index = split_indices(np.repeat([0, 1, 2], 10), 0.2, 0.1, seed=3)
    np.testing.assert_array_equal(np.sort(test.labels),
                                  np.sort(np.repeat([0, 1, 2], 10)[index[2]]))
    all_ids = set()
    for source in (train, val, test):
        ids, labels = _ids(source, shuffle=True, seed=1)
        assert len(ids) == len(set(ids)) == source.num_samples
        # Each pixel value belongs to its label's class (80 * c + i).
        assert [v // 80 for v in ids] == labels
        all_ids |= set(ids)
    assert len(all_ids) == 30
    # Reshuffled each epoch, reproducible with a seed.
    dataset = train.dataset(4, shuffle=True, seed=5)
    first = [x.numpy()[:, 0, 0, 0].tolist() for x, _ in dataset]
    second = [x.numpy()[:, 0, 0, 0].tolist() for x, _ in dataset]
    assert first != second
    assert first == [x.numpy()[:, 0, 0, 0].tolist()
                     for x, _ in train.dataset(4, shuffle=True, seed=5)]
    assert train.steps(4) == 6 == dataset.cardinality().numpy()
    again = resolve_data(str(root), validation_split=0.2, test_split=0.1,
                         seed=3)
    assert again.fingerprint == resolved.fingerprint
    np.testing.assert_array_equal(again.test.paths, test.paths)
    other = resolve_data(str(root), validation_split=0.2, test_split=0.1,
                         seed=4)
    assert other.fingerprint != resolved.fingerprint


def test_folder_size_and_color_inference_and_cache(tmp_path):
    root = _folder(tmp_path / "gray", mode="L")
    resolved = resolve_data(root, test_split=0, validation_split=0.5)
    assert resolved.input_shape == (12, 10, 1)
    _write_png(root / "ant" / "big.png", np.zeros((20, 16), np.uint8))
    with pytest.raises(ValueError, match=r"Received: image_size=None with .*"
                       r"big\.png.* of size \(20, 16\)"):
        resolve_data(root)
    resolved = resolve_data(root, image_size=8, color_mode="rgb",
                            cache=str(tmp_path / "cache"), test_split=0,
                            validation_split=0.3)
    x, _ = next(iter(resolved.train.dataset(2)))
    assert x.shape == (2, 8, 8, 3)
    for _ in range(2):  # the second epoch reads the disk cache
        ids, _ = _ids(resolved.train)
    assert any(name.startswith("cache.train") for name in os.listdir(tmp_path))
    with pytest.raises(ValueError, match="Received: cache="):
        resolve_data(root, cache=str(tmp_path / "missing" / "c"))


def _write_png(path, array):
    Image.fromarray(array).save(path)


def test_corrupt_file_named_before_training_or_skipped(tmp_path):
    root = _folder(tmp_path / "imgs")
    bad = root / "bee" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not a png at all")
    cut = root / "cat" / "cut.jpg"
    Image.fromarray(np.zeros((12, 10, 3), np.uint8)).save(cut)
    cut.write_bytes(cut.read_bytes()[:-40])
    with pytest.raises(ValueError, match=r"corrupt image file .*broken\.png"
                       r".*1 more unreadable"):
        resolve_data(root)
    with pytest.warns(UserWarning, match=r"2 unreadable .*broken\.png.*cut"):
        resolved = resolve_data(root, on_error="skip", test_split=0,
                                validation_split=0.2)
    total = resolved.train.num_samples + resolved.validation.num_samples
    assert total == 18
    ids, _ = _ids(resolved.train)
    assert len(ids) == resolved.train.num_samples


def test_sixteen_bit_png_scaled_not_clipped(tmp_path):
    wide = (np.arange(12 * 10).reshape(12, 10) * 500).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(wide).save(path)
    assert Image.open(path).mode == "I;16"
    expected = np.round(wide / 257.0)
    image = datasets.read_image(str(path), color_mode="grayscale")
    assert image.dtype == np.float32 and image.shape == (12, 10, 1)
    np.testing.assert_array_equal(image[..., 0], expected)
    assert datasets.read_image(str(path)).shape == (12, 10, 3)
    # The in-memory loader and the streamed folder agree.
    for c in CLASSES:
        os.makedirs(tmp_path / "f" / c)
        for i in range(3):
            Image.fromarray(wide).save(tmp_path / "f" / c / f"{i}.png")
    images, _, _ = datasets.load_directory(tmp_path / "f",
                                           color_mode="grayscale")
    np.testing.assert_array_equal(images[0, ..., 0], expected)
    resolved = resolve_data(tmp_path / "f", validation_split=0, test_split=0)
    assert resolved.input_shape == (12, 10, 1)
    x, _ = next(iter(resolved.train.dataset(2)))
    np.testing.assert_array_equal(x.numpy()[0, ..., 0], expected)
    assert x.numpy().max() < 255


def test_read_image_modes_and_errors(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "p.png")
    Image.fromarray(rgb).convert("RGBA").save(tmp_path / "a.bmp")
    Image.fromarray(rgb).save(tmp_path / "a.gif")
    np.testing.assert_array_equal(datasets.read_image(tmp_path / "a.png"), rgb)
    palette = np.asarray(Image.open(tmp_path / "p.png").convert("RGB"))
    np.testing.assert_array_equal(datasets.read_image(tmp_path / "p.png"),
                                  palette)
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(
        datasets.read_image(tmp_path / "a.png", color_mode="grayscale")[..., 0],
        gray)
    rgba = datasets.read_image(tmp_path / "a.png", color_mode="rgba")
    assert rgba.shape == (6, 5, 4) and (rgba[..., 3] == 255).all()
    assert datasets.read_image(tmp_path / "a.gif").shape == (6, 5, 3)
    assert datasets.read_image(tmp_path / "a.png", image_size=4).shape == \
        (4, 4, 3)
    with pytest.raises(ValueError, match="not a directory"):
        datasets.read_image(tmp_path)
    (tmp_path / "bad.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"corrupt image file .*bad\.png"):
        datasets.read_image(tmp_path / "bad.png")


def test_decompression_bomb_refused_naming_the_file(tmp_path, monkeypatch):
    Image.new("L", (64, 64)).save(tmp_path / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ValueError, match=r"huge\.png.*decompression-bomb"):
        datasets.read_image(tmp_path / "huge.png")


def test_digits_name_and_folder_ambiguity(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    resolved = resolve_data("digits")
    assert resolved.train.kind == "array" and resolved.num_classes == 10
    _folder(tmp_path / "digits")
    for call in (lambda: resolve_data("digits"),
                 lambda: datasets.load("digits")):
        with pytest.raises(ValueError, match=r"both a built-in dataset and "
                           r"the existing folder .*'\./digits'"):
            call()
    resolved = resolve_data("./digits", test_split=0, validation_split=0.2)
    assert resolved.class_names == list(CLASSES)


def _tf_data(n=24, classes=3, size=(8, 8, 1), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n,) + size).astype("uint8")
    y = np.arange(n) % classes
    return x, y


@pytest.mark.parametrize("batched", [True, False])
def test_tf_data_with_explicit_splits(batched):
    x, y = _tf_data()
    train = tf.data.Dataset.from_tensor_slices((x, y))
    if batched:
        train = train.batch(5)
    val = tf.data.Dataset.from_tensor_slices((x[:6], y[:6])).batch(4)
    resolved = resolve_data(train, validation_data=val,
                            test_data=(x[:5], y[:5]))
    assert isinstance(resolved.train, StreamSource)
    assert resolved.train.kind == "dataset" and resolved.train.labels is None
    assert resolved.train.num_samples == 24 and resolved.num_classes == 3
    assert resolved.input_shape == (8, 8, 1)
    assert isinstance(resolved.test, ArraySource)
    np.testing.assert_array_equal(resolved.train.class_counts(3), [8, 8, 8])
    images, labels = resolved.train.to_numpy()
    np.testing.assert_array_equal(images, x.astype("float32"))
    np.testing.assert_array_equal(labels, y)
    seen = np.concatenate([b.numpy() for b, _ in resolved.train.dataset(
        7, shuffle=True, seed=2)])
    assert len(seen) == 24 and resolved.train.steps(7) == 4
    np.testing.assert_array_equal(np.sort(seen[:, 0, 0, 0]),
                                  np.sort(x[:, 0, 0, 0]))
    assert resolved.validation.num_samples == 6
    with pytest.raises(ValueError, match=r"`validation_data` must be given "
                       r"when `data` is a tf.data.Dataset"):
        resolve_data(train)
    with pytest.raises(ValueError, match=r"`test_data` must be given"):
        resolve_data(train, validation_data=val)
    only = resolve_data(train, validation_split=0, test_split=0)
    assert only.validation is None and only.test is None


def test_tf_data_bad_streams():
    x, y = _tf_data()
    with pytest.raises(ValueError, match="infinite"):
        resolve_data(tf.data.Dataset.from_tensor_slices((x, y)).repeat(),
                     validation_split=0, test_split=0)
    with pytest.raises(ValueError, match="real-valued"):
        resolve_data(tf.data.Dataset.from_tensor_slices(
            (x.astype(np.complex64), y)), validation_split=0, test_split=0)
    with pytest.raises(ValueError, match=r"one-hot rows .*row 0"):
        resolve_data(tf.data.Dataset.from_tensor_slices(
            (x, np.ones((24, 3), np.int64))).batch(4), validation_split=0,
            test_split=0)
    with pytest.raises(ValueError, match="Received: element_spec="):
        resolve_data(tf.data.Dataset.from_tensor_slices(x),
                     validation_split=0, test_split=0)


class _Batches(keras.utils.PyDataset):
    def __init__(self, x, y, batch_size):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self):
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index):
        part = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.x[part], keras.utils.to_categorical(self.y[part], 3)


def test_pydataset_with_one_hot_labels():
    x, y = _tf_data(size=(6, 6, 3))
    resolved = resolve_data(_Batches(x, y, 5), validation_data=_Batches(
        x[:6], y[:6], 4), test_split=0)
    assert resolved.train.kind == "pydataset"
    assert resolved.input_shape == (6, 6, 3) and resolved.num_classes == 3
    images, labels = resolved.train.to_numpy()
    np.testing.assert_array_equal(labels, y)
    np.testing.assert_array_equal(images, x)
    assert resolved.validation.num_samples == 6


def test_resampling_on_streams_and_folders(tmp_path):
    x, y = _tf_data(n=40)
    y = np.where(np.arange(40) < 30, 0, np.arange(40) % 2 + 1)  # 30, 5, 5
    stream = resolve_data(tf.data.Dataset.from_tensor_slices((x, y)),
                          validation_split=0, test_split=0).train
    root = _folder(tmp_path / "imgs", per_class=(12, 3, 3))
    folder = resolve_data(root, validation_split=0, test_split=0).train
    for source, counts in ((stream, [30, 5, 5]), (folder, [12, 3, 3])):
        np.testing.assert_array_equal(source.class_counts(3), counts)
        for sampling, epoch in (("oversample", 3 * max(counts)),
                                ("undersample", 3 * min(counts)),
                                ("balanced", sum(counts))):
            dataset = source.dataset(4, sampling=sampling, seed=1)
            assert source.steps(4, sampling) == -(-epoch // 4) == \
                dataset.cardinality().numpy()
            labels = np.concatenate([b.numpy() for _, b in dataset])
            assert len(labels) == epoch
            if sampling != "balanced":
                share = np.bincount(labels, minlength=3) / epoch
                assert share.min() > 0.2, (sampling, share)
        # The same seed, the same epoch.
        first = [b.numpy().tolist() for _, b in source.dataset(
            4, sampling="oversample", seed=7)]
        assert first == [b.numpy().tolist() for _, b in source.dataset(
            4, sampling="oversample", seed=7)]


def test_normalizer_from_a_bounded_sample(tmp_path):
    root = _folder(tmp_path / "imgs", per_class=(10, 10, 10))
    train = resolve_data(root, validation_split=0, test_split=0).train
    sample = train.sample(max_images=12, seed=0)
    assert sample.shape == (12, 12, 10, 3) and sample.dtype == np.float32
    np.testing.assert_array_equal(sample, train.sample(max_images=12, seed=0))
    layer = normalization_layer(train, max_images=12, seed=0)
    np.testing.assert_allclose(layer.mean.numpy().ravel(),
                               sample.reshape(-1, 3).mean(0), rtol=1e-5)
    full = normalization_layer(train)
    everything = np.concatenate([b.numpy() for b, _ in train.dataset(8)])
    np.testing.assert_allclose(full.variance.numpy().ravel(),
                               everything.reshape(-1, 3).var(0), rtol=1e-4)


def test_arrays_checks_fast_and_clear():
    x = np.zeros((6, 4, 4, 1), np.uint8)
    start = time.perf_counter()
    for huge in (10_000_000, 10 ** 9):
        with pytest.raises(ValueError, match=f"a label of {huge}"):
            resolve_data((x, [0, 1, 0, 1, 0, huge]))
    assert time.perf_counter() - start < 5
    with pytest.raises(ValueError, match="no sample of class"):
        resolve_data((np.zeros((8, 4, 4, 1)), [1, 2, 1, 2, 1, 2, 1, 2]))
    with pytest.raises(ValueError, match="must be a real-valued array"):
        resolve_data((x.astype(np.complex64), [0, 1] * 3))
    with pytest.raises(ValueError, match=r"one-hot rows .*row 0 is \[1, 1, 0\]"):
        resolve_data((x, np.array([[1, 1, 0]] * 6)))
    with pytest.raises(ValueError, match="Received: data="):
        resolve_data(42)
    with pytest.raises(ValueError, match="must hold images of the training "
                       "shape"):
        x2, y2 = np.zeros((20, 4, 4, 1)), np.arange(20) % 2
        resolve_data((x2, y2), validation_data=(np.zeros((2, 5, 5, 1)),
                                                [0, 1]))
    legacy = ArraySource(np.zeros((4, 2, 2, 1)), [0, 1, 0, 1])
    assert legacy.steps(3) == 2


def test_explicit_folder_splits_map_class_names(tmp_path):
    train = _folder(tmp_path / "train")
    val = tmp_path / "val"
    for name in ("bee", "cat"):
        os.makedirs(val / name)
        Image.fromarray(np.zeros((7, 7, 3), np.uint8)).save(val / name / "a.png")
    resolved = resolve_data(train, validation_data=val, test_split=0)
    assert resolved.validation.num_samples == 2
    np.testing.assert_array_equal(resolved.validation.labels, [1, 2])
    x, _ = next(iter(resolved.validation.dataset(2)))
    assert x.shape == (2, 12, 10, 3)  # resized to the training size
    os.makedirs(val / "dog")
    Image.fromarray(np.zeros((7, 7, 3), np.uint8)).save(val / "dog" / "a.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"class folders \['dog'\]"):
            resolve_data(train, validation_data=val, test_split=0)


# -- multi-worker sharding (TF_CONFIG set, no processes started) -------------


def _tf_config(monkeypatch, kind, index, chief=False, workers=2):
    import json

    cluster = {"worker": [f"127.0.0.1:{2000 + i}" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["127.0.0.1:1999"]
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": cluster, "task": {"type": kind, "index": index}}))


def _policy(dataset):
    return dataset.options().experimental_distribute.auto_shard_policy


@pytest.mark.parametrize("cache", [None, "file"])
def test_folder_sharded_by_file_per_worker(tmp_path, monkeypatch, cache):
    root = _folder(tmp_path / "imgs", per_class=(3, 3, 3))  # 9 files
    if cache == "file":
        cache = str(tmp_path / "cache")
    seen, steps = [], []
    for index in (0, 1):
        _tf_config(monkeypatch, "worker", index)
        train = resolve_data(root, validation_split=0, test_split=0,
                             cache=cache).train
        dataset = train.dataset(2, shuffle=True, seed=1, shard=True)
        assert _policy(dataset) == tf.data.experimental.AutoShardPolicy.OFF
        steps.append(train.steps(2, shard=True))
        epochs = [_ids_of(dataset) for _ in range(2)]
        # Each worker reads only its own files (5 and 4 of the 9), the same
        # ones every epoch. A step takes 2 / 2 workers = 1 image of its
        # pipeline: the 5 steps of an epoch read every own file once (worker
        # 1: its 4 and one again); the pipeline holds 5 full batches.
        own = set(epochs[0])
        assert len(own) == 5 - index and set(epochs[1]) == own
        assert len(epochs[0]) == len(epochs[1]) == 10
        assert set(epochs[0][:steps[-1]]) == own
        seen.append(own)
        # Not sharded when not asked: every image, once.
        assert sorted(_ids_of(train.dataset(2))) == sorted(
            _ids_of(train.dataset(2, shuffle=True, seed=1)))
        assert len(_ids_of(train.dataset(2))) == 9
    assert seen[0].isdisjoint(seen[1])
    assert len(seen[0] | seen[1]) == 9
    assert steps[0] == steps[1] == 5 == train.steps(2)  # ceil(9 / 2)
    if cache:
        names = os.listdir(tmp_path)
        assert any("-worker0" in n for n in names)
        assert any("-worker1" in n for n in names)


def _ids_of(dataset):
    return [int(v) for x, _ in dataset for v in x.numpy()[:, 0, 0, 0]]


def test_sharding_with_a_chief_and_resampling(tmp_path, monkeypatch):
    from kerascnn.core import distribute

    root = _folder(tmp_path / "imgs", per_class=(6, 2, 2))
    seen, counts = [], []
    for kind, index in (("chief", 0), ("worker", 0), ("worker", 1)):
        _tf_config(monkeypatch, kind, index, chief=True)
        assert distribute.worker_index() == len(seen)  # chief 0, then 1, 2
        train = resolve_data(root, validation_split=0, test_split=0).train
        seen.append(set(_ids_of(train.dataset(3, shard=True))))
        # Resampled: the paths are drawn (the same draw on every worker)
        # and split before decoding; every worker the same count.
        labels = np.concatenate([y.numpy() for _, y in train.dataset(
            3, sampling="oversample", seed=2, shard=True)])
        counts.append(len(labels))
    assert all(a.isdisjoint(b) for a, b in ((seen[0], seen[1]),
                                            (seen[0], seen[2]),
                                            (seen[1], seen[2])))
    assert len(set.union(*seen)) == 10
    assert counts == [18, 18, 18]  # 6 steps of the global batch of 3
    _tf_config(monkeypatch, "evaluator", 0, chief=True)
    with pytest.raises(ValueError, match="Argument `TF_CONFIG` must be"):
        distribute.worker_index()


def test_arrays_and_single_process_stay_data_sharded(tmp_path, monkeypatch):
    _tf_config(monkeypatch, "worker", 1)
    x = np.arange(10, dtype=np.uint8).reshape(10, 1, 1, 1) * np.ones(
        (1, 2, 2, 1), np.uint8)
    arrays = resolve_data((x, np.arange(10) % 2), validation_split=0,
                          test_split=0).train
    dataset = arrays.dataset(4, shuffle=True, seed=0, shard=True)
    assert _policy(dataset) == tf.data.experimental.AutoShardPolicy.DATA
    assert len(_ids_of(dataset)) == 10  # tf.distribute keeps each share
    assert arrays.steps(4, shard=True) == 3
    monkeypatch.delenv("TF_CONFIG")
    root = _folder(tmp_path / "imgs", per_class=(2, 2, 2))
    train = resolve_data(root, validation_split=0, test_split=0).train
    dataset = train.dataset(4, shard=True)
    assert _policy(dataset) == tf.data.experimental.AutoShardPolicy.DATA
    assert len(_ids_of(dataset)) == 6


def test_every_pipeline_runs_without_the_autotune_stall(tmp_path):
    """fit's training, validation and test pipelines (arrays, folders and a
    user's stream) have tf.data's autotuning thread off
    (`kerascnn.data.pipeline.without_autotune_stall`), and the user's own
    options on their stream are kept."""
    from kerascnn.core.data import pipelines

    x, y = _tf_data()
    resolved_arrays = resolve_data((x, y), validation_split=0.25,
                                   test_split=0.25, seed=0)
    root = _folder(tmp_path / "imgs", per_class=(4, 4, 4))
    resolved_folder = resolve_data(str(root), validation_split=0.25,
                                   test_split=0.25, seed=0)
    options = tf.data.Options()
    options.deterministic = False
    stream = tf.data.Dataset.from_tensor_slices((x, y)).batch(
        5).with_options(options)
    resolved_stream = resolve_data(stream, validation_data=(x[:6], y[:6]),
                                   test_data=(x[:5], y[:5]))
    for resolved in (resolved_arrays, resolved_folder, resolved_stream):
        pipes = pipelines(resolved, 4, seed=0)
        for dataset in (pipes.train, pipes.validation, pipes.test):
            assert dataset.options().autotune.enabled is False
        sampled = resolved.train.dataset(4, shuffle=True, seed=0,
                                         sampling="oversample", repeat=True)
        assert sampled.options().autotune.enabled is False
    kept = resolved_stream.train.dataset(4)
    assert kept.options().deterministic is False
    assert kept.options().autotune.enabled is False
    # The pipelines still read every image once per epoch.
    assert sorted(_ids(resolved_folder.train)[0]) == sorted(
        _ids(resolved_folder.train, shuffle=True, seed=1)[0])
