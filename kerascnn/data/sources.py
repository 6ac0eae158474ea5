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

Additions beyond the fixed interface: `ImageSource.sample_dataset(...)`
(the bounded sample as batches, what `normalization_layer(source)` adapts
on), `steps(..., drop_remainder=False)`, `dataset(..., shard=False)` and
`steps(..., shard=False)` (this worker's training pipeline under a
multi-worker `TF_CONFIG`: a folder sharded by file, arrays and streams by
data), `ImageSource.fingerprint`, and the `interpolation` and
`scan_workers` arguments of `resolve_data`.

How each kind is resolved:

- Arrays and dataset names are checked and split as by `split_dataset`.
- A folder is listed (paths and labels, sorted like
  `keras.utils.image_dataset_from_directory`), pre-scanned with Pillow
  (`kerascnn.datasets.scan_files`: corrupt files named, or skipped with
  `on_error="skip"`; sizes and modes read from the headers), split
  stratified on the file list, and streamed: shuffled paths ->
  parallel TensorFlow decode and resize -> optional cache -> batch ->
  prefetch. Under a multi-worker `TF_CONFIG`, the training pipeline
  (`dataset(..., shard=True)`) of each worker holds only its share of the
  file list, sharded before decoding. `image_size=None` takes the images'
  common size (an error names two files of different sizes otherwise);
  `color_mode=None` is grayscale when every image is, else RGB.
- A `tf.data.Dataset` (images of rank 4 are batched, rank 3 with scalar
  labels is not) or a `PyDataset` is read once for its labels (one pass
  over the stream, for the class count, the per-class counts and the label
  checks). A stream is never split by `validation_split` / `test_split`:
  its order may change on every pass, so a split by position would leak
  validation images into training. Give `validation_data=` / `test_data=`,
  or set the fractions to 0.
