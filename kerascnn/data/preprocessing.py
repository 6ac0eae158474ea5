"""Input normalization computed from the training data only."""

import numpy as np

from kerascnn import _validation


def normalization_layer(x_train, name="input_normalization", batch_size=1024):
    """Returns a `keras.layers.Normalization` adapted per channel on `x_train`.

    The lecture rule: compute the mean over the training data, subtract it
    (zero-centering), then divide by the training standard deviation; use the
    same statistics for validation, test and serving. This is Keras's own
    `Normalization(axis=-1)` layer, adapted here after the data checks of
    `kerascnn._validation` (finite pixels, image shape), so it stores one
    mean and one variance per channel and is saved and exported with the
    model: a SavedModel built on it takes raw pixels (e.g. uint8 0..255).
    Pass only the training split, never validation or test data.

    Args:
        x_train: Training images `(n, height, width[, channels])`.
        name: Layer name. Defaults to `"input_normalization"`.
        batch_size: Batch size used while adapting (limits memory).
            Defaults to `1024`.

    Returns:
        An adapted `keras.layers.Normalization` layer.
    """
    import keras

    x_train = _validation.check_images("x_train", x_train)
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    name = _validation.check_string("name", name)
    layer = keras.layers.Normalization(axis=-1, name=name)
    # Adapting on float32 keeps the statistics exact for uint8 input.
    layer.adapt(_float_batches(x_train, batch_size))
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
