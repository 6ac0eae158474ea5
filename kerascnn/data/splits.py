"""Stratified, seeded train / validation / test splits."""

import collections
import math

import numpy as np

from kerascnn import _validation

Splits = collections.namedtuple(
    "Splits", ["x_train", "y_train", "x_val", "y_val", "x_test", "y_test"])
Splits.__doc__ = """Train, validation and test arrays from `split_dataset`.

An empty split (fraction 0) holds arrays of length 0 with the right shape."""


def _check_split(name, value):
    if value == 0:
        return 0.0
    return _validation.check_float(name, value, 0.0, 1.0, max_open=True)


def _too_small(name, fraction, size, base, num_classes):
    raise _validation.ArgumentError(
        f"Argument `{name}` must leave at least one sample per class in the "
        f"split ({num_classes} classes); {fraction} of {base} samples gives "
        f"{size}. Received: {name}={fraction}")


def split_dataset(images, labels, validation_split=0.1, test_split=0.1,
                  seed=42):
    """Splits images and labels into stratified train, validation and test sets.

    Wraps scikit-learn's `train_test_split(stratify=labels)` (test set first,
    then validation from the rest) and adds what a CNN workflow needs before
    training starts: the data checks of `kerascnn._validation` (NaN or
    infinite pixels, negative labels, a single class, image/label count
    mismatch), a clear error when a class has too few samples to appear in
    every split, and images returned with a channel axis. Every class keeps
    its proportion in every split (to within one sample), and the same `seed`
    always gives the same split.

    Args:
        images: Array `(n, height, width)` or `(n, height, width, channels)`.
        labels: Integer class labels `(n,)` (or one-hot rows).
        validation_split: Fraction of all samples for validation, in
            `[0, 1)`. Defaults to `0.1`.
        test_split: Fraction of all samples for the test set, in `[0, 1)`.
            Defaults to `0.1`.
        seed: Integer seed (or `None` for a random split). Defaults to `42`.

    Returns:
        `Splits(x_train, y_train, x_val, y_val, x_test, y_test)`; images keep
        their dtype, labels are int64.

    Raises:
        ArgumentError: for bad data or fractions, or a class too small to be
            split.
    """
    images = _validation.check_images("images", images)
    labels = _validation.check_labels("labels", labels,
                                      num_samples=len(images),
                                      samples_name="images")
    train, val, test = split_indices(labels, validation_split, test_split,
                                     seed)
    return Splits(images[train], labels[train], images[val], labels[val],
                  images[test], labels[test])


def split_indices(labels, validation_split=0.1, test_split=0.1, seed=42):
    """Stratified, seeded `(train, validation, test)` index arrays.

    The split of `split_dataset`, on labels alone: the streamed sources
    split a folder's file list with it, so a folder and the same images as
    arrays are split identically. Same arguments, checks and rounding as
    `split_dataset`; the index arrays are int64 (empty for a fraction of 0).
    """
    labels = _validation.check_labels("labels", labels)
    validation_split = _check_split("validation_split", validation_split)
    test_split = _check_split("test_split", test_split)
    if validation_split + test_split >= 1.0:
        raise _validation.ArgumentError(
            "Arguments `validation_split` and `test_split` must sum to less "
            f"than 1. Received: validation_split={validation_split}, "
            f"test_split={test_split}")
    if seed is not None:
        seed = _validation.check_non_negative_int("seed", seed)

    classes, counts = np.unique(labels, return_counts=True)
    num_classes, n = len(classes), len(labels)
    needed = 1 + (validation_split > 0) + (test_split > 0)
    if counts.min() < needed:
        small = int(classes[np.argmin(counts)])
        raise _validation.ArgumentError(
            f"Argument `labels` must hold at least {needed} samples of every "
            "class to stratify a train/validation/test split. Received: "
            f"class {small} with {int(counts.min())} sample(s)")
    # Held-out sizes are fractions of all samples, rounded up like
    # scikit-learn (the epsilon absorbs float error: 0.1 * 5000 -> 500).
    n_test = math.ceil(test_split * n - 1e-9)
    if test_split and n_test < num_classes:
        _too_small("test_split", test_split, n_test, n, num_classes)
    n_val = math.ceil(validation_split * n - 1e-9)
    if validation_split and n_val < num_classes:
        _too_small("validation_split", validation_split, n_val, n,
                   num_classes)
    if n - n_test - n_val < num_classes:
        raise _validation.ArgumentError(
            "Arguments `validation_split` and `test_split` must leave at "
            f"least one training sample per class ({num_classes} classes). "
            f"Received: validation_split={validation_split}, "
            f"test_split={test_split} with {n} samples")

    from sklearn.model_selection import train_test_split

    index = np.arange(n)
    rest, test = (index, index[:0])
    if test_split:
        rest, test = train_test_split(index, test_size=n_test,
                                      stratify=labels, random_state=seed)
    train, val = (rest, rest[:0])
    if validation_split:
        train, val = train_test_split(rest, test_size=n_val,
                                      stratify=labels[rest],
                                      random_state=seed)
    return train, val, test
