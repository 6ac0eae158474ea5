"""Tests for kerascnn.data.make_dataset and normalization_layer."""

import os

import numpy as np
import pytest
import tensorflow as tf

import kerascnn.data as kdata
from kerascnn.data import (make_dataset, normalization_layer,
                           samples_per_epoch)

COUNTS = (40, 12, 6)
LABELS = np.repeat(np.arange(3), COUNTS)
# Pixel value = sample id, so every sample can be traced through the pipeline.
IMAGES = np.arange(len(LABELS), dtype=np.uint8)[:, None, None] \
    * np.ones((2, 2), np.uint8)


def _epoch(dataset):
    xs, ys = [], []
    for x, y in dataset:
        xs.append(x.numpy()[:, 0, 0, 0].astype(int))
        ys.append(y.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def test_all_is_pinned():
    assert sorted(kdata.__all__) == sorted([
        "Augmentation", "ClassificationReport", "Splits", "augmentation",
        "channel_statistics", "class_counts", "class_weights",
        "classification_report", "detect_imbalance", "imbalance_ratio",
        "list_augmentation_presets", "make_dataset", "normalization_layer",
        "samples_per_epoch", "split_dataset", "ImageSource", "ResolvedData",
        "resolve_data", "split_indices"])


def test_plain_pipeline_every_sample_once_and_reshuffled():
    dataset = make_dataset(IMAGES, LABELS, batch_size=16, seed=3)
    assert dataset.cardinality().numpy() == 4  # ceil(58 / 16)
    spec = dataset.element_spec
    assert spec[0].dtype == tf.float32 and spec[0].shape[1:] == (2, 2, 1)
    assert spec[1].dtype == tf.int64
    ids1, y1 = _epoch(dataset)
    ids2, _ = _epoch(dataset)
    assert sorted(ids1) == list(range(58)) and sorted(ids2) == list(range(58))
    assert not np.array_equal(ids1, ids2)  # reshuffled each epoch
    np.testing.assert_array_equal(LABELS[ids1], y1)  # pairs kept together
    again, _ = _epoch(make_dataset(IMAGES, LABELS, batch_size=16, seed=3))
    np.testing.assert_array_equal(ids1, again)  # deterministic for a seed
    ordered, _ = _epoch(make_dataset(IMAGES, LABELS, batch_size=16,
                                     shuffle=False, cache=False,
                                     prefetch=False))
    np.testing.assert_array_equal(ordered, np.arange(58))


def test_oversample_repeats_minority_to_largest_class():
    dataset = make_dataset(IMAGES, LABELS, batch_size=10,
                           sampling="oversample", seed=1)
    assert samples_per_epoch(LABELS, "oversample") == 120
    assert dataset.cardinality().numpy() == 12
    for _ in range(2):
        ids, labels = _epoch(dataset)
        np.testing.assert_array_equal(np.bincount(labels), [40, 40, 40])
        np.testing.assert_array_equal(LABELS[ids], labels)
        # Majority: each sample once; class 2 (6 samples): each 6 or 7 times.
        assert sorted(ids[labels == 0]) == list(range(40))
        reps = np.bincount(ids[labels == 2] - 52, minlength=6)
        assert set(reps) <= {6, 7} and reps.sum() == 40
    # Classes are interleaved, not in blocks: the first batch is mixed.
    first = next(iter(dataset))[1].numpy()
    assert len(np.unique(first)) >= 2


def test_undersample_draws_a_new_subset_each_epoch():
    dataset = make_dataset(IMAGES, LABELS, batch_size=6,
                           sampling="undersample", seed=2)
    assert dataset.cardinality().numpy() == 3
    ids1, labels1 = _epoch(dataset)
    ids2, _ = _epoch(dataset)
    np.testing.assert_array_equal(np.bincount(labels1), [6, 6, 6])
    assert len(set(ids1)) == 18  # no repeats within an epoch
    assert set(ids1[labels1 == 0]) != set(ids2[LABELS[ids2] == 0])


def test_balanced_batches_draw_classes_uniformly():
    y = np.repeat([0, 1, 2], [300, 60, 30])
    x = np.zeros((len(y), 1, 1), np.uint8)
    dataset = make_dataset(x, y, batch_size=30, sampling="balanced", seed=0)
    assert dataset.cardinality().numpy() == 13  # 390 draws / 30
    labels = np.concatenate([b.numpy() for _, b in dataset])
    assert len(labels) == 390
    freq = np.bincount(labels) / len(labels)
    # Uniform over classes (1/3 each) instead of the data's 0.77 / 0.15 / 0.08;
    # binomial std with n=390 is 0.024, so 0.1 is > 4 sigma.
    np.testing.assert_allclose(freq, [1 / 3] * 3, atol=0.1)
    plain = np.concatenate([b.numpy() for _, b in make_dataset(
        x, y, batch_size=30, seed=0)])
    np.testing.assert_allclose(np.bincount(plain) / 390, [300 / 390,
                                                          60 / 390, 30 / 390])


def test_options_one_hot_repeat_drop_remainder():
    dataset = make_dataset(IMAGES, LABELS, batch_size=16, one_hot=True,
                           num_classes=4, drop_remainder=True, seed=0)
    assert dataset.cardinality().numpy() == 3
    x, y = next(iter(dataset))
    assert y.shape == (16, 4) and y.dtype == tf.float32
    np.testing.assert_array_equal(np.argmax(y.numpy(), 1),
                                  LABELS[x.numpy()[:, 0, 0, 0].astype(int)])
    infinite = make_dataset(IMAGES, LABELS, batch_size=16, repeat=True,
                            dtype="uint8")
    assert infinite.cardinality().numpy() == tf.data.INFINITE_CARDINALITY
    assert infinite.element_spec[0].dtype == tf.uint8
    assert len(list(infinite.take(9))) == 9


def test_fit_with_resampled_dataset():
    import keras

    dataset = make_dataset(IMAGES, LABELS, batch_size=20,
                           sampling="oversample", seed=0)
    model = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(
        from_logits=True), metrics=["accuracy"])
    history = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("kwargs, match", [
    ({"sampling": "smote"}, "Received: sampling='smote'"),
    ({"batch_size": 0}, "Received: batch_size=0"),
    ({"batch_size": 59}, "number of training samples \\(58\\). Received: "
     "batch_size=59"),
    ({"batch_size": 19, "sampling": "undersample"},
     "number of training samples \\(18\\). Received: batch_size=19"),
    ({"shuffle": False, "sampling": "balanced"}, "Received: shuffle=False"),
    ({"seed": -3}, "Received: seed=-3"),
    ({"cache": "yes"}, "Received: cache='yes'"),
    ({"one_hot": True, "num_classes": 2}, "Received: num_classes=2"),
    ({"dtype": "pixels"}, "Received: dtype='pixels'"),
])
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_dataset(IMAGES, LABELS, **kwargs)


