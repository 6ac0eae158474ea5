import numpy as np
import pytest
import tensorflow as tf
import keras
from sklearn.datasets import load_digits

from kerascnn.callbacks import (
    LearningRateFinder,
    LRFinderResult,
    find_learning_rate,
)
from kerascnn.callbacks.lr_finder import suggest_bounds
from kerascnn.schedules import TriangularCyclicalLearningRate


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype("float32"), y.astype("int64")


def _mlp(optimizer, dropout=0.1):
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    if dropout:
        hidden = keras.layers.Dropout(dropout)(hidden)
    outputs = keras.layers.Dense(10, activation="softmax")(hidden)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy")
    return model


def _state(model):
    return [v.numpy().copy() for v in
            list(model.variables) + list(model.optimizer.variables)]


def test_weights_and_optimizer_state_restored_exactly(digits):
    x, y = digits
    model = _mlp(keras.optimizers.Adam(learning_rate=1e-3))
    model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)
    before = _state(model)
    assert int(model.optimizer.iterations) == 2
    result = find_learning_rate(model, (x, y), num_steps=30, min_lr=1e-4,
                                max_lr=1.0)
    assert len(result.losses) == 30
    after = _state(model)
    assert len(after) == len(before)
    for got, want in zip(after, before):
        np.testing.assert_array_equal(got, want)
    assert int(model.optimizer.iterations) == 2
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-3)
    assert not model.stop_training


def test_unbuilt_optimizer_is_left_fresh(digits):
    x, y = digits
    model = _mlp(keras.optimizers.SGD(learning_rate=0.05, momentum=0.9))
    weights = [w.copy() for w in model.get_weights()]
    find_learning_rate(model, (x, y), num_steps=10)
    for got, want in zip(model.get_weights(), weights):
        np.testing.assert_array_equal(got, want)
    assert int(model.optimizer.iterations) == 0
    for variable in model.optimizer.variables[2:]:  # momentum slots
        np.testing.assert_array_equal(variable.numpy(), 0.0)


def test_learning_rates_rise_exponentially_and_losses_are_per_batch(digits):
    x, y = digits
    model = _mlp(keras.optimizers.SGD(learning_rate=0.01), dropout=0.0)
    initial = [w.copy() for w in model.get_weights()]
    finder = LearningRateFinder(min_lr=1e-3, max_lr=1.0, num_steps=10,
                                beta=0.5)
    model.fit(x[:320], y[:320], batch_size=32, epochs=3, verbose=0,
              shuffle=False, callbacks=[finder])
    result = finder.result
    np.testing.assert_allclose(result.learning_rates,
                               1e-3 * 1000.0 ** (np.arange(10) / 9),
                               rtol=1e-12)
    assert result.stop_reason == "reached max_lr=1"
    # Bias-corrected EMA: s_t = (sum beta^(t-i) (1-beta) l_i) / (1-beta^(t+1)).
    losses = result.losses
    average, want = 0.0, []
    for step, loss in enumerate(losses):
        average = 0.5 * average + 0.5 * loss
        want.append(average / (1 - 0.5 ** (step + 1)))
    np.testing.assert_allclose(result.smoothed_losses, want, rtol=1e-12)
    # Each loss is that batch's, not Keras' running mean: replay one SGD
    # step at the first learning rate, then batch 1's loss must match.
    assert losses[0] == pytest.approx(
        model.evaluate(x[:32], y[:32], batch_size=32, verbose=0), rel=1e-5)
    replay = _mlp(keras.optimizers.SGD(learning_rate=1e-3), dropout=0.0)
    replay.set_weights(initial)
    replay.train_on_batch(x[:32], y[:32])
    second = replay.evaluate(x[32:64], y[32:64], batch_size=32, verbose=0)
    assert losses[1] == pytest.approx(second, rel=1e-5)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.01)


def test_suggestion_sensible_on_digits(digits, tmp_path):
    x, y = digits
    model = _mlp(keras.optimizers.SGD(learning_rate=0.01))
    result = find_learning_rate(model, (x, y), min_lr=1e-5, max_lr=10.0,
                                num_steps=100, plot_path=tmp_path / "lr.png")
    assert isinstance(result, LRFinderResult)
    low, high = result.suggested
    # Plain SGD on [0, 1]-scaled digits learns with rates of ~0.01 to ~1.
    assert 1e-3 <= low < high <= 5.0
    smoothed = result.smoothed_losses
    at = lambda lr: smoothed[np.searchsorted(result.learning_rates, lr)]
    assert at(high) < at(low) < smoothed[10]
    assert (tmp_path / "lr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "initial_learning_rate=" in result.summary()
    # The suggestion plugs into the cyclical schedules.
    TriangularCyclicalLearningRate(low, high, step_size=100)


def test_same_seed_same_answer_other_seed_other_batches(digits):
    x, y = digits
    model = _mlp(keras.optimizers.SGD(learning_rate=0.01))
    first = find_learning_rate(model, (x, y), num_steps=40, min_lr=1e-3,
                               seed=7)
    second = find_learning_rate(model, (x, y), num_steps=40, min_lr=1e-3,
                                seed=7)
    np.testing.assert_array_equal(first.losses, second.losses)
    assert first.suggested == second.suggested
    third = find_learning_rate(model, (x, y), num_steps=40, min_lr=1e-3,
                               seed=8)
    assert not np.array_equal(first.losses, third.losses)


def test_stops_on_divergence():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x @ np.ones((4, 1), "float32")).astype("float32")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01),
                  loss="mse")
    result = find_learning_rate(model, (x, y), min_lr=1e-3, max_lr=1e3,
                                num_steps=100, batch_size=8)
    assert len(result.losses) < 100
    assert ("diverged" in result.stop_reason
            or "became" in result.stop_reason)
    # The stop came at a learning rate far above what SGD tolerates here.
    assert result.learning_rates[-1] > 0.3
    assert np.all(np.isfinite(model.get_weights()[0]))