"""

import dataclasses
import hashlib
import os

import numpy as np

from kerascnn import _validation

#: Values of `resolve_data(cache=...)` besides a file path.
CACHE_OPTIONS = (None, "memory")

# Elements a shuffle buffer of decoded images may hold, and its byte bound.
_SHUFFLE_ELEMENTS = 1024
_SHUFFLE_BYTES = 256 * 2 ** 20


def _check_batch(batch_size, epoch, drop_remainder=False):
    """A batch larger than the epoch is one partial batch (as in Keras),
    except with `drop_remainder`, where it would yield nothing."""
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    if drop_remainder:
        return _validation.check_batch_size(batch_size, epoch)
    return min(batch_size, epoch)


def _refuse(name, expectation, received):
    """`ArgumentError` whose "Received:" is a description, not a repr."""
    raise _validation.ArgumentError(
        f"Argument `{name}` must be {expectation}. Received: {received}")


def _images_only(images, labels):
    return images


def _to_float(images, labels):
    import tensorflow as tf

    return tf.cast(images, tf.float32), labels


def _image_to_float(images):
    import tensorflow as tf

    return tf.cast(images, tf.float32)


def _labels_only(images, labels):
    return labels


class ImageSource:
    """One split of images and integer labels, in memory or streamed.

    The common interface of the four kinds (see the module docstring);
    `resolve_data` builds them. Attributes: `kind`, `num_samples`,
    `labels` (`None` for streams), `image_shape`, `fingerprint`.
    """

    kind = None

    def __new__(cls, *args, **kwargs):
        if cls is not ImageSource:
            return super().__new__(cls)
        # The first, arrays-only interface built sources directly:
        # `ImageSource(kind="array", num_samples=..., labels=...,
        # image_shape=..., images=...)`; that call still gives an array
        # source.
        if kwargs.get("kind", "array") != "array" or kwargs.get(
                "images") is None:
            raise TypeError("ImageSource(...) builds only array sources "
                            "(kind='array', images=..., labels=...); use "
                            "resolve_data for the other kinds")
        source = super().__new__(ArraySource)
        ArraySource.__init__(source, kwargs["images"], kwargs["labels"])
        source._legacy = True
        return source

    def __init__(self, num_samples, labels, image_shape, counts):
        self.num_samples = num_samples
        self.labels = labels
        self.image_shape = tuple(int(d) for d in image_shape)
        self._counts = np.asarray(counts, np.int64)

    def __repr__(self):
        return (f"{type(self).__name__}(kind={self.kind!r}, num_samples="
                f"{self.num_samples}, image_shape={self.image_shape})")

    # -- counting ---------------------------------------------------------

    def class_counts(self, num_classes):
        """Per-class sample counts, int64 `(num_classes,)`."""
        num_classes = _validation.check_int("num_classes", num_classes,
                                            len(self._counts))
        counts = np.zeros(num_classes, np.int64)
        counts[:len(self._counts)] = self._counts
        return counts

    def _epoch(self, sampling):
        from kerascnn.data.pipeline import _check_sampling

        sampling = _check_sampling(sampling)
        present = self._counts[self._counts > 0]
        if sampling == "oversample":
            return int(len(present) * present.max())
        if sampling == "undersample":
            return int(len(present) * present.min())
        return int(self.num_samples)

    def steps(self, batch_size, sampling=None, drop_remainder=False,
              shard=False):
        """Batches per epoch of `dataset(batch_size, sampling=...)`.

        With `shard=True` (`batch_size` the global batch), the optimizer
        steps per epoch of a run in which every worker reads
        `dataset(batch_size, shard=True)`: the same number, on every worker
        and whether the data is sharded by file or by data.
        """
        batch_size = _validation.check_positive_int("batch_size", batch_size)
        _validation.check_bool("shard", shard)
        epoch = self._epoch(sampling)
        if drop_remainder:
            return epoch // batch_size
        return -(-epoch // batch_size)

    def _worker_share(self, shard, sampling):
        """`(workers, index)` when this worker's pipeline holds only its
        share of the files, else `None`."""
        return None

    # -- pipelines --------------------------------------------------------

    def dataset(self, batch_size, *, shuffle=False, seed=None, sampling=None,
                repeat=False, drop_remainder=False, shard=False):
        """Batched `tf.data.Dataset` of `(float32 pixels, int64 labels)`.

        Args:
            batch_size: Positive integer, at most the samples of one epoch.
            shuffle: Boolean, reshuffle every epoch. Defaults to `False`.
            seed: Non-negative integer or `None`. Defaults to `None`.
            sampling: `None`, `"oversample"`, `"undersample"` or
                `"balanced"` (as `make_dataset`; implies shuffling).
                Defaults to `None`.
            repeat: Boolean, repeat forever. Defaults to `False`.
            drop_remainder: Boolean. Defaults to `False`.
            shard: Boolean: the training pipeline of this worker of a
                multi-worker run (`TF_CONFIG` naming several workers;
                `batch_size` is then the global batch, a multiple of the
                workers). A folder's file list is sharded before decoding
                (`Dataset.shard(W, i)`, `i` from
                `kerascnn.core.distribute.worker_index()`), so each worker
                decodes only its own files, and the dataset's auto-shard
                policy is `OFF` so that `tf.distribute` does not shard it
                again. `tf.distribute` spreads each batch of the global size
                over `W` steps of this worker (`batch_size / W` images a
                step) while Keras runs as many steps as the dataset has
                batches; so the worker's files are reshuffled and repeated
                (`repeat().take(...)`) to `steps(..., shard=True)` batches
                of `batch_size`: every worker runs the same number of steps,
                `ceil(n / batch_size)`, reading each of its own files once
                an epoch plus fewer than `batch_size / W` drawn again from
                its next pass (iterated whole without a strategy, the
                dataset gives `W` times what those steps read). Resampling
                with a `cache` is not
                sharded by file. Arrays and streams, and any source in a
                single process, get auto-shard policy `DATA`. Defaults to
                `False`.
        """
        import tensorflow as tf
        from kerascnn.data.pipeline import (_check_sampling, _check_seed,
                                            without_autotune_stall)

        sampling = _check_sampling(sampling)
        seed = _check_seed(seed)
        shuffle = _validation.check_bool("shuffle", shuffle)
        repeat = _validation.check_bool("repeat", repeat)
        drop_remainder = _validation.check_bool("drop_remainder",
                                                drop_remainder)
        shard = _validation.check_bool("shard", shard)
        batch_size = _check_batch(batch_size, self._epoch(sampling),
                                  drop_remainder)
        share = self._worker_share(shard, sampling)
        if share is None:
            dataset = self._elements(shuffle or sampling is not None, seed,
                                     sampling)
        else:
            # `steps` full batches, `batch_size / W` images of them a step.
            elements = batch_size * self.steps(batch_size, sampling,
                                               drop_remainder, shard=True)
            dataset = self._elements(shuffle or sampling is not None, seed,
                                     sampling, share=share + (elements,))
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder,
                                num_parallel_calls=tf.data.AUTOTUNE)
        dataset = self._finish_batches(dataset)
        if repeat:
            dataset = dataset.repeat()
        dataset = without_autotune_stall(dataset.prefetch(tf.data.AUTOTUNE))
        if shard:
            from kerascnn.core.data import shard as with_policy

            dataset = with_policy(dataset,
                                  "DATA" if share is None else "OFF")
        return dataset

    def _finish_batches(self, dataset):
        return dataset

    def sample_dataset(self, max_images=2048, seed=0, batch_size=256):
        """At most `max_images` images as float32 batches (no labels).

        Drawn without replacement with `seed`, in file or array order; for
        folders only the sampled files are decoded. What
        `normalization_layer(source)` adapts on, so that the statistics of
        a large folder never need the folder in memory.
        """
        max_images = _validation.check_positive_int("max_images", max_images)
        seed = _validation.check_non_negative_int("seed", seed)
        batch_size = _validation.check_positive_int("batch_size", batch_size)
        index = None
        if self.num_samples > max_images:
            index = np.sort(np.random.default_rng(seed).choice(
                self.num_samples, max_images, replace=False))
        return self._sample_batches(index, batch_size)

    def sample(self, max_images=2048, seed=0):
        """At most `max_images` images (float32), drawn without replacement."""
        batches = [b.numpy() for b in self.sample_dataset(max_images, seed)]
        return np.concatenate(batches).astype("float32", copy=False)

    def to_numpy(self, max_images=None):
        """`(images, labels)` arrays; refuses more than `max_images`."""
        if max_images is not None and self.num_samples > max_images:
            _refuse("data", f"at most {max_images} images to hold "
                             "in memory", f"{self.num_samples} images")
        xs, ys = [], []
        for x, y in self.dataset(min(256, self.num_samples)):
            xs.append(x.numpy())
            ys.append(y.numpy())
        return np.concatenate(xs), np.concatenate(ys)


class ArraySource(ImageSource):
    """Images held in memory (NumPy)."""

    kind = "array"

    def __init__(self, images=None, labels=None, num_classes=None, **legacy):
        if getattr(self, "_legacy", False):
            return  # built by ImageSource(kind="array", ...) already
        labels = np.asarray(labels, np.int64)
        super().__init__(int(len(labels)), labels, images.shape[1:],
                         np.bincount(labels, minlength=num_classes or 0))
        self.images = images
        digest = hashlib.sha1(repr((images.shape, str(images.dtype))).encode())
        digest.update(np.ascontiguousarray(labels).tobytes())
        step = max(1, len(images) // 64)
        digest.update(np.ascontiguousarray(images[::step]).tobytes())
        self.fingerprint = digest.hexdigest()[:16]

    def dataset(self, batch_size, *, shuffle=False, seed=None, sampling=None,
                repeat=False, drop_remainder=False, shard=False):
        from kerascnn.data.pipeline import make_dataset

        shard = _validation.check_bool("shard", shard)
        batch_size = _check_batch(batch_size, self._epoch(sampling),
                                  bool(drop_remainder))
        dataset = make_dataset(self.images, self.labels,
                               batch_size=batch_size,
                               shuffle=bool(shuffle) or sampling is not None,
                               sampling=sampling, seed=seed, cache=False,
                               repeat=repeat, drop_remainder=drop_remainder)
        if shard:  # in memory: every worker keeps its share of each batch
            from kerascnn.core.data import shard as with_policy

            dataset = with_policy(dataset, "DATA")
        return dataset

    def _sample_batches(self, index, batch_size):
        import tensorflow as tf

        images = self.images if index is None else self.images[index]
        return tf.data.Dataset.from_tensor_slices(images).batch(
            batch_size).map(lambda b: tf.cast(b, tf.float32))

    def sample(self, max_images=2048, seed=0):
        max_images = _validation.check_positive_int("max_images", max_images)
        if self.num_samples <= max_images:
            return self.images.astype("float32")
        index = np.sort(np.random.default_rng(seed).choice(
            self.num_samples, max_images, replace=False))
        return self.images[index].astype("float32")

    def to_numpy(self, max_images=None):
        if max_images is not None and self.num_samples > max_images:
            _refuse("data", f"at most {max_images} images to hold "
                             "in memory", f"{self.num_samples} images")
        return self.images, self.labels


class FileSource(ImageSource):
    """Image files streamed from disk: decoded in TensorFlow, batch by batch.

    Holds only the file paths and labels. `dataset` shuffles the paths
    (cheap and exact), decodes and resizes in parallel
    (`num_parallel_calls=AUTOTUNE`), optionally caches the decoded images
    (`cache="memory"` or a file prefix), batches and prefetches. With a
    cache, paths are decoded in file order once and the decoded images are
    shuffled through a bounded buffer instead.
    """

    kind = "files"

    def __init__(self, paths, labels, image_size, channels, resize,
                 num_classes, interpolation="bilinear", cache=None,
                 split="train", stats=None, native=False):
        labels = np.asarray(labels, np.int64)
        super().__init__(int(len(labels)), labels,
                         (image_size[0], image_size[1], channels),
                         np.bincount(labels, minlength=num_classes))
        self.paths = np.asarray(paths, dtype=object)
        self.image_size = tuple(image_size)
        self.channels = int(channels)
        self.resize = bool(resize)
        self.interpolation = interpolation
        self.cache = cache
        self.split = split
        self.native = bool(native)
        digest = hashlib.sha1(repr((self.image_size, self.channels,
                                    interpolation)).encode())
        for path, label, stat in zip(self.paths, labels,
                                     stats or [None] * len(labels)):
            digest.update(f"{path}\0{label}\0{stat}\n".encode())
        self.fingerprint = digest.hexdigest()[:16]

    def _load(self):
        import tensorflow as tf
        from kerascnn.datasets.files import decode_image

        size, channels = self.image_size, self.channels
        interpolation, resize = self.interpolation, self.resize
        if self.native:
            # Every file is 8-bit with `channels` channels (pre-scan): the
            # plain uint8 decode is exact, and batches are cast to float32.
            def load(path, label):
                image = tf.io.decode_image(
                    tf.io.read_file(path), channels=channels, dtype=tf.uint8,
                    expand_animations=False)
                if resize:
                    image = tf.image.resize(image, size, method=interpolation)
                image.set_shape((size[0], size[1], channels))
                return image, label

            return load

        def load(path, label):
            return decode_image(tf.io.read_file(path), channels, size,
                                interpolation, resize=resize), label

        return load

    def _finish_batches(self, dataset):
        import tensorflow as tf

        if not self.native or self.resize:
            return dataset
        return dataset.map(_to_float, num_parallel_calls=tf.data.AUTOTUNE)

    def _cache_file(self, suffix):
        if self.cache == "memory":
            return ""
        return f"{self.cache}.{self.split}-{self.fingerprint}{suffix}"

    def _worker_share(self, shard, sampling):
        if not shard or (sampling is not None and self.cache is not None):
            return None
        from kerascnn.core import distribute

        workers = distribute.num_workers()
        if workers <= 1:
            return None
        return workers, distribute.worker_index()

    @staticmethod
    def _own_share(dataset, count, share):
        """This worker's elements of `dataset` (of `count`) and how many."""
        workers, index, _ = share
        return dataset.shard(workers, index), len(range(index, count,
                                                         workers))

    @staticmethod
    def _repeat(dataset, share):
        """This worker's elements, reshuffled each pass, to the number of
        elements every worker's pipeline holds (see `dataset`)."""
        return dataset.repeat().take(share[2])

    def _slices(self, index=None):
        import tensorflow as tf

        paths = self.paths if index is None else self.paths[index]
        labels = self.labels if index is None else self.labels[index]
        return tf.data.Dataset.from_tensor_slices(
            (paths.astype(str), labels))

    def _shuffle_buffer(self):
        item = 4 * int(np.prod(self.image_shape))
        return max(16, min(_SHUFFLE_ELEMENTS, _SHUFFLE_BYTES // item))

    def _elements(self, shuffle, seed, sampling, share=None):
        import tensorflow as tf
        from kerascnn.data.pipeline import sample_classes

        load, n = self._load(), self.num_samples
        decode = dict(num_parallel_calls=tf.data.AUTOTUNE)
        if sampling is None:
            dataset, suffix = self._slices(), ""
            if share is not None:
                # The file list is split before anything is decoded.
                dataset, n = self._own_share(dataset, n, share)
                suffix = f"-worker{share[1]}"
            if self.cache is None:
                if shuffle:
                    dataset = dataset.shuffle(n, seed=seed,
                                              reshuffle_each_iteration=True)
                dataset = dataset.map(load, **decode)
            else:
                dataset = dataset.map(load, **decode).cache(
                    self._cache_file(suffix))
                if shuffle:
                    dataset = dataset.shuffle(min(n, self._shuffle_buffer()),
                                              seed=seed,
                                              reshuffle_each_iteration=True)
            if share is not None:
                dataset = self._repeat(dataset, share)
            return dataset
        classes = np.flatnonzero(self._counts)
        streams = []
        for c in classes:
            stream = self._slices(np.flatnonzero(self.labels == c))
            if self.cache is not None:
                stream = stream.map(load, **decode).cache(
                    self._cache_file(f"-class{c}"))
            streams.append(stream)
        dataset = sample_classes(
            streams, self._counts[classes], sampling, seed,
            shuffle_buffer=None if self.cache is None
            else self._shuffle_buffer())
        if share is not None:
            # No cache (see `_worker_share`): the resampled paths are split
            # before anything is decoded.
            dataset, _ = self._own_share(dataset, self._epoch(sampling),
                                         share)
        if self.cache is None:
            dataset = dataset.map(load, **decode)
        if share is not None:
            dataset = self._repeat(dataset, share)
        return dataset

    def _sample_batches(self, index, batch_size):
        import tensorflow as tf

        dataset = self._slices(index).map(
            self._load(), num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.map(_images_only).batch(batch_size).map(
            _image_to_float).prefetch(tf.data.AUTOTUNE)


class StreamSource(ImageSource):
    """A user's `tf.data.Dataset` or `keras.utils.PyDataset`, streamed.

    Its labels were read once by `resolve_data` (counts, checks); its
    images are not held. Batched input is unbatched and rebatched to the
    requested `batch_size`. Shuffling uses a bounded buffer (at most 1,024
    elements) over the user's own order. Resampling reads the stream once
    per epoch (twice at most for `"balanced"`) and repeats or drops each
    element by its class's rate (systematic sampling: exactly the target
    count of every class per pass, a random phase per epoch), then
    shuffles the result through the buffer.
    """

    def __init__(self, elements, kind, num_samples, counts, image_shape,
                 convert, fingerprint):
        super().__init__(int(num_samples), None, image_shape, counts)
        self.kind = kind
        self._raw = elements
        self._convert = convert
        self.fingerprint = fingerprint

    def _shuffle_buffer(self):
        item = 4 * int(np.prod(self.image_shape))
        return max(16, min(_SHUFFLE_ELEMENTS, _SHUFFLE_BYTES // item,
                           self.num_samples))

    def _elements(self, shuffle, seed, sampling):
        import tensorflow as tf

        dataset = self._raw
        if sampling is None:
            if shuffle:
                dataset = dataset.shuffle(self._shuffle_buffer(), seed=seed,
                                          reshuffle_each_iteration=True)
            return dataset.apply(tf.data.experimental.assert_cardinality(
                self.num_samples))
        present = self._counts[self._counts > 0]
        target = {"oversample": present.max(), "undersample": present.min(),
                  "balanced": self.num_samples / len(present)}[sampling]
        rates = np.where(self._counts > 0, target / np.maximum(
            self._counts, 1), 0.0)
        rates = tf.constant(rates, tf.float64)
        label_index = self._label_index
        zeros = tf.zeros(len(self._counts), tf.float64)

        def select(state, inputs):
            # Systematic sampling per class: its r-th element gets
            # floor((r + 1) * rate + phase) - floor(r * rate + phase)
            # copies, so every class contributes exactly `rate * n_c`
            # elements per pass, spread evenly, with a random phase per
            # class and epoch.
            (element, draw), (ranks, phases) = inputs, state
            c = label_index(element[1])
            u = tf.cast(tf.math.floormod(draw, 2 ** 30), tf.float64) / 2 ** 30
            phase = tf.where(tf.equal(ranks[c], 0.0), u, phases[c])
            rank, rate = ranks[c], rates[c]
            copies = (tf.floor((rank + 1.0) * rate + phase)
                      - tf.floor(rank * rate + phase))
            ranks = tf.tensor_scatter_nd_add(ranks, [[c]], [1.0])
            phases = tf.tensor_scatter_nd_update(phases, [[c]], [phase])
            return (ranks, phases), (element, tf.cast(copies, tf.int64))

        def repeated(element, copies):
            return tf.data.Dataset.from_tensors(element).repeat(copies)

        draws = tf.data.Dataset.random(seed=seed,
                                       rerandomize_each_iteration=True)
        dataset = tf.data.Dataset.zip((dataset.repeat(), draws)).scan(
            (zeros, zeros), select).flat_map(repeated)
        dataset = dataset.shuffle(self._shuffle_buffer(), seed=seed,
                                  reshuffle_each_iteration=True)
        epoch = self._epoch(sampling)
        return dataset.take(epoch).apply(
            tf.data.experimental.assert_cardinality(epoch))

    def _finish_batches(self, dataset):
        import tensorflow as tf

        return dataset.map(self._convert, num_parallel_calls=tf.data.AUTOTUNE)

    def _sample_batches(self, index, batch_size):
        import tensorflow as tf

        dataset = self._raw
        if index is not None:
            keep = tf.constant(np.isin(np.arange(self.num_samples), index))

            def kept(position, element):
                return tf.gather(keep, position)

            def element_only(position, element):
                return element

            dataset = dataset.enumerate().filter(kept).map(element_only)
        return dataset.batch(batch_size).map(self._convert).map(_images_only)


# -- resolving ---------------------------------------------------------------


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

    def summary(self):
        """One line per split: kind, samples, image shape."""
        lines = [f"{self.num_classes} classes, input shape "
                 f"{self.input_shape}, fingerprint {self.fingerprint}"]
        for name in ("train", "validation", "test"):
            source = getattr(self, name)
            if source is not None:
                lines.append(f"  {name}: {source.num_samples} images "
                             f"({source.kind})")
        return "\n".join(lines)


def _is_pydataset(value):
    try:
        import keras
    except ImportError:  # pragma: no cover
        return False
    return isinstance(value, keras.utils.PyDataset)


def _is_tf_dataset(value):
    import tensorflow as tf

    return isinstance(value, tf.data.Dataset)


def _kind(value, name):
    """"name" | "folder" | "arrays" | "dataset" | "pydataset", or raises."""
    if isinstance(value, str) and not os.path.isdir(value):
        from kerascnn.datasets.registry import DATASETS

        if value.lower() in DATASETS:
            return "name"
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if os.path.isdir(path):
            from kerascnn.datasets.registry import DATASETS, check_dataset_name

            if isinstance(value, str) and value.lower() in DATASETS:
                check_dataset_name(value, name=name)
            return "folder"
        if os.path.exists(path):
            _validation.fail(name, "a folder with one sub-folder per class "
                             "(not a file)", path)
        from kerascnn.datasets.registry import DATASETS

        _validation.fail(name, "one of " + ", ".join(map(repr, DATASETS))
                         + " or an existing folder", path)
    if isinstance(value, (tuple, list)) and len(value) in (2, 3) and not \
            isinstance(value[0], str):
        return "arrays"
    if _is_tf_dataset(value):
        return "dataset"
    if _is_pydataset(value):
        return "pydataset"
    if isinstance(value, np.ndarray):
        value = f"array of shape {value.shape}"
    _validation.fail(name, '"mnist5k", "digits", a folder path, an (images, '
                     "labels) tuple, a tf.data.Dataset of (image, label) or a "
                     "keras.utils.PyDataset", value)


@dataclasses.dataclass
class _Options:
    image_size: tuple
    color_mode: str
    on_error: str
    cache: object
    interpolation: str
    scan_workers: object


def _check_cache(cache):
    if cache is None or (isinstance(cache, str) and cache.lower() == "memory"):
        return None if cache is None else "memory"
    if isinstance(cache, (str, os.PathLike)) and os.fspath(cache):
        path = os.path.abspath(os.fspath(cache))
        if os.path.isdir(path):
            _validation.fail("cache", 'None, "memory" or a cache file prefix '
                             "(not a directory)", os.fspath(cache))
        if not os.path.isdir(os.path.dirname(path)):
            _validation.fail("cache", 'None, "memory" or a file prefix in an '
                             "existing folder", os.fspath(cache))
        return path
    _validation.fail("cache", 'None, "memory" or a cache file prefix', cache)


def _arrays(value, name):
    from kerascnn import datasets

    if isinstance(value, str):
        return datasets.load(value.lower())
    try:
        return datasets.load(tuple(value))
    except _validation.ArgumentError as error:
        if name == "data":
            raise
        raise _validation.ArgumentError(f"In `{name}`: {error}") from None


def _list_folder(path, options, name):
    from kerascnn.datasets import files

    paths, labels, class_names = files.list_directory(path)
    scan = files.scan_files(paths, options.on_error,
                            workers=options.scan_workers, name=name)
    paths = [paths[i] for i in scan.keep]
    labels = labels[scan.keep]
    present = set(np.unique(labels).tolist())
    missing = [c for i, c in enumerate(class_names) if i not in present]
    if missing:
        raise _validation.ArgumentError(
            f"Argument `{name}` must be a folder whose every class holds a "
            f"readable image. Received: {name}={os.fspath(path)!r} (no "
            f"readable image in class folders {missing})")
    stats = []
    for p in paths:
        st = os.stat(p)
        stats.append((st.st_size, st.st_mtime_ns))
    root = os.path.abspath(os.fspath(path))
    relative = [os.path.relpath(p, root) for p in paths]
    return paths, labels, class_names, scan, list(zip(relative, stats))


def _folder_size(scan, paths, image_size, name):
    if image_size is not None:
        return image_size, bool((scan.sizes != image_size).any())
    first = scan.sizes[0]
    different = np.flatnonzero((scan.sizes != first).any(axis=1))
    if len(different):
        other = int(different[0])
        raise _validation.ArgumentError(
            "Argument `image_size` must be given when the images differ in "
            "size (e.g. image_size=(96, 96), or --image-size 96 96 on the "
            f"command line, resizes them all). Received: image_size=None "
            f"with {paths[0]!r} of size {tuple(int(v) for v in first)} and "
            f"{paths[other]!r} of size "
            f"{tuple(int(v) for v in scan.sizes[other])} in `{name}`")
    return (int(first[0]), int(first[1])), False


def _stream_elements(value, kind, name):
    """`(unbatched tf.data of raw (x, y), batched_view, spec)`."""
    import tensorflow as tf

    if kind == "pydataset":
        batches = value.num_batches
        if batches is None:
            _refuse(name, "a PyDataset with a finite number of "
                             "batches (num_batches / __len__)", value)
        first = value[0]
        if not isinstance(first, tuple) or len(first) != 2:
            _refuse(name, "a PyDataset whose batches are (images, "
                             "labels) tuples", type(first).__name__ if not
                             isinstance(first, tuple) else
                             f"tuples of {len(first)} items")
        x0, y0 = (np.asarray(v) for v in first)
        signature = (tf.TensorSpec((None,) + x0.shape[1:], x0.dtype),
                     tf.TensorSpec((None,) + y0.shape[1:], y0.dtype))

        def generate():
            for i in range(batches):
                x, y = value[i]
                yield np.asarray(x), np.asarray(y)
            value.on_epoch_end()

        batched = tf.data.Dataset.from_generator(
            generate, output_signature=signature)
        batched = batched.apply(tf.data.experimental.assert_cardinality(
            batches))
        return batched.unbatch(), batched, signature
    spec = value.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2 or not all(
            isinstance(s, tf.TensorSpec) for s in spec):
        _refuse(name, "a tf.data.Dataset of (image, label) "
                         "elements", f"element_spec={spec}")
    if value.cardinality() == tf.data.INFINITE_CARDINALITY:
        _refuse(name, "a finite tf.data.Dataset (one epoch; do not "
                         "repeat() it, fit repeats)", "an infinite dataset")
    x_spec, y_spec = spec
    rank, label_rank = x_spec.shape.rank, y_spec.shape.rank
    # Rank 4 is a batch; rank 3 with integer labels of rank 1 is a batch of
    # grayscale images when both lead with the same (or unknown) size.
    batched = rank == 4 or (
        rank == 3 and label_rank == 1 and y_spec.dtype.is_integer
        and x_spec.shape[0] == y_spec.shape[0])
    if rank is None or label_rank is None or rank not in (2, 3, 4):
        _refuse(name, "a tf.data.Dataset of images (h, w, c) or "
                         "batches (b, h, w, c) with labels",
                         f"element_spec={spec}")
    if batched:
        return value.unbatch(), value, spec
    return value, value.batch(1024), spec


def _resolve_stream(value, kind, name, image_size, num_classes=None,
                    interpolation="bilinear"):
    import tensorflow as tf

    elements, batched, _ = _stream_elements(value, kind, name)
    x_spec, y_spec = elements.element_spec
    if not (x_spec.dtype.is_integer or x_spec.dtype.is_floating
            or x_spec.dtype == tf.bool) or x_spec.dtype.is_complex:
        _refuse(name, "a stream of real-valued images",
                         f"images of dtype {x_spec.dtype.name}")
    shape = list(x_spec.shape)
    if len(shape) == 2:
        shape.append(1)
    if shape[-1] is None:
        _refuse(name, "a stream of images with a known number of "
                         "channels", f"element_spec={elements.element_spec}")
    if image_size is None and (shape[0] is None or shape[1] is None):
        _validation.fail("image_size", "given for a stream of images of "
                         "unknown size (resize in the pipeline, or pass "
                         "image_size=(h, w))", image_size)
    size = image_size or (int(shape[0]), int(shape[1]))
    resize = image_size is not None and tuple(shape[:2]) != tuple(size)
    channels = int(shape[-1])
    if y_spec.shape.rank not in (0, 1):
        _refuse(name, "a stream of scalar labels or one-hot rows",
                         f"labels of shape {y_spec.shape}")
    one_hot = y_spec.shape.rank == 1 and y_spec.shape[0] != 1
    if not (y_spec.dtype.is_integer or y_spec.dtype.is_floating):
        _refuse(name, "a stream of integer class labels",
                         f"labels of dtype {y_spec.dtype.name}")

    def label_index(y):
        if one_hot:
            return tf.argmax(y, axis=-1, output_type=tf.int64)
        if y.shape.rank and y.shape[-1] == 1:
            y = y[..., 0]
        return tf.cast(y, tf.int64)

    def convert(x, y):
        x = tf.cast(x, tf.float32)
        if x.shape.rank == 3:
            x = x[..., tf.newaxis]
        if resize:
            x = tf.image.resize(x, size, method=interpolation)
        x = tf.ensure_shape(x, (None, size[0], size[1], channels))
        return x, label_index(y)

    # One pass over the labels (decode ops of the images may be pruned by
    # map fusion; the labels are what the counts and checks need).
    options = tf.data.Options()
    options.experimental_optimization.map_fusion = True
    labels = []
    if kind == "pydataset":
        for i in range(value.num_batches):
            labels.append(np.asarray(value[i][1]))
    else:
        only = batched.map(_labels_only).with_options(options)
        labels = [np.asarray(y) for y in only.as_numpy_iterator()]
    if not labels:
        _refuse(name, "a non-empty stream", "an empty stream")
    labels = np.concatenate(labels)
    label_name = "labels" if name == "data" else name
    if num_classes is None:
        labels = _validation.check_labels(label_name, labels)
    else:
        labels = _validation.check_labels(label_name, labels,
                                          num_classes=num_classes,
                                          min_classes=1)
    counts = np.bincount(labels)
    digest = hashlib.sha1(repr((kind, str(elements.element_spec))).encode())
    digest.update(labels.tobytes())
    source = StreamSource(elements, kind, len(labels), counts,
                          (size[0], size[1], channels), convert,
                          digest.hexdigest()[:16])
    source._label_index = label_index
    return source


def _all_classes_present(counts, class_names, name):
    missing = [class_names[i] for i in range(len(class_names))
               if i >= len(counts) or counts[i] == 0]
    if missing:
        raise _validation.ArgumentError(
            f"Argument `{name}` must hold at least one sample of every class "
            f"0..{len(class_names) - 1}. Received: no sample of class(es) "
            f"{missing[:10]} (labels counted from 1 instead of 0?)")


def _explicit(value, name, resolved, options):
    """An explicit `validation_data` / `test_data` as an ImageSource."""
    kind = _kind(value, name)
    num_classes, input_shape = resolved["num_classes"], resolved["shape"]
    if kind in ("name", "arrays"):
        if kind == "name":
            images, labels, _ = _arrays(value, name)
        else:
            images = _validation.check_images(name, value[0])
            labels = _validation.check_labels(
                name, value[1], num_classes=num_classes,
                num_samples=len(images), samples_name=name, min_classes=1)
        if images.shape[1:] != tuple(input_shape):
            raise _validation.ArgumentError(
                f"Argument `{name}` must hold images of the training shape "
                f"{tuple(input_shape)}. Received: images of shape "
                f"{images.shape[1:]}")
        return ArraySource(images, labels, num_classes)
    if kind == "folder":
        from kerascnn.datasets.files import native_decoding

        paths, labels, class_names, scan, stats = _list_folder(
            value, options, name)
        known = resolved["class_names"]
        unknown = [c for c in class_names if c not in known]
        if unknown:
            raise _validation.ArgumentError(
                f"Argument `{name}` must be a folder whose class sub-folders "
                f"are training classes {known}. Received: class folders "
                f"{unknown} that the training data does not have")
        remap = np.asarray([known.index(c) for c in class_names], np.int64)
        size = tuple(input_shape[:2])
        resize = bool((scan.sizes != size).any())
        return FileSource(paths, remap[labels], size, input_shape[2], resize,
                          num_classes, options.interpolation, options.cache,
                          split=name, stats=stats,
                          native=native_decoding(scan, input_shape[2]))
    source = _resolve_stream(value, kind, name, tuple(input_shape[:2]),
                             num_classes, options.interpolation)
    if source.image_shape[2] != input_shape[2]:
        raise _validation.ArgumentError(
            f"Argument `{name}` must hold images with {input_shape[2]} "
            f"channel(s), like the training data. Received: images of shape "
            f"{source.image_shape}")
    return source


def resolve_data(data, *, validation_data=None, test_data=None,
                 validation_split=0.1, test_split=0.1, seed=42,
                 image_size=None, color_mode=None, on_error="raise",
                 cache=None, name="data", interpolation="bilinear",
                 scan_workers=None):
    """Resolves any supported input into checked, split `ImageSource`s.

    The data layer of every kerascnn workflow (see the module docstring
    for each kind). Keras' `fit` accepts the same kinds one at a time;
    what this adds: one checked, stratified, seeded split of arrays,
    names and folders; folders streamed without being held in memory,
    after a pre-scan that names corrupt files; label checks and class
    counts for streams; a fingerprint of the data.

    Args:
        data: `"mnist5k"`, `"digits"` (built-in, only while no folder of
            that name exists in the working directory), a folder path
            (one sub-folder per class), a tuple `(images, labels)` /
            `(images, labels, class_names)`, a `tf.data.Dataset` of
            `(image, label)` elements or batches, or a
            `keras.utils.PyDataset` of `(images, labels)` batches.
        validation_data: `None` or the same kinds: the validation split,
            instead of `validation_split` of `data`. Defaults to `None`.
        test_data: `None` or the same kinds, instead of `test_split`.
            Defaults to `None`.
        validation_split: Fraction of `data` for validation, in `[0, 1)`
            (arrays, names, folders only). Defaults to `0.1`.
        test_split: Fraction of `data` for the test set, in `[0, 1)`.
            Defaults to `0.1`.
        seed: Split seed (as `split_dataset`). Defaults to `42`.
        image_size: `None`, an integer or `(height, width)`: the size images
            are resized to; `None` keeps the common size of a folder's
            images (an error when they differ). Defaults to `None`.
        color_mode: `None` (a folder of only grayscale images is
            grayscale, otherwise RGB), `"grayscale"`, `"rgb"` or `"rgba"`.
            Folders only. Defaults to `None`.
        on_error: Unreadable files of a folder: `"raise"` (an error naming
            the file) or `"skip"` (left out, one warning naming them).
            Defaults to `"raise"`.
        cache: Folders: `None` (decode every epoch, nothing held),
            `"memory"` (decoded images kept in memory after the first
            epoch) or a file prefix (a `tf.data` disk cache per split).
            Defaults to `None`.
        name: Argument name used in errors for `data`. Defaults to `"data"`.
        interpolation: Resize method (`tf.image.resize`). Defaults to
            `"bilinear"`.
        scan_workers: Threads of the folder pre-scan. Defaults to `None`
            (`min(32, 4 * cpus)`).

    Returns:
        A `ResolvedData`.

    Raises:
        ArgumentError: for bad arguments or data, before any training.
    """
    from kerascnn.data.splits import _check_split, split_indices
    from kerascnn.datasets import files

    if image_size is not None:
        image_size = _validation.check_image_size("image_size", image_size)
    color_mode = files.check_color_mode(color_mode)
    on_error = _validation.check_option("on_error", on_error,
                                        ("raise", "skip"))
    interpolation = _validation.check_option("interpolation", interpolation,
                                             files.INTERPOLATIONS)
    if scan_workers is not None:
        scan_workers = _validation.check_positive_int("scan_workers",
                                                      scan_workers)
    options = _Options(image_size, color_mode, on_error, _check_cache(cache),
                       interpolation, scan_workers)
    validation_split = _check_split("validation_split", validation_split)
    test_split = _check_split("test_split", test_split)
    if seed is not None:
        seed = _validation.check_non_negative_int("seed", seed)
    if validation_data is not None:
        validation_split = 0.0
    if test_data is not None:
        test_split = 0.0
    kind = _kind(data, name)
    for value, arg in ((validation_data, "validation_data"),
                       (test_data, "test_data")):
        if value is not None:
            _kind(value, arg)  # a bad kind is refused before any reading
    digest = hashlib.sha1(repr((kind, validation_split, test_split, seed,
                                image_size, color_mode,
                                interpolation)).encode())

    if kind in ("dataset", "pydataset"):
        for fraction, arg, given in (("validation_split", "validation_data",
                                      validation_split),
                                     ("test_split", "test_data", test_split)):
            if given:
                raise _validation.ArgumentError(
                    f"Argument `{arg}` must be given when `{name}` is a "
                    f"{'tf.data.Dataset' if kind == 'dataset' else 'PyDataset'}"
                    f" (a stream is not split by `{fraction}`: its order may "
                    "change on every pass, which would mix held-out images "
                    f"into training); or pass {fraction}=0. Received: "
                    f"{arg}=None, {fraction}={given}")
        train = _resolve_stream(data, kind, name, image_size,
                                interpolation=interpolation)
        class_names = [str(i) for i in range(len(train._counts))]
        _all_classes_present(train._counts, class_names, name)
        sources = [train, None, None]
        digest.update(train.fingerprint.encode())
    elif kind == "folder":
        paths, labels, class_names, scan, stats = _list_folder(
            data, options, name)
        size, resize = _folder_size(scan, paths, image_size, name)
        mode = color_mode or files.infer_color_mode(scan.modes)
        channels = files.COLOR_MODES[mode]
        native = files.native_decoding(scan, channels)
        index = split_indices(labels, validation_split, test_split, seed)
        sources = [None if len(i) == 0 else FileSource(
            [paths[j] for j in i], labels[i], size, channels, resize,
            len(class_names), interpolation, options.cache, split=split,
            stats=[stats[j] for j in i], native=native)
            for i, split in zip(index, ("train", "validation", "test"))]
        for relative, stat in stats:
            digest.update(f"{relative}\0{stat}\n".encode())
        digest.update(repr(class_names).encode())
    else:
        images, labels, class_names = _arrays(data, name)
        counts = np.bincount(labels, minlength=len(class_names))
        _all_classes_present(counts, class_names,
                             "labels" if name == "data" else name)
        index = split_indices(labels, validation_split, test_split, seed)
        sources = [None if len(i) == 0 else ArraySource(
            images[i], labels[i], len(class_names)) for i in index]
        digest.update(ArraySource(images, labels).fingerprint.encode())
        digest.update(repr(list(class_names)).encode())

    class_names = [str(c) for c in class_names]
    resolved = {"num_classes": len(class_names), "class_names": class_names,
                "shape": sources[0].image_shape}
    for position, value, arg in ((1, validation_data, "validation_data"),
                                 (2, test_data, "test_data")):
        if value is not None:
            sources[position] = _explicit(value, arg, resolved, options)
            digest.update(f"{arg}\0{sources[position].fingerprint}".encode())
    return ResolvedData(
        train=sources[0], validation=sources[1], test=sources[2],
        class_names=class_names, num_classes=len(class_names),
        input_shape=sources[0].image_shape,
        fingerprint=digest.hexdigest()[:16])
