"""Helpers several test files share (imported as `_support`: pytest puts
the tests folder on `sys.path`)."""

import socket

import keras
import numpy as np


def free_ports(count):
    """`count` free TCP ports on 127.0.0.1 (for loopback clusters)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tiny_source(shape=(16, 16, 1), classes=3, batchnorm=False, seed=None):
    """A two-block conv source model (untrained) to transfer from."""
    if seed is not None:
        keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    if batchnorm:  # its statistics stand for the source data
        x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def band_images(n_per_class, shape=(16, 16, 1), classes=3, seed=0):
    """Noise images whose class is a bright horizontal band at its rows."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), n_per_class)
    x = rng.uniform(0, 60, (len(y),) + shape).astype("float32")
    for c in range(classes):
        x[y == c, c * 5:c * 5 + 5] += 150
    return x, y
