import math

import numpy as np
import pytest
import tensorflow as tf
import keras

from kerascnn.utils import estimate_memory
from kerascnn.utils.memory import OPTIMIZER_SLOTS, MemoryEstimate


def _cnn():
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D()(x)
    block = keras.Sequential([keras.Input((8, 8, 8)),
                              keras.layers.Conv2D(4, 3),
                              keras.layers.ReLU()], name="block")
    x = block(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dropout(0.5)(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    return keras.Model(inputs, outputs)


def _measured_activation_bytes(model, batch):
    """Runs the model and sums the real output tensor of every layer."""
    tensors = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Sequential):
            inner = keras.Model(layer.inputs,
                                [sub.output for sub in layer.layers])
            tensors.append((inner, layer.input))
        else:
            tensors.append((None, layer.output))
    outer = keras.Model(model.inputs[0], [t for _, t in tensors])
    values = outer(batch, training=True)
    total = 0
    for (inner, _), value in zip(tensors, values):
        if inner is None:
            total += value.numpy().nbytes
        else:  # value is the nested model's input: run its layers on it
            total += sum(v.numpy().nbytes for v in inner(value))
    return total


def test_parts_match_tensors_measured_from_tensorflow():
    model = _cnn()
    batch = np.random.default_rng(0).normal(size=(4, 16, 16, 3)).astype(
        "float32")
    estimate = estimate_memory(model, batch_size=4, optimizer="adam")
    assert isinstance(estimate, MemoryEstimate)
    # Parameters: exactly count_params() float32 values.
    assert estimate.parameters == model.count_params() * 4
    # Activations: exactly the bytes of every layer output TF computes
    # (nested Sequential included), tolerance 0.
    measured = _measured_activation_bytes(model, batch)
    assert estimate.activations == measured
    # Hand count per sample: conv 16*16*8, bn same, pool 8*8*8, conv 6*6*4,
    # relu same, flatten 144, dropout 144, dense 10.
    per_sample = 2048 + 2048 + 512 + 144 + 144 + 144 + 144 + 10
    assert estimate.activation_elements == per_sample
    assert estimate.activations == per_sample * 4 * 4
    # Gradients: the tensors GradientTape returns.
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model(batch, training=True))
    grads = tape.gradient(loss, model.trainable_variables)
    assert estimate.gradients == sum(g.numpy().nbytes for g in grads)
    # Optimizer slots: the variables Adam really builds (scalars excluded).
    optimizer = keras.optimizers.Adam()
    optimizer.build(model.trainable_variables)
    slot_bytes = sum(v.numpy().nbytes for v in optimizer.variables
                     if len(v.shape) > 0)
    assert estimate.optimizer_slots == slot_bytes
    assert estimate.inputs == batch.nbytes
    assert estimate.total == (estimate.parameters + estimate.gradients
                              + estimate.optimizer_slots
                              + estimate.activations + estimate.inputs)


@pytest.mark.parametrize(
    "optimizer",
    [
        keras.optimizers.SGD(),
        keras.optimizers.SGD(momentum=0.9, nesterov=True),
        keras.optimizers.RMSprop(),
        keras.optimizers.RMSprop(momentum=0.9, centered=True),
        keras.optimizers.Adam(amsgrad=True),
        keras.optimizers.AdamW(),
        keras.optimizers.Nadam(),
        keras.optimizers.Adamax(),
        keras.optimizers.Adagrad(),
        keras.optimizers.Adadelta(),
        keras.optimizers.Lion(),
        keras.optimizers.Adam(use_ema=True),
    ],
    ids=lambda o: type(o).__name__,
)
def test_optimizer_instance_slots_match_built_variables(optimizer):
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    estimate = estimate_memory(model, 2, optimizer=optimizer)
    optimizer.build(model.trainable_variables)
    built = sum(math.prod(v.shape) for v in optimizer.variables
                if len(v.shape) > 0)
    assert estimate.optimizer_slots == built * 4


@pytest.mark.parametrize("name,slots", [("sgd", 0), ("momentum", 1),
                                        ("adam", 2), ("rmsprop", 1),
                                        ("amsgrad", 3)])
def test_optimizer_names(name, slots):
    assert OPTIMIZER_SLOTS[name] == slots
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    estimate = estimate_memory(model, 2, optimizer=name.upper())
    assert estimate.optimizer_slots == slots * 18 * 4


def test_sequential_half_precision_and_summary():
    model = keras.Sequential([keras.Input((28, 28, 1)),
                              keras.layers.Conv2D(16, 3, padding="same"),
                              keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    estimate = estimate_memory(model, batch_size=32, optimizer="sgd",
                               dtype_bytes=2)
    params = 16 * 9 + 16 + 28 * 28 * 16 * 10 + 10
    assert estimate.parameters == params * 2
    assert estimate.optimizer_slots == 0
    assert estimate.activations == (12544 + 12544 + 10) * 32 * 2
    assert estimate.inputs == 784 * 32 * 2
    text = estimate.summary()
    assert "Estimated training memory: 2." in text and "MiB" in text
    assert "Not counted" in text
    assert estimate.to_dict()["total"] == estimate.total
    assert estimate.largest_layers[0][1] == 12544 * 64


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"batch_size": 0}, "Received: batch_size=0"),
        ({"batch_size": 2.0}, "Received: batch_size=2.0"),
        ({"optimizer": "adamm"}, "Received: optimizer='adamm'"),
        ({"optimizer": keras.optimizers.Adafactor()},
         "Received: optimizer=<"),
        ({"dtype_bytes": 0}, "Received: dtype_bytes=0"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    inputs = keras.Input((5,))
    model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
    kwargs = {"batch_size": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        estimate_memory(model, **kwargs)


def test_rejects_unknown_shapes_and_unbuilt_models():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3)(inputs))
    with pytest.raises(ValueError, match="Received: layer 'conv2d"):
        estimate_memory(model, 2)
    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="Received: model="):
        estimate_memory(unbuilt, 2)
    with pytest.raises(ValueError, match="Received: model='str'"):
        estimate_memory("model", 2)