def test_dataset_input(digits):
    x, y = digits
    dataset = tf.data.Dataset.from_tensor_slices((x[:256], y[:256])).batch(32)
    model = _mlp(keras.optimizers.SGD(learning_rate=0.01))
    result = find_learning_rate(model, dataset, num_steps=20, min_lr=1e-3,
                                max_lr=1.0)
    assert len(result.learning_rates) == 20  # 8 batches, repeated
    assert np.all(np.isfinite(result.losses))


def test_suggest_bounds_on_a_known_curve():
    log_lr = np.round(np.arange(-5.0, 1.01, 0.1), 10)
    fraction = 1 / (1 + np.exp(-4 * (log_lr + 2)))
    loss = 2.0 - 1.5 * fraction + np.where(log_lr > -0.5,
                                           5 * (log_lr + 0.5) ** 2, 0)
    low, high = suggest_bounds(10 ** log_lr, loss)
    # With f = sigmoid(4 (t + 2)) and t = log10(lr), the slope is
    # proportional to f (1 - f), steepest at t = -2; 10% of it: f = 0.0257,
    # t = -2 - 3.635 / 4 = -2.909, so the descent starts at grid point -2.9.
    # 90% of the fall from f(-2.9) = 0.0266 to f(-0.5) = 0.9975: f = 0.9004,
    # t = -2 + ln(0.9004 / 0.0996) / 4 = -1.450, first grid point -1.4.
    assert np.log10(low) == pytest.approx(-2.9)
    assert np.log10(high) == pytest.approx(-1.4)
    assert suggest_bounds([1e-3, 1e-2, 1e-1, 1.0], [1.0] * 4) is None
    assert suggest_bounds([1e-3, 1e-2], [1.0, 0.5]) is None


def test_rejects_schedule_optimizer_and_uncompiled_model(digits):
    x, y = digits
    model = _mlp(keras.optimizers.SGD(
        learning_rate=TriangularCyclicalLearningRate(1e-3, 1e-1, 10)))
    with pytest.raises(ValueError, match="Received: model with optimizer learning_rate=Triangular"):
        find_learning_rate(model, (x, y))
    inputs = keras.Input((64,))
    raw = keras.Model(inputs, keras.layers.Dense(10)(inputs))
    with pytest.raises(ValueError, match="Received: model="):
        find_learning_rate(raw, (x, y))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"min_lr": 0.0}, "Received: min_lr=0.0"),
        ({"min_lr": 1.0, "max_lr": 0.1}, "Received: min_lr=1.0, max_lr=0.1"),
        ({"num_steps": 2}, "Received: num_steps=2"),
        ({"beta": 1.0}, "Received: beta=1.0"),
        ({"divergence_factor": 1.0}, "Received: divergence_factor=1.0"),
        ({"batch_size": 0}, "Received: batch_size=0"),
        ({"batch_size": 5000}, "Received: batch_size=5000"),
        ({"data": [1, 2, 3]}, "Received: data="),
        ({"data": (np.zeros((4, 64)), np.zeros(3))}, "Received: x of shape"),
        ({"plot_path": 3}, "Received: plot_path=3"),
    ],
)
def test_rejects_bad_arguments(digits, kwargs, match):
    model = _mlp(keras.optimizers.SGD(learning_rate=0.01))
    kwargs = {"data": digits, **kwargs}
    with pytest.raises(ValueError, match=match):
        find_learning_rate(model, **kwargs)
    assert int(model.optimizer.iterations) == 0


def test_rejects_steps_per_execution(digits):
    inputs = keras.Input((64,))
    model = keras.Model(inputs, keras.layers.Dense(10)(inputs))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                  loss="sparse_categorical_crossentropy",
                  steps_per_execution=4)
    with pytest.raises(ValueError, match="Received: model='steps_per_exec"):
        find_learning_rate(model, digits)
