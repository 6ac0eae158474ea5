import numpy as np
import pytest
import tensorflow as tf
import keras
from keras import ops

import kerascnn.schedules
from kerascnn import _compat
from kerascnn.schedules import (
    CyclicalLearningRate,
    ExponentialCyclicalLearningRate,
    Triangular2CyclicalLearningRate,
    TriangularCyclicalLearningRate,
)

LOW, HIGH, STEP = 1e-4, 1e-2, 5


def _expected(step, scale, scale_mode, low=LOW, high=HIGH, step_size=STEP):
    """Closed form of Smith 2017 in float64 NumPy."""
    step = np.asarray(step, np.float64)
    cycle = np.floor(1 + step / (2 * step_size))
    x = np.abs(step / step_size - 2 * cycle + 1)
    mode_step = cycle if scale_mode == "cycle" else step
    return low + (high - low) * np.maximum(0.0, 1 - x) * scale(mode_step)


POLICIES = [
    (TriangularCyclicalLearningRate, {}, lambda s: np.ones_like(s)),
    (Triangular2CyclicalLearningRate, {}, lambda s: 1 / 2.0 ** (s - 1)),
    (ExponentialCyclicalLearningRate, {"gamma": 0.9}, lambda s: 0.9**s),
]
# step 0, mid rise, peak (boundary), mid fall, trough (boundary), later cycles.
STEPS = [0, 1, 2, 5, 7, 10, 13, 15, 20, 33, 47, 100]


def test_all_is_pinned():
    assert kerascnn.schedules.__all__ == [
        "CyclicalLearningRate",
        "TriangularCyclicalLearningRate",
        "Triangular2CyclicalLearningRate",
        "ExponentialCyclicalLearningRate",
    ]


@pytest.mark.parametrize("cls,kwargs,scale", POLICIES)
@pytest.mark.parametrize("scale_mode", ["cycle", "iterations"])
@pytest.mark.parametrize(
    "as_step",
    [int, float, lambda s: tf.constant(s, tf.int64),
     lambda s: tf.constant(s, tf.int32), lambda s: np.int64(s)],
    ids=["int", "float", "int64", "int32", "np_int64"],
)
def test_matches_closed_form(cls, kwargs, scale, scale_mode, as_step):
    schedule = cls(LOW, HIGH, STEP, scale_mode=scale_mode, **kwargs)
    got = np.array([float(schedule(as_step(s))) for s in STEPS])
    want = _expected(STEPS, scale, scale_mode)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)


def test_known_values_triangular():
    schedule = TriangularCyclicalLearningRate(0.1, 1.1, 4)
    got = [float(schedule(s)) for s in [0, 2, 4, 6, 8, 12]]
    np.testing.assert_allclose(got, [0.1, 0.6, 1.1, 0.6, 0.1, 1.1], rtol=1e-6)
    # Triangular2 halves the peak each cycle: 1.1 -> 0.6 -> 0.35.
    schedule = Triangular2CyclicalLearningRate(0.1, 1.1, 4)
    got = [float(schedule(s)) for s in [4, 12, 20]]
    np.testing.assert_allclose(got, [1.1, 0.6, 0.35], rtol=1e-6)


def test_base_class_with_registered_scale_fn(tmp_path):
    @keras.saving.register_keras_serializable(package="kerascnn_test")
    def cosine_scale(step):
        return 0.5 * (1.0 + ops.cos(step / 10.0))

    schedule = CyclicalLearningRate(
        LOW, HIGH, STEP, scale_fn=cosine_scale, scale_mode="iterations"
    )
    want = _expected(STEPS, lambda s: 0.5 * (1 + np.cos(s / 10.0)), "iter")
    got = [float(schedule(tf.constant(s, tf.int64))) for s in STEPS]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
    clone = CyclicalLearningRate.from_config(schedule.get_config())
    assert clone.scale_fn is cosine_scale
    np.testing.assert_allclose(
        [float(clone(s)) for s in STEPS], got, rtol=1e-7
    )


def test_unregistered_scale_fn_is_returned_as_given(tmp_path):
    # tfa's get_config returns `scale_fn` itself; ours raised (issue 12).
    scale = lambda x: 0.5  # noqa: E731
    schedule = CyclicalLearningRate(LOW, HIGH, STEP, scale_fn=scale)
    assert float(schedule(STEP)) == pytest.approx(LOW + (HIGH - LOW) * 0.5)
    config = schedule.get_config()
    assert config["scale_fn"] is scale
    clone = CyclicalLearningRate.from_config(config)
    assert clone.scale_fn is scale
    assert float(clone(STEP)) == pytest.approx(float(schedule(STEP)))

    def local_scale(x):  # a local function: not registered, not importable
        return ops.ones_like(x) * 0.25

    local = CyclicalLearningRate(LOW, HIGH, STEP, scale_fn=local_scale)
    assert local.get_config()["scale_fn"] is local_scale
    # A lambda in a .keras file reloads when the user opts out of safe mode,
    # as Keras' own Lambda layer does.
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    with pytest.warns(UserWarning, match="lambda"):
        model.save(tmp_path / "m.keras")
    with pytest.raises(ValueError, match="lambda"):
        keras.saving.load_model(tmp_path / "m.keras")
    restored = keras.saving.load_model(tmp_path / "m.keras", safe_mode=False)
    lr = _compat.learning_rate_object(restored.optimizer)  # the schedule
    assert isinstance(lr, CyclicalLearningRate)
    assert float(lr(STEP)) == pytest.approx(float(schedule(STEP)))


