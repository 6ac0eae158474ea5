"""Input normalization computed from the training data only."""

import numpy as np

from kerascnn import _validation


def normalization_layer(x_train, name="input_normalization", batch_size=1024,
                        max_images=None, seed=0):
    """Returns a `keras.layers.Normalization` adapted per channel on `x_train`.

    The lecture rule: compute the mean over the training data, subtract it
    (zero-centering), then divide by the training standard deviation; use the
    same statistics for validation, test and serving. This is Keras's own
    `Normalization(axis=-1)` layer, adapted here after the data checks of
    `kerascnn._validation` (finite pixels, image shape), so it stores one
    mean and one variance per channel and is saved and exported with the
    model: a SavedModel built on it takes raw pixels (e.g. uint8 0..255).
    Pass only the training split, never validation or test data.

    `x_train` may also be a training `ImageSource` (from
    `kerascnn.data.resolve_data`, e.g. a streamed folder): the statistics
    then come from a bounded, seeded sample of at most `max_images` images
    (2,048 by default), decoded batch by batch, so a large folder is never
    held in memory.

    Args:
        x_train: Training images `(n, height, width[, channels])`, or an
            `ImageSource`.
        name: Layer name. Defaults to `"input_normalization"`.
        batch_size: Batch size used while adapting (limits memory).
            Defaults to `1024`.
        max_images: `None` or a positive integer: adapt on a random sample
            of at most this many images. Defaults to `None` (every image of
            an array; 2,048 of an `ImageSource`).
        seed: Seed of that sample. Defaults to `0`.

    Returns:
        An adapted `keras.layers.Normalization` layer.
    """
    import keras

    from kerascnn.data.sources import ImageSource

    batch_size = _validation.check_positive_int("batch_size", batch_size)
    name = _validation.check_string("name", name)
    if max_images is not None:
        max_images = _validation.check_positive_int("max_images", max_images)
    seed = _validation.check_non_negative_int("seed", seed)
    if isinstance(x_train, ImageSource):
        batches = x_train.sample_dataset(max_images or 2048, seed=seed,
                                         batch_size=batch_size)
    else:
        x_train = _validation.check_images("x_train", x_train)
        if max_images is not None and len(x_train) > max_images:
            index = np.sort(np.random.default_rng(seed).choice(
                len(x_train), max_images, replace=False))
            x_train = x_train[index]
        # Adapting on float32 keeps the statistics exact for uint8 input.
        batches = _float_batches(x_train, batch_size)
    layer = keras.layers.Normalization(axis=-1, name=name)
    layer.adapt(batches)
    return layer


def _float_batches(x, batch_size):
    import tensorflow as tf

    return tf.data.Dataset.from_tensor_slices(x).batch(batch_size).map(
        lambda b: tf.cast(b, tf.float32))


def channel_statistics(x_train):
    """Per-channel mean and standard deviation of images, as numpy arrays.

    The numbers `normalization_layer` stores (it stores the variance), for
    reporting or for code outside Keras.
    """
    x_train = _validation.check_images("x_train", x_train)
    flat = x_train.reshape(-1, x_train.shape[-1]).astype(np.float64)
    return flat.mean(axis=0), flat.std(axis=0)
