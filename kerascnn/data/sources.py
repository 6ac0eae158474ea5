"""Every kind of training input, resolved once into streamable splits.

`resolve_data` is the one place where `fit`, `transfer.fit`, `tuning.search`
and the CLI turn what the user passed into data: NumPy arrays, a dataset name
(`"mnist5k"`, `"digits"`), a folder with one sub-folder per class, a
`tf.data.Dataset` of `(image, label)` elements (batched or not) or a
`keras.utils.PyDataset`. It checks the data, splits it (stratified, seeded)
and returns a `ResolvedData` of `ImageSource` splits. An `ImageSource` gives
batched `tf.data` pipelines of raw float32 pixels and int64 labels, a bounded
sample of images for normalizer statistics, and its class counts, without
ever holding a folder in memory whole.

INTERFACE (fixed; the workflows are written against it):

    ImageSource
        .kind            "array" | "files" | "dataset" | "pydataset"
        .num_samples     int, or None when a stream's length is unknown
        .labels          int64 array (n,) when known without decoding
                         (arrays, file lists), else None
        .image_shape     (height, width, channels)
        .dataset(batch_size, *, shuffle=False, seed=None, sampling=None,
                 repeat=False, drop_remainder=False)
                         -> tf.data.Dataset of (float32 (b, h, w, c) raw
                            pixels, int64 (b,)) batches, prefetched; sampling
                            as in `make_dataset` ("oversample",
                            "undersample", "balanced")
        .steps(batch_size, sampling=None)
                         -> batches per epoch, or None when unknown
        .sample(max_images=2048, seed=0)
                         -> float32 array, a bounded sample of the images
        .class_counts(num_classes)
                         -> int64 array of per-class counts
        .to_numpy(max_images=None)
                         -> (x, y) arrays; refuses (ArgumentError) above
                            `max_images`

    ResolvedData
        .train, .validation, .test   ImageSource (validation / test may be
                                     None when their split is 0)
        .class_names                 list of str
        .num_classes                 int
        .input_shape                 (height, width, channels)
        .fingerprint                 str identifying the data (for resume
                                     checks)

    resolve_data(data, *, validation_data=None, test_data=None,
                 validation_split=0.1, test_split=0.1, seed=42,
                 image_size=None, color_mode=None, on_error="raise",
                 cache=None, name="data") -> ResolvedData
"""

import dataclasses
import hashlib
import os

import numpy as np

from kerascnn import _validation


@dataclasses.dataclass
class ImageSource:
    """One split of images and integer labels, in memory or streamed.

    This first implementation holds arrays; folders, `tf.data` and
    `PyDataset` sources follow the same interface (see the module
    docstring).
    """

    kind: str
    num_samples: int
    labels: np.ndarray
    image_shape: tuple
    images: np.ndarray = dataclasses.field(default=None, repr=False)

    def dataset(self, batch_size, *, shuffle=False, seed=None, sampling=None,
                repeat=False, drop_remainder=False):
        """Batched `tf.data.Dataset` of `(float32 pixels, int64 labels)`."""
        from kerascnn.data.pipeline import make_dataset

        return make_dataset(self.images, self.labels, batch_size=batch_size,
                            shuffle=shuffle, sampling=sampling, seed=seed,
                            repeat=repeat, drop_remainder=drop_remainder)

    def steps(self, batch_size, sampling=None):
        """Batches per epoch of `dataset(batch_size, sampling=...)`."""
        from kerascnn.data.pipeline import samples_per_epoch

        return -(-samples_per_epoch(self.labels, sampling) // batch_size)

    def sample(self, max_images=2048, seed=0):
        """At most `max_images` images (float32), drawn without replacement."""
        n = self.num_samples
        if n <= max_images:
            return self.images.astype("float32")
        index = np.sort(np.random.default_rng(seed).choice(
            n, max_images, replace=False))
        return self.images[index].astype("float32")

    def class_counts(self, num_classes):
        """Per-class sample counts, int64 `(num_classes,)`."""
        return np.bincount(self.labels, minlength=num_classes).astype(
            np.int64)

    def to_numpy(self, max_images=None):
        """`(images, labels)` arrays."""
        if max_images is not None and self.num_samples > max_images:
            _validation.fail("data", f"at most {max_images} images to hold "
                             "in memory", f"{self.num_samples} images")
        return self.images, self.labels


@dataclasses.dataclass
class ResolvedData:
    """The checked, split data of one workflow run."""

    train: ImageSource
    validation: ImageSource
    test: ImageSource
    class_names: list
    num_classes: int
    input_shape: tuple
    fingerprint: str = ""


def _array_source(images, labels):
    return ImageSource(kind="array", num_samples=int(len(labels)),
                       labels=np.asarray(labels, np.int64),
                       image_shape=tuple(int(d) for d in images.shape[1:]),
                       images=images)


def _fingerprint(images, labels, class_names):
    digest = hashlib.sha1()
    digest.update(repr((images.shape, str(images.dtype),
                        list(class_names))).encode())
    digest.update(np.ascontiguousarray(labels).tobytes())
    step = max(1, len(images) // 64)
    digest.update(np.ascontiguousarray(images[::step]).tobytes())
    return digest.hexdigest()[:16]


def resolve_data(data, *, validation_data=None, test_data=None,
                 validation_split=0.1, test_split=0.1, seed=42,
                 image_size=None, color_mode=None, on_error="raise",
                 cache=None, name="data"):
    """Resolves any supported input into checked, split `ImageSource`s.

    This first implementation accepts dataset names, folders (read in
    memory) and `(images, labels)` arrays; streaming kinds follow.
    """
    from kerascnn import datasets
    from kerascnn.data.splits import split_dataset

    if isinstance(data, (str, os.PathLike)):
        kwargs = {}
        if os.path.isdir(os.fspath(data)):
            kwargs = {k: v for k, v in (("image_size", image_size),
                                        ("on_error", on_error)) if v}
        images, labels, class_names = datasets.load(os.fspath(data), **kwargs)
    elif isinstance(data, (tuple, list)) and len(data) in (2, 3):
        images, labels, class_names = datasets.load(tuple(data))
    else:
        _validation.fail(name, '"mnist5k", "digits", a folder path or an '
                         "(images, labels) tuple", data)
    split = split_dataset(images, labels, validation_split=validation_split,
                          test_split=test_split, seed=seed)
    sources = [None if len(y) == 0 else _array_source(x, y)
               for x, y in ((split.x_train, split.y_train),
                            (split.x_val, split.y_val),
                            (split.x_test, split.y_test))]
    return ResolvedData(
        train=sources[0], validation=sources[1], test=sources[2],
        class_names=[str(c) for c in class_names],
        num_classes=len(class_names),
        input_shape=sources[0].image_shape,
        fingerprint=_fingerprint(split.x_train, split.y_train, class_names))
