import math

import numpy as np
import pytest
import keras

from kerascnn.callbacks import EarlyStopping


def _model():
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(1)(inputs))


def _run(callback, val_losses, train_losses=None, model=None):
    """Feeds scripted epoch logs; epoch e's kernel is filled with e."""
    model = model or _model()
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    epochs = 0
    for epoch, value in enumerate(val_losses):
        kernel = np.full((3, 1), float(epoch), "float32")
        model.set_weights([kernel, np.zeros(1, "float32")])
        loss = 1.0 if train_losses is None else train_losses[epoch]
        callback.on_epoch_end(epoch, {"loss": loss, "val_loss": value})
        epochs += 1
        if model.stop_training:
            break
    callback.on_train_end()
    return model, epochs


def test_is_a_keras_early_stopping_with_keras_defaults():
    # Same name as Keras' class, so the same defaults: no trap when both
    # are imported (kerascnn's workflows pass restore_best_weights=True).
    stopper = EarlyStopping()
    keras_stopper = keras.callbacks.EarlyStopping()
    assert isinstance(stopper, keras.callbacks.EarlyStopping)
    for name in ("monitor", "patience", "min_delta", "verbose", "baseline",
                 "restore_best_weights", "start_from_epoch"):
        assert getattr(stopper, name) == getattr(keras_stopper, name), name
    assert stopper.restore_best_weights is False
    assert stopper.stop_reason is None and stopper.best_epoch is None


def _restoring(**kwargs):
    return EarlyStopping(restore_best_weights=True, **kwargs)


def test_patience_stop_restores_best_and_explains():
    stopper = _restoring(patience=2)
    model, epochs = _run(stopper, [1.0, 0.5, 0.6, 0.7, 0.4, 0.3])
    assert epochs == 4  # epoch 1 best, epochs 2 and 3 worse: stop at 3.
    assert stopper.best_epoch == 1
    assert stopper.stopped_epoch == 3
    assert "did not improve" in stopper.stop_reason
    assert "best 0.5 at epoch 2" in stopper.stop_reason
    np.testing.assert_array_equal(model.get_weights()[0], 1.0)


def test_min_delta_counts_small_gains_as_no_improvement():
    stopper = _restoring(patience=1, min_delta=0.1)
    _, epochs = _run(stopper, [1.0, 0.95, 0.93, 0.5])
    assert epochs == 2 and stopper.best_epoch == 0


def test_completes_without_stopping():
    stopper = _restoring(patience=5)
    model, epochs = _run(stopper, [3.0, 2.0, 1.0])
    assert epochs == 3
    assert stopper.stop_reason == "completed all epochs without stopping early"
    assert stopper.best_epoch == 2
    np.testing.assert_array_equal(model.get_weights()[0], 2.0)


@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_monitored_value_stops_immediately(bad):
    stopper = _restoring(patience=10)
    model, epochs = _run(stopper, [1.0, 0.8, bad, 0.1])
    assert epochs == 3
    assert stopper.stopped_epoch == 2
    assert f"`val_loss` became {bad}" in stopper.stop_reason
    assert stopper.best_epoch == 1
    np.testing.assert_array_equal(model.get_weights()[0], 1.0)


def test_non_finite_training_loss_stops_even_if_not_monitored():
    stopper = _restoring(patience=10)
    _, epochs = _run(stopper, [1.0, 0.9, 0.8], train_losses=[1.0, math.nan, 1])
    assert epochs == 2 and "`loss` became nan" in stopper.stop_reason


def test_nan_batch_before_first_epoch_restores_initial_weights():
    model = _model()
    before = [w.copy() for w in model.get_weights()]
    stopper = _restoring()
    stopper.set_model(model)
    model.stop_training = False
    stopper.on_train_begin()
    stopper.on_train_batch_end(0, {"loss": 0.5})
    assert not model.stop_training
    model.set_weights([np.full((3, 1), np.nan, "float32"),
                       np.zeros(1, "float32")])
    stopper.on_train_batch_end(1, {"loss": np.float32("nan")})
    assert model.stop_training
    assert "batch 1 of epoch 1" in stopper.stop_reason
    stopper.on_epoch_end(0, {"loss": math.nan, "val_loss": math.nan})
    stopper.on_train_end()
    for got, want in zip(model.get_weights(), before):
        np.testing.assert_array_equal(got, want)
    assert stopper.best_epoch is None


def test_divergence_threshold():
    stopper = _restoring(patience=10, divergence_threshold=2.0)
    model, epochs = _run(stopper, [1.0, 0.4, 0.7, 0.81, 0.2])
    assert epochs == 4
    assert "diverged: 0.81 at epoch 4" in stopper.stop_reason
    assert "2.0 x the best 0.4 (epoch 2)" in stopper.stop_reason
    np.testing.assert_array_equal(model.get_weights()[0], 1.0)
    # Without the threshold the same curve keeps going.
    stopper = _restoring(patience=10)
    _, epochs = _run(stopper, [1.0, 0.4, 0.7, 0.81, 0.2])
    assert epochs == 5


def test_divergence_threshold_rejected_for_maximized_metric():
    stopper = _restoring(monitor="val_accuracy", mode="auto",
                            divergence_threshold=2.0)
    model = _model()
    model.compile(optimizer="sgd", loss="mse", metrics=["accuracy"])
    model.evaluate(np.ones((2, 3)), np.ones((2, 1)), verbose=0)  # builds
    stopper.set_model(model)
    stopper.on_train_begin()
    with pytest.raises(ValueError, match="Received: divergence_threshold=2.0"):
        stopper.on_epoch_end(0, {"val_accuracy": 0.5, "loss": 1.0})


def test_state_is_reset_between_fits():
    stopper = _restoring(patience=0)
    _run(stopper, [1.0, 2.0])
    assert stopper.best_epoch == 0
    _run(stopper, [5.0, 4.0, 3.0])
    assert stopper.best_epoch == 2
    assert stopper.stop_reason == "completed all epochs without stopping early"


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"patience": -1}, "Received: patience=-1"),
        ({"patience": 1.5}, "Received: patience=1.5"),
        ({"mode": "maximum"}, "Received: mode='maximum'"),
        ({"min_delta": -0.1}, "Received: min_delta=-0.1"),
        ({"restore_best_weights": 1}, "Received: restore_best_weights=1"),
        ({"divergence_threshold": 1.0}, "Received: divergence_threshold=1.0"),
        ({"divergence_threshold": 3.0, "mode": "max"},
         "Received: divergence_threshold=3.0"),
        ({"monitor": ""}, "Received: monitor=''"),
        ({"start_from_epoch": -2}, "Received: start_from_epoch=-2"),
    ],
)
def test_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        EarlyStopping(**kwargs)


def test_real_fit_stops_and_restores_best():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32")
    model = _model()
    # A learning rate far too high: the loss explodes within a few epochs.
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1.5),
                  loss="mse")
    stopper = _restoring(monitor="loss", patience=3,
                            divergence_threshold=10.0)
    history = model.fit(x, y, batch_size=8, epochs=30, verbose=0,
                        callbacks=[stopper])
    losses = history.history["loss"]
    assert len(losses) < 30
    assert "diverged" in stopper.stop_reason or "became" in stopper.stop_reason
    assert stopper.best_epoch == int(np.nanargmin(losses))
    restored = float(model.evaluate(x, y, verbose=0))
    assert np.isfinite(restored) and restored < losses[-1]
