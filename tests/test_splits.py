"""Tests for kerascnn.data.split_dataset."""

import numpy as np
import pytest

from kerascnn.data import Splits, split_dataset


def _data(counts=(50, 30, 20), shape=(4, 4)):
    labels = np.repeat(np.arange(len(counts)), counts)
    images = np.arange(len(labels), dtype=np.float32)[:, None, None] \
        * np.ones(shape, np.float32)
    return images, labels


def test_sizes_stratification_and_disjointness():
    images, labels = _data()
    splits = split_dataset(images, labels, validation_split=0.2,
                           test_split=0.1, seed=0)
    assert isinstance(splits, Splits)
    assert splits.x_train.shape[1:] == (4, 4, 1)  # channel axis added
    # test = ceil(0.1 * 100) = 10, val = ceil(0.2 * 100) = 20.
    assert (len(splits.y_train), len(splits.y_val), len(splits.y_test)) \
        == (70, 20, 10)
    np.testing.assert_array_equal(np.bincount(splits.y_test), [5, 3, 2])
    np.testing.assert_array_equal(np.bincount(splits.y_val), [10, 6, 4])
    np.testing.assert_array_equal(np.bincount(splits.y_train), [35, 21, 14])
    ids = [s[:, 0, 0, 0].astype(int) for s in
           (splits.x_train, splits.x_val, splits.x_test)]
    all_ids = np.concatenate(ids)
    assert sorted(all_ids) == list(range(100))  # disjoint and complete
    # Each image still carries its own label.
    for x, y in ((splits.x_train, splits.y_train), (splits.x_test,
                                                    splits.y_test)):
        np.testing.assert_array_equal(labels[x[:, 0, 0, 0].astype(int)], y)
    assert splits.y_train.dtype == np.int64


def test_deterministic_for_a_seed(mnist5k):
    images, labels = mnist5k
    a = split_dataset(images, labels, seed=7)
    b = split_dataset(images, labels, seed=7)
    c = split_dataset(images, labels, seed=8)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(a.y_train, c.y_train)
    np.testing.assert_array_equal(np.bincount(a.y_test), [50] * 10)
    np.testing.assert_array_equal(np.bincount(a.y_val), [50] * 10)


def test_zero_fractions_give_empty_splits():
    images, labels = _data()
    splits = split_dataset(images, labels, validation_split=0.0,
                           test_split=0.25, seed=1)
    assert splits.x_val.shape == (0, 4, 4, 1) and len(splits.y_val) == 0
    assert len(splits.y_test) == 25 and len(splits.y_train) == 75
    splits = split_dataset(images, labels, validation_split=0,
                           test_split=0, seed=1)
    assert len(splits.y_train) == 100


@pytest.mark.parametrize("kwargs, match", [
    ({"validation_split": 1.0}, "Received: validation_split=1.0"),
    ({"validation_split": -0.1}, r"Received: validation_split=-0.1"),
    ({"test_split": "0.1"}, "Received: test_split='0.1'"),
    ({"validation_split": 0.6, "test_split": 0.4},
     "Received: validation_split=0.6, test_split=0.4"),
    ({"seed": -1}, "Received: seed=-1"),
    ({"seed": 1.5}, "Received: seed=1.5"),
])
def test_rejects_bad_arguments(kwargs, match):
    images, labels = _data()
    with pytest.raises(ValueError, match=match):
        split_dataset(images, labels, **kwargs)


def test_rejects_bad_data():
    images, labels = _data()
    nan = images.copy()
    nan[3, 0, 0] = np.nan
    with pytest.raises(ValueError, match="Received: 1 NaN or infinite"):
        split_dataset(nan, labels)
    with pytest.raises(ValueError, match="Received: 100 images and 99"):
        split_dataset(images, labels[:-1])
    with pytest.raises(ValueError, match="Received: only class 0"):
        split_dataset(images, np.zeros(100, int))
    with pytest.raises(ValueError, match="Received: labels from -1"):
        split_dataset(images, labels - 1)


def test_rejects_classes_too_small_to_stratify():
    images, labels = _data(counts=(20, 20, 2))
    with pytest.raises(ValueError, match="Received: class 2 with 2 sample"):
        split_dataset(images, labels, validation_split=0.1, test_split=0.1)
    # Two splits only need two samples per class.
    splits = split_dataset(images, labels, validation_split=0.0,
                           test_split=0.2)
    np.testing.assert_array_equal(np.bincount(splits.y_test), [4, 4, 1])
    images, labels = _data(counts=(40, 40, 40))
    with pytest.raises(ValueError, match="Received: test_split=0.01"):
        split_dataset(images, labels, test_split=0.01)
