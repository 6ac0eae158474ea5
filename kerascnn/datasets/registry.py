"""`load`: one entry point for named datasets, folders and arrays."""

import os

import numpy as np

from kerascnn import _validation
from kerascnn.datasets.directory import load_directory
from kerascnn.datasets.embedded import (DIGIT_CLASS_NAMES, load_digits,
                                        load_mnist5k)

#: Names accepted by `load` for the offline datasets.
DATASETS = ("mnist5k", "digits")

_LOADERS = {"mnist5k": load_mnist5k, "digits": load_digits}

#: The `kerascnn.data.augmentation` preset that `augment="auto"` uses for
#: each built-in dataset (measured, docs/training.md "Defaults"): the
#: "digits" preset helps on mnist5k's 28x28 digits; on the 8x8 `digits` a
#: one-pixel shift is 12% of the image and augmentation cost accuracy.
SUITED_AUGMENTATION = {"mnist5k": "digits", "digits": None}


def suited_augmentation(source):
    """The augmentation preset suited to `source`, or `None`.

    A built-in dataset name (see `DATASETS`, any case) gets the preset
    measured to help on it (`SUITED_AUGMENTATION`); a folder, arrays or any
    other data get `None`, because the right augmentation depends on the
    images (flips suit most photographs but not digits or text).
    """
    if isinstance(source, str):
        # A folder of that name is refused later by `check_dataset_name`.
        return SUITED_AUGMENTATION.get(source.lower())
    return None


def _from_arrays(source):
    images = _validation.check_images("images", source[0])
    labels = _validation.check_labels("labels", source[1],
                                      num_samples=len(images),
                                      samples_name="images")
    if len(source) == 3:
        class_names = source[2]
        if (not isinstance(class_names, (list, tuple))
                or not all(isinstance(n, str) and n for n in class_names)
                or len(set(class_names)) != len(class_names)):
            _validation.fail("class_names", "a list of distinct non-empty "
                             "strings", class_names)
        class_names = list(class_names)
        if labels.max() >= len(class_names):
            raise _validation.ArgumentError(
                "Argument `labels` must hold class indices in "
                f"[0, {len(class_names) - 1}] (one per class name). "
                f"Received: labels up to {int(labels.max())}")
    else:
        class_names = [str(i) for i in range(int(labels.max()) + 1)]
    return images, labels, class_names


def check_dataset_name(source, name="data"):
    """Refuses a built-in dataset name that is also an existing folder.

    `"digits"` (or `"mnist5k"`, any case) names a built-in dataset only when
    no folder of that name exists in the working directory: with a folder
    `./digits` present, the name is ambiguous and silently picking either
    would train on the wrong data. Pass `"./digits"` (or an absolute path)
    for the folder; for the built-in dataset, run elsewhere or pass the
    arrays of `kerascnn.datasets.load_digits()`.
    """
    if os.path.isdir(source):
        raise _validation.ArgumentError(
            f"Argument `{name}` must name one dataset. Received: "
            f"{name}={source!r}, which is both a built-in dataset and the "
            f"existing folder {os.path.abspath(source)!r}; pass "
            f"{os.path.join('.', source)!r} for the folder, or the arrays of "
            f"kerascnn.datasets.load_{source.lower()}() for the built-in "
            "dataset")
    return source.lower()


def load(source, **kwargs):
    """Loads a dataset as `(images, labels, class_names)` from any source.

    The one call the training workflow and the CLI use, so that a dataset
    name, a folder or in-memory arrays all come back in the same checked
    form (uint8 or numeric images with a channel axis, int64 labels, class
    names as strings).

    Args:
        source: `"mnist5k"` or `"digits"` (see `DATASETS`; case-insensitive),
            the path of a folder with one sub-folder per class (see
            `load_directory`), or a tuple `(images, labels)` /
            `(images, labels, class_names)` of arrays.
        **kwargs: Passed to `load_directory` for a folder (`image_size`,
            `color_mode`, `on_error`, `interpolation`); not accepted for the
            other sources.

    Returns:
        Tuple `(images, labels, class_names)`. For the digit datasets the
        class names are `"0".."9"`; for arrays without names, `"0"` up to the
        largest label.

    A built-in name is refused while a folder of that name exists in the
    working directory (see `check_dataset_name`): pass `"./digits"` for the
    folder.

    Raises:
        ArgumentError: for an unknown source, a name that is also a folder,
            or unexpected keyword arguments.
    """
    if isinstance(source, tuple) and len(source) in (2, 3):
        if kwargs:
            _validation.fail("kwargs", "empty for an (images, labels) tuple",
                             kwargs)
        return _from_arrays(source)
    if isinstance(source, str) and source.lower() in _LOADERS:
        check_dataset_name(source, name="source")
        if kwargs:
            _validation.fail("kwargs", f"empty for the dataset {source!r}",
                             kwargs)
        images, labels = _LOADERS[source.lower()]()
        return images, labels, list(DIGIT_CLASS_NAMES)
    if isinstance(source, (str, os.PathLike)) and os.path.isdir(source):
        return load_directory(source, **kwargs)
    _validation.fail(
        "source", "one of " + ", ".join(repr(n) for n in DATASETS)
        + ", an existing directory or an (images, labels) tuple",
        source if not isinstance(source, np.ndarray)
        else f"array of shape {source.shape}")
