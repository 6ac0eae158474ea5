"""Test configuration shared by the whole suite.

The CPU is split into two logical devices before TensorFlow initialises, so
that `tf.distribute.MirroredStrategy` can be tested with two replicas on a
machine without GPUs. Every test starts from fixed seeds.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
try:
    tf.config.set_logical_device_configuration(
        _cpus[0],
        [tf.config.LogicalDeviceConfiguration(),
         tf.config.LogicalDeviceConfiguration()],
    )
except RuntimeError:  # TensorFlow was initialised before this file ran.
    pass

import keras  # noqa: E402

LOGICAL_CPUS = len(tf.config.list_logical_devices("CPU"))


@pytest.fixture(autouse=True)
def seeded():
    """Fixes Python, NumPy, TensorFlow and Keras seeds for every test."""
    keras.utils.set_random_seed(1234)
    keras.backend.clear_session()
    yield


@pytest.fixture
def two_cpu_strategy():
    """A MirroredStrategy over the two logical CPUs."""
    if LOGICAL_CPUS < 2:
        pytest.skip("TensorFlow initialised before the CPU could be split")
    # Two MirroredStrategy objects that train in one process collide on their
    # collective keys ("Shape mismatch in the collective instance 100",
    # tensorflow#62790); TensorFlow's own tests move the base per strategy.
    tf.distribute.MirroredStrategy._collective_key_base += 1000
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(scope="session")
def mnist5k():
    """The embedded MNIST subset as (images, labels), uint8 28x28x1."""
    from kerascnn import datasets

    return datasets.load_mnist5k()
