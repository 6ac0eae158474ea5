"""`tf.data` input pipelines with optional class-balancing resampling."""

import numpy as np

from kerascnn import _validation

SAMPLING_METHODS = ("oversample", "undersample", "balanced")


def _check_sampling(sampling):
    if sampling is None:
        return None
    return _validation.check_option("sampling", sampling, SAMPLING_METHODS)


def _check_seed(seed):
    if seed is None:
        return None
    return _validation.check_non_negative_int("seed", seed)


def samples_per_epoch(labels, sampling=None):
    """Number of samples one epoch of `make_dataset(..., sampling=...)` yields.

    - `None`: every sample once, `n`.
    - `"oversample"`: every class repeated up to the largest class,
      `num_classes * max_count`.
    - `"undersample"`: every class cut down to the smallest class,
      `num_classes * min_count`.
    - `"balanced"`: `n` draws, each from a uniformly chosen class, so an
      epoch has as many samples as the data.

    Classes are those present in `labels`. The number of batches is
    `ceil(samples / batch_size)` (`floor` with `drop_remainder=True`).
    """
    labels = _validation.check_labels("labels", labels)
    sampling = _check_sampling(sampling)
    counts = np.bincount(labels)
    counts = counts[counts > 0]
    if sampling == "oversample":
        return int(len(counts) * counts.max())
    if sampling == "undersample":
        return int(len(counts) * counts.min())
    return int(len(labels))