def test_rejects_bad_data():
    with pytest.raises(ValueError, match="Received: 58 images and 57"):
        make_dataset(IMAGES, LABELS[:-1])
    with pytest.raises(ValueError, match="Received: 1 NaN"):
        bad = IMAGES.astype("float32")
        bad[0, 0, 0] = np.inf
        make_dataset(bad, LABELS)


def test_normalization_layer_uses_training_statistics(tmp_path):
    import keras

    rng = np.random.default_rng(0)
    x_train = rng.integers(0, 256, size=(64, 6, 6, 3)).astype(np.uint8)
    x_train[..., 2] //= 4  # a channel with a different scale
    layer = normalization_layer(x_train)
    flat = x_train.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(np.ravel(layer.mean), flat.mean(0), rtol=1e-5)
    np.testing.assert_allclose(np.ravel(layer.variance), flat.var(0),
                               rtol=1e-4)
    mean, std = kdata.channel_statistics(x_train)
    np.testing.assert_allclose(mean, flat.mean(0))
    np.testing.assert_allclose(std, flat.std(0))
    out = np.asarray(layer(x_train.astype("float32"))).reshape(-1, 3)
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(out.std(0), 1.0, atol=1e-3)

    # Raw pixels in, normalized out, through .keras and SavedModel.
    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, layer(inputs))
    x_new = rng.integers(0, 256, size=(2, 6, 6, 3)).astype("float32")
    expected = (x_new - flat.mean(0)) / flat.std(0)
    np.testing.assert_allclose(model.predict(x_new, verbose=0), expected,
                               rtol=1e-4, atol=1e-4)
    model.save(tmp_path / "norm.keras")
    reloaded = keras.saving.load_model(tmp_path / "norm.keras")
    np.testing.assert_allclose(reloaded.predict(x_new, verbose=0), expected,
                               rtol=1e-4, atol=1e-4)
    export_dir = os.path.join(tmp_path, "norm_export")
    model.export(export_dir, verbose=False)
    served = tf.saved_model.load(export_dir).serve(tf.constant(x_new))
    np.testing.assert_allclose(served.numpy(), expected, rtol=1e-4,
                               atol=1e-4)


