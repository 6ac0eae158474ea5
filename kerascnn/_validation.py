"""Argument and data validation shared by every kerascnn module.

Every error message kerascnn raises for a bad argument is written here, in one
form: the argument, what it must be, and what was received::

    Argument `groups` must be a positive integer. Received: groups=0

The errors are `ArgumentError`, a subclass of both `ValueError` and
`TypeError` (like scikit-learn's `InvalidParameterError`), so callers may catch
either. Functions return the validated (and normalised) value so that
constructors can write ``self.rate = check_rate("rate", rate)``.
"""

import math
import numbers
import os

import numpy as np


class ArgumentError(ValueError, TypeError):
    """A kerascnn argument or input has the wrong type or value."""


def _fmt(value):
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return text


def fail(name, expectation, value):
    """Raises `ArgumentError` with the standard message."""
    raise ArgumentError(
        f"Argument `{name}` must be {expectation}. Received: {name}={_fmt(value)}"
    )


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_int(name, value, min_value=None, max_value=None):
    """Checks an integer, optionally bounded (inclusive). Returns `int(value)`."""
    if not _is_int(value):
        fail(name, "an integer" + _bounds_text(min_value, max_value), value)
    if (min_value is not None and value < min_value) or (
        max_value is not None and value > max_value
    ):
        fail(name, "an integer" + _bounds_text(min_value, max_value), value)
    return int(value)


def check_positive_int(name, value):
    """Checks an integer >= 1."""
    if not _is_int(value) or value < 1:
        fail(name, "a positive integer", value)
    return int(value)


def check_non_negative_int(name, value):
    """Checks an integer >= 0."""
    if not _is_int(value) or value < 0:
        fail(name, "an integer >= 0", value)
    return int(value)


def _bounds_text(low, high, low_open=False, high_open=False):
    if low is not None and high is not None:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        return f" in {left}{low}, {high}{right}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ""


def check_float(
    name, value, min_value=None, max_value=None, min_open=False, max_open=False
):
    """Checks a finite real number within optional bounds. Returns a float."""
    expectation = "a finite number" + _bounds_text(
        min_value, max_value, min_open, max_open
    )
    if not _is_number(value) or not math.isfinite(float(value)):
        fail(name, expectation, value)
    value = float(value)
    if min_value is not None and (
        value < min_value or (min_open and value == min_value)
    ):
        fail(name, expectation, value)
    if max_value is not None and (
        value > max_value or (max_open and value == max_value)
    ):
        fail(name, expectation, value)
    return value


def check_positive_float(name, value):
    """Checks a finite number > 0."""
    return check_float(name, value, 0.0, None, min_open=True)


def check_rate(name, value):
    """Checks a dropout-style rate in [0, 1)."""
    return check_float(name, value, 0.0, 1.0, max_open=True)


def check_fraction(name, value):
    """Checks a fraction in (0, 1) such as a validation split."""
    return check_float(name, value, 0.0, 1.0, min_open=True, max_open=True)


def check_bool(name, value):
    """Checks a real boolean (not 0/1 or a string)."""
    if not isinstance(value, (bool, np.bool_)):
        fail(name, "a boolean", value)
    return bool(value)


def check_option(name, value, options):
    """Checks that `value` is one of `options` (strings are compared lowercased)."""
    key = value.lower() if isinstance(value, str) else value
    for option in options:
        if key == option and type(key) is type(option):
            return option
    fail(name, "one of " + ", ".join(repr(o) for o in options), value)


def check_string(name, value):
    """Checks a non-empty string."""
    if not isinstance(value, str) or not value:
        fail(name, "a non-empty string", value)
    return value


def check_callable(name, value):
    """Checks a callable."""
    if not callable(value):
        fail(name, "callable", value)
    return value


def check_less_equal(low_name, low, high_name, high):
    """Checks ``low <= high`` for two already validated numbers."""
    if low > high:
        raise ArgumentError(
            f"Argument `{low_name}` must be <= `{high_name}`. "
            f"Received: {low_name}={_fmt(low)}, {high_name}={_fmt(high)}"
        )


def check_existing_path(name, value, kind="path"):
    """Checks a path that exists; `kind` is "path", "file" or "directory"."""
    if not isinstance(value, (str, os.PathLike)) or not str(value):
        fail(name, f"an existing {kind}", value)
    path = os.fspath(value)
    exists = {
        "path": os.path.exists,
        "file": os.path.isfile,
        "directory": os.path.isdir,
    }[kind](path)
    if not exists:
        fail(name, f"an existing {kind}", path)
    return path


def check_image_size(name, value, min_size=1):
    """Checks a spatial size: an int or a pair of ints, each >= min_size.

    Returns a `(height, width)` tuple.
    """
    pair = (value, value) if _is_int(value) else value
    if (
        not isinstance(pair, (tuple, list))
        or len(pair) != 2
        or not all(_is_int(v) and v >= min_size for v in pair)
    ):
        fail(name, f"an integer or (height, width) pair of integers >= {min_size}",
             value)
    return (int(pair[0]), int(pair[1]))