def without_autotune_stall(dataset):
    """`dataset` with tf.data's autotuning thread switched off.

    `tf.data.Options().autotune.enabled = False`. What this avoids, measured
    with TensorFlow 2.21 on CPU (docs/data.md, "The end-of-epoch stall";
    `python -m benchmarks.bench_epoch_end`): an iterator whose end is reached
    inside a `tf.function` (every finite epoch of `model.fit`, every
    `evaluate` and `predict`) is freed only when its autotuning thread next
    wakes. That thread wakes at 10 ms, then at doubling intervals up to 60
    s, so an epoch that ends at 2.7 s waits until 5.1 s, one that ends at
    6.9 s until 10.2 s. The model-fitting loop then stands idle (the
    validation pass of every epoch reads an iterator of its own, which can
    wait too).

    What it costs: the parallel `map` and `batch` calls given
    `num_parallel_calls=tf.data.AUTOTUNE` keep a fixed parallelism, the
    number of schedulable cores (at most 16), instead of a tuned one, and
    `prefetch(AUTOTUNE)` keeps its own buffer tuning (a parallel `map` of
    image resizes took the same time either way on 2 cores, docs/data.md).
    Options set on the user's own stream are kept; only `autotune.enabled`
    is set.
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def sample_classes(streams, counts, sampling, seed=None,
                   shuffle_buffer=None):
    """One epoch of resampled elements from per-class datasets.

    The sampler behind `make_dataset(sampling=...)`, shared by the streamed
    folder pipelines (whose per-class streams hold file paths, decoded
    after sampling): each class stream is reshuffled and repeated, cut to
    the largest (`"oversample"`) or smallest (`"undersample"`) class count,
    and the classes are interleaved by `sample_from_datasets` with equal
    weights; `"balanced"` takes `sum(counts)` uniform-class draws. The
    cardinality is set to `samples_per_epoch`.

    Args:
        streams: One finite `tf.data.Dataset` of elements per class.
        counts: Elements in each stream.
        sampling: `"oversample"`, `"undersample"` or `"balanced"`.
        seed: Non-negative integer or `None`. Defaults to `None`.
        shuffle_buffer: Bound on each class's shuffle buffer. Defaults to
            `None` (the whole class, an exact shuffle).

    Returns:
        A `tf.data.Dataset` of single elements.
    """
    import tensorflow as tf

    sampling = _check_sampling(sampling)
    counts = np.asarray(counts, np.int64)
    epoch = {"oversample": len(counts) * int(counts.max()),
             "undersample": len(counts) * int(counts.min())}.get(
                 sampling, int(counts.sum()))
    sampled = []
    for offset, (stream, count) in enumerate(zip(streams, counts)):
        buffer = int(count) if shuffle_buffer is None else max(
            1, min(int(count), shuffle_buffer))
        stream = stream.shuffle(
            buffer, seed=None if seed is None else seed + offset + 1,
            reshuffle_each_iteration=True).repeat()
        if sampling == "oversample":
            stream = stream.take(int(counts.max()))
        elif sampling == "undersample":
            stream = stream.take(int(counts.min()))
        sampled.append(stream)
    weights = [1.0 / len(sampled)] * len(sampled)
    dataset = tf.data.Dataset.sample_from_datasets(
        sampled, weights=weights, seed=seed, stop_on_empty_dataset=False)
    if sampling == "balanced":
        dataset = dataset.take(epoch)
    return dataset.apply(tf.data.experimental.assert_cardinality(epoch))


def make_dataset(images, labels, batch_size=32, shuffle=True, sampling=None,
                 seed=None, cache=True, prefetch=True, repeat=False,
                 drop_remainder=False, one_hot=False, num_classes=None,
                 dtype="float32"):
    """Builds a batched `tf.data.Dataset` of `(images, labels)` from arrays.

    The input pipeline the tf.data performance guide recommends (`cache`,
    reshuffle every epoch, `prefetch(AUTOTUNE)`), plus the lecture's
    resampling remedies for label imbalance, which Keras does not provide,
    and without the idle wait at the end of every epoch that tf.data's
    autotuning thread causes (`without_autotune_stall`):

    - `sampling=None`: every sample once per epoch (shuffled if `shuffle`).
    - `"oversample"`: each class is drawn, from its own reshuffled stream,
      up to the count of the largest class; an epoch has
      `num_classes * max_count` samples, every class equally often, and the
      minority samples appear several times.
    - `"undersample"`: each class contributes a fresh random subset of the
      size of the smallest class every epoch; an epoch has
      `num_classes * min_count` samples.
    - `"balanced"` (batch sampling): every element is drawn from a uniformly
      chosen class (`tf.data.Dataset.sample_from_datasets`), so each batch
      holds `batch_size / num_classes` samples of every class in
      expectation; an epoch is `n` draws, as many as the data.

    In every case the dataset's cardinality is set, so `model.fit` knows the
    number of steps: `ceil(samples_per_epoch(labels, sampling) / batch_size)`
    (`floor` with `drop_remainder`). The same `seed` gives the same batches,
    epoch after epoch; with `seed=None` the order is random. Classes are
    interleaved randomly within the epoch.

    Args:
        images: Array `(n, height, width[, channels])`; raw pixels are fine
            (normalize inside the model, see `normalization_layer`).
        labels: Integer class labels `(n,)` (or one-hot rows).
        batch_size: Positive integer, at most the samples of one epoch.
            Defaults to `32`.
        shuffle: Boolean, reshuffle every epoch. Must be `True` with
            `sampling`, which is random. Defaults to `True`.
        sampling: `None`, `"oversample"`, `"undersample"` or `"balanced"`.
            Defaults to `None`.
        seed: Non-negative integer or `None`. Defaults to `None`.
        cache: Boolean, cache the decoded samples in memory. Defaults to
            `True`.
        prefetch: Boolean, `prefetch(tf.data.AUTOTUNE)`. Defaults to `True`.
        repeat: Boolean, repeat forever (then pass `steps_per_epoch` to
            `fit`). Defaults to `False`.
        drop_remainder: Boolean, drop the last partial batch. Defaults to
            `False`.
        one_hot: Boolean, yield float32 one-hot labels (for
            `categorical_crossentropy`, e.g. with label smoothing) instead of
            int64 class indices. Defaults to `False`.
        num_classes: Number of classes for `one_hot`. Defaults to `None`
            (largest label + 1).
        dtype: Dtype the images are cast to, per batch. Defaults to
            `"float32"`.

    Returns:
        A `tf.data.Dataset` of `(images, labels)` batches.
    """
    import tensorflow as tf

    images = _validation.check_images("images", images)
    labels = _validation.check_labels("labels", labels,
                                      num_samples=len(images),
                                      samples_name="images")
    sampling = _check_sampling(sampling)
    seed = _check_seed(seed)
    shuffle = _validation.check_bool("shuffle", shuffle)
    cache = _validation.check_bool("cache", cache)
    prefetch = _validation.check_bool("prefetch", prefetch)
    repeat = _validation.check_bool("repeat", repeat)
    drop_remainder = _validation.check_bool("drop_remainder", drop_remainder)
    one_hot = _validation.check_bool("one_hot", one_hot)
    if num_classes is not None:
        num_classes = _validation.check_int(
            "num_classes", num_classes, int(labels.max()) + 1)
    try:
        dtype = tf.as_dtype(dtype)
    except TypeError:
        _validation.fail("dtype", "a TensorFlow dtype name", dtype)
    if sampling is not None and not shuffle:
        raise _validation.ArgumentError(
            "Argument `shuffle` must be True when `sampling` is set (sampling "
            f"is random). Received: shuffle=False, sampling={sampling!r}")
    epoch = samples_per_epoch(labels, sampling)
    batch_size = _validation.check_batch_size(batch_size, epoch)

    if sampling is None:
        dataset = tf.data.Dataset.from_tensor_slices((images, labels))
        if cache:
            dataset = dataset.cache()
        if shuffle:
            dataset = dataset.shuffle(len(labels), seed=seed,
                                      reshuffle_each_iteration=True)
    else:
        streams = []
        for c in np.unique(labels):
            index = np.flatnonzero(labels == c)
            stream = tf.data.Dataset.from_tensor_slices(
                (images[index], labels[index]))
            if cache:
                stream = stream.cache()
            streams.append(stream)
        dataset = sample_classes(streams, np.bincount(labels)[np.unique(
            labels)], sampling, seed)

    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    depth = num_classes if num_classes is not None else int(labels.max()) + 1

    def _convert(x, y):
        x = tf.cast(x, dtype)
        if one_hot:
            y = tf.one_hot(y, depth, dtype=tf.float32)
        return x, y

    dataset = dataset.map(_convert, num_parallel_calls=tf.data.AUTOTUNE)
    if repeat:
        dataset = dataset.repeat()
    if prefetch:
        dataset = dataset.prefetch(tf.data.AUTOTUNE)
    return without_autotune_stall(dataset)