def test_normalization_layer_grayscale_and_errors():
    x = np.stack([np.zeros((4, 4)), np.full((4, 4), 2.0)]).astype("float32")
    layer = normalization_layer(x)  # channel axis added: one channel
    np.testing.assert_allclose(np.ravel(layer.mean), [1.0])
    np.testing.assert_allclose(np.ravel(layer.variance), [1.0])
    with pytest.raises(ValueError, match="Received: x_train="):
        normalization_layer(np.zeros((3,)))
    with pytest.raises(ValueError, match="Received: batch_size=0"):
        normalization_layer(x, batch_size=0)


def test_balanced_pipeline_with_augmentation_under_mirrored_strategy(
        two_cpu_strategy):
    import keras

    from kerascnn.data import augmentation

    x = np.random.default_rng(0).integers(0, 256, (40, 8, 8, 1)) \
        .astype("uint8")
    y = np.repeat([0, 1], [30, 10])
    with two_cpu_strategy.scope():
        inputs = keras.Input((8, 8, 1))
        h = augmentation("digits", seed=1)(inputs)
        h = normalization_layer(x)(h)
        h = keras.layers.Flatten()(h)
        model = keras.Model(inputs, keras.layers.Dense(2)(h))
        model.compile(optimizer="adam",
                      loss=keras.losses.SparseCategoricalCrossentropy(
                          from_logits=True))
    dataset = make_dataset(x, y, batch_size=8, sampling="balanced", seed=0)
    history = model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    assert np.isfinite(history.history["loss"][0])


def test_make_dataset_switches_off_the_autotune_thread():
    """Every `make_dataset` pipeline has tf.data's autotuning off (its
    thread made freeing an iterator read to its end in a `tf.function`
    wait up to seconds, docs/data.md); `map`/`batch` still run in parallel
    and a user can switch autotuning back on with `with_options`."""
    from kerascnn.data.pipeline import without_autotune_stall

    for kwargs in ({}, {"sampling": "balanced"}, {"repeat": True},
                   {"prefetch": False, "cache": False}):
        dataset = make_dataset(IMAGES, LABELS, batch_size=16, seed=0,
                               **kwargs)
        assert dataset.options().autotune.enabled is False, kwargs
    plain = tf.data.Dataset.range(3)
    assert plain.options().autotune.enabled is not False
    assert without_autotune_stall(plain).options().autotune.enabled is False
    assert list(without_autotune_stall(plain).as_numpy_iterator()) == [0, 1, 2]
    options = tf.data.Options()
    options.autotune.enabled = True
    again = make_dataset(IMAGES, LABELS, batch_size=16).with_options(options)
    assert again.options().autotune.enabled is True
    x, y = _epoch(make_dataset(IMAGES, LABELS, batch_size=16, seed=3))
    np.testing.assert_array_equal(np.sort(x), np.arange(len(LABELS)))