# -- Data checks: run before any training starts ----------------------------


def check_images(name, images, min_ndim=3, max_ndim=4):
    """Checks an image array: numeric, non-empty, finite, of 3 or 4 dims.

    A 3-D array `(n, height, width)` is returned with a channel axis added.
    Returns a numpy array.
    """
    try:
        array = np.asarray(images)
    except Exception as error:  # ragged lists and the like
        raise ArgumentError(
            f"Argument `{name}` must be an array of images. "
            f"Received: {name} that numpy cannot convert ({error})"
        ) from None
    if array.dtype == object or not np.issubdtype(array.dtype, np.number):
        fail(name, "a numeric array of images", f"array of dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        # numpy would drop the imaginary part silently when casting.
        fail(name, "a real-valued array of images (not complex)",
             f"array of dtype {array.dtype}")
    if array.ndim < min_ndim or array.ndim > max_ndim:
        fail(
            name,
            "an array of shape (n, height, width) or (n, height, width, "
            "channels)",
            f"array of shape {array.shape}",
        )
    if array.shape[0] == 0:
        fail(name, "a non-empty array of images", f"array of shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array)
        if bad.any():
            index = int(np.argwhere(bad.reshape(len(array), -1).any(axis=1))[0][0])
            raise ArgumentError(
                f"Argument `{name}` must hold finite pixel values. Received: "
                f"{int(bad.sum())} NaN or infinite values (first in image "
                f"{index})"
            )
    if array.ndim == 3:
        array = array[..., np.newaxis]
    return array


# Without `num_classes`, labels up to this value are accepted whatever their
# number (a held-out split may miss classes); above it, at most twice the
# number of labels. Nothing is allocated per label value before this check.
_MAX_SPARSE_LABEL = 65536


def check_labels(name, labels, num_classes=None, num_samples=None,
                 samples_name="x", min_classes=2):
    """Checks integer class labels `0 .. num_classes-1` (or one-hot rows).

    One-hot (2-D) labels are converted to class indices; a 2-D row that
    is not one-hot (exactly one 1, the rest 0) is an error, never its
    argmax. At least `min_classes` distinct classes are required (two by
    default; 1 for a held-out split). Without `num_classes`, a label too
    large to be a class index of so few labels (above 65,535 and above
    twice the number of labels: typically an ID column) is refused before
    anything is allocated in proportion to its value. Returns a 1-D int64
    array.
    """
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] > 1:
        if (array.dtype == object or not np.issubdtype(array.dtype, np.number)
                or np.issubdtype(array.dtype, np.complexfloating)):
            fail(name, "integer class labels or one-hot rows",
                 f"array of dtype {array.dtype}")
        ones = array == 1
        bad = ~((ones | (array == 0)).all(axis=1) & (ones.sum(axis=1) == 1))
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ArgumentError(
                f"Argument `{name}` must hold class indices (n,) or one-hot "
                f"rows (n, k) with exactly one 1 per row. Received: labels "
                f"of shape {array.shape} whose row {row} is "
                f"{_fmt(array[row].tolist())} ({int(bad.sum())} such rows)")
        array = np.argmax(array, axis=1)
    elif array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or array.size == 0:
        fail(name, "a non-empty 1-D array of class labels",
             f"array of shape {np.asarray(labels).shape}")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(
            array.dtype, np.complexfloating) or (
        np.issubdtype(array.dtype, np.floating)
        and not np.all(np.isfinite(array) & (array == np.round(array)))
    ):
        fail(name, "integer class labels", f"array of dtype {array.dtype}")
    array = array.astype(np.int64)
    if num_samples is not None and len(array) != num_samples:
        raise ArgumentError(
            f"Arguments `{samples_name}` and `{name}` must have the same "
            f"number of samples. Received: {num_samples} images and "
            f"{len(array)} labels"
        )
    low, high = int(array.min()), int(array.max())
    if low < 0 or (num_classes is not None and high >= num_classes):
        upper = "num_classes - 1" if num_classes is None else num_classes - 1
        raise ArgumentError(
            f"Argument `{name}` must hold class indices in [0, {upper}]. "
            f"Received: labels from {low} to {high}"
        )
    if min_classes > 1 and len(np.unique(array)) < min_classes:
        raise ArgumentError(
            f"Argument `{name}` must hold at least two classes. Received: "
            f"only class {low}"
        )
    if num_classes is None and high >= max(2 * len(array), _MAX_SPARSE_LABEL):
        raise ArgumentError(
            f"Argument `{name}` must hold class indices 0..k-1 (k classes). "
            f"Received: a label of {high}, larger than the number of labels "
            f"({len(array)}) allows for a class index (an ID column instead "
            "of class indices?)"
        )
    return array


def check_batch_size(batch_size, num_samples, name="batch_size"):
    """Checks a positive batch size that is not larger than the data."""
    batch_size = check_positive_int(name, batch_size)
    if batch_size > num_samples:
        raise ArgumentError(
            f"Argument `{name}` must be <= the number of training samples "
            f"({num_samples}). Received: {name}={batch_size}"
        )
    return batch_size