@pytest.mark.parametrize("cls,kwargs,scale", POLICIES)
@pytest.mark.parametrize("scale_mode", ["cycle", "iterations"])
def test_decreasing_triangle_matches_closed_form(cls, kwargs, scale,
                                                 scale_mode):
    # initial > maximal is accepted by tfa: the rate falls to `maximal` at
    # each half cycle and returns to `initial`.
    high, low = 1e-2, 1e-3
    schedule = cls(high, low, STEP, scale_mode=scale_mode, **kwargs)
    got = np.array([float(schedule(s)) for s in STEPS])
    want = _expected(STEPS, scale, scale_mode, low=high, high=low)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)
    assert got[0] == pytest.approx(high)
    if cls is TriangularCyclicalLearningRate:
        # Boundaries by hand: 1e-2 at 0, 1e-3 at STEP, 1e-2 at 2 * STEP.
        np.testing.assert_allclose(
            [float(schedule(s)) for s in (0, STEP, 2 * STEP, STEP // 2)],
            [high, low, high, high + (low - high) * (STEP // 2) / STEP],
            rtol=1e-6)
    clone = cls.from_config(schedule.get_config())
    assert float(clone(7)) == pytest.approx(float(schedule(7)))


@pytest.mark.parametrize("cls,kwargs,scale", POLICIES)
def test_config_round_trip(cls, kwargs, scale):
    schedule = cls(LOW, HIGH, STEP, name="my_clr", **kwargs)
    config = schedule.get_config()
    assert config["name"] == "my_clr"
    assert cls.from_config(config).get_config() == config
    serialized = keras.saving.serialize_keras_object(schedule)
    assert serialized["registered_name"] == f"kerascnn>{cls.__name__}"
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is cls
    assert float(restored(13)) == pytest.approx(float(schedule(13)))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"step_size": 0}, "Received: step_size=0"),
        ({"step_size": -2}, "Received: step_size=-2"),
        ({"initial_learning_rate": -1e-3}, "Received: initial_learning_rate="),
        ({"maximal_learning_rate": -1.0}, "Received: maximal_learning_rate="),
        ({"scale_mode": "epoch"}, "Received: scale_mode='epoch'"),
        ({"gamma": 0.0}, "Received: gamma=0.0"),
        ({"gamma": 1.5}, "Received: gamma=1.5"),
        ({"gamma": "0.9"}, "Received: gamma='0.9'"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    args = {"initial_learning_rate": LOW, "maximal_learning_rate": HIGH,
            "step_size": STEP, **kwargs}
    with pytest.raises(ValueError, match=match):
        ExponentialCyclicalLearningRate(**args)


def test_rejects_non_callable_scale_fn():
    with pytest.raises(ValueError, match="Received: scale_fn=2"):
        CyclicalLearningRate(LOW, HIGH, STEP, scale_fn=2)


def _tiny_model():
    inputs = keras.Input((4,))
    outputs = keras.layers.Dense(2, activation="softmax")(inputs)
    return keras.Model(inputs, outputs)


def test_trains_with_sgd_and_optimizer_follows_schedule(tmp_path):
    schedule = Triangular2CyclicalLearningRate(0.01, 0.1, step_size=2)
    model = _tiny_model()
    optimizer = keras.optimizers.SGD(learning_rate=schedule)
    model.compile(optimizer=optimizer,
                  loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64")
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            seen.append(float(self.model.optimizer.learning_rate))

    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0,
                        callbacks=[Record()])
    assert int(optimizer.iterations) == 12
    want = _expected(np.arange(12), lambda s: 1 / 2.0 ** (s - 1), "cycle",
                     low=0.01, high=0.1, step_size=2)
    np.testing.assert_allclose(seen, want, rtol=1e-5)
    assert np.all(np.isfinite(history.history["loss"]))

    path = tmp_path / "clr.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    lr = loaded.optimizer._learning_rate
    assert isinstance(lr, Triangular2CyclicalLearningRate)
    assert lr.get_config() == schedule.get_config()
    assert int(loaded.optimizer.iterations) == 12
    # Step 12 starts cycle 4: back at the lower bound.
    assert float(loaded.optimizer.learning_rate) == pytest.approx(0.01)
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-6)
    model.export(tmp_path / "exported", verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "exported"))
    served = reloaded.serve(x)
    np.testing.assert_allclose(served.numpy(), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-6)
