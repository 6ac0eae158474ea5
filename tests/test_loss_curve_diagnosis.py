import math

import numpy as np
import pytest
import keras
from sklearn.datasets import load_digits

from kerascnn.callbacks import Diagnosis, LossCurveDiagnosis, diagnose_history
from kerascnn.callbacks.loss_curve_diagnosis import (
    ADVICE,
    CODES,
    DEFAULT_THRESHOLDS,
)

EPOCHS = np.arange(12)
CLEAN = 2.1 * np.exp(-0.8 * EPOCHS) + 0.2


def _clean():
    return {
        "loss": CLEAN.tolist(),
        "val_loss": (CLEAN + 0.05).tolist(),
        "accuracy": np.linspace(0.5, 0.97, 12).tolist(),
        "val_accuracy": np.linspace(0.45, 0.95, 12).tolist(),
    }


CASES = {
    "healthy": (_clean(), None),
    "diverging_nan": ({"loss": [2.3, 1.8, 1.5, math.nan],
                       "val_loss": [2.3, 1.9, 1.6, math.nan]}, None),
    "diverging_explosive": ({"loss": [2.3, 1.5, 1.2, 3.5, 12.0]}, None),
    "diverging_rising": ({"loss": [1.0, 1.05, 1.1, 1.15, 1.2]}, None),
    "diverging_above_chance": ({"loss": [9.0, 8.5, 8.0]}, 10),
    "not_learning": ({"loss": [2.303, 2.302, 2.301, 2.302, 2.300],
                      "val_loss": [2.304, 2.303, 2.303, 2.304, 2.302]}, 10),
    "not_learning_chance": ({"loss": [2.6, 2.4, 2.31, 2.305, 2.30]}, 10),
    "slow_start": ({"loss": [2.3, 2.29, 2.29, 2.28, 1.5, 0.8, 0.5, 0.4, 0.4,
                             0.4],
                    "val_loss": [2.3, 2.3, 2.29, 2.28, 1.52, 0.83, 0.52, 0.43,
                                 0.42, 0.42]}, 10),
    "overfitting": ({"loss": [2.0, 1.2, 0.8, 0.5, 0.35, 0.25, 0.18, 0.12],
                     "val_loss": [2.1, 1.2, 0.8, 0.7, 0.75, 0.85, 1.0, 1.2]},
                    10),
    "overfitting_gap": ({"loss": [2.0, 1.0, 0.5, 0.3, 0.2, 0.2],
                         "val_loss": [2.1, 1.3, 1.0, 0.9, 0.9, 0.9]}, 10),
    "underfitting": ({"loss": [2.3, 1.9, 1.8, 1.75, 1.74, 1.74],
                      "val_loss": [2.31, 1.92, 1.82, 1.77, 1.76, 1.76]}, 10),
    "underfitting_accuracy": ({"loss": [1.2, 0.9, 0.8, 0.79, 0.79],
                               "accuracy": [0.4, 0.6, 0.65, 0.66, 0.66]},
                              None),
    "not_converged": ({"loss": [2.3, 1.6, 1.2, 0.9, 0.7, 0.55],
                       "val_loss": [2.35, 1.65, 1.25, 0.95, 0.75, 0.6]}, 10),
    "noisy_validation": ({
        "loss": CLEAN.tolist(),
        "val_loss": (CLEAN + 0.03 + 0.08 * (-1.0) ** (EPOCHS + 1)).tolist(),
    }, None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_synthetic_case_gets_its_code(case):
    history, num_classes = CASES[case]
    diagnosis = diagnose_history(history, num_classes=num_classes)
    code = case.split("_")[0] if case.startswith(
        ("diverging", "overfitting")) else case.replace("_chance", "")
    if case == "underfitting_accuracy":
        code = "underfitting"
    assert diagnosis.codes == [code], diagnosis.summary()
    message = diagnosis.findings[0].message
    assert message.endswith(ADVICE[code])
    assert isinstance(diagnosis, Diagnosis)


def test_messages_carry_the_numbers():
    diagnosis = diagnose_history(CASES["overfitting"][0])
    assert "rose 47% from its minimum 0.75 (epoch 4, 3-epoch average)" in diagnosis.findings[0][1]
    diagnosis = diagnose_history(CASES["diverging_nan"][0])
    assert diagnosis.findings[0].message.startswith(
        "`loss` became nan at epoch 4.")
    diagnosis = diagnose_history(CASES["slow_start"][0], num_classes=10)
    assert "flat for the first 4 epochs" in diagnosis.summary()


def test_thresholds_are_configurable():
    history = CASES["overfitting"][0]
    assert diagnose_history(history).codes == ["overfitting"]
    # Val ends 71% above its minimum: tolerated with overfit_rise=1.0 (the
    # final gap 1.08 is still > 0.3 x 1.2 though, so raise gap_ratio too).
    relaxed = diagnose_history(history, overfit_rise=1.0, gap_ratio=1.0)
    assert "overfitting" not in relaxed.codes
    assert relaxed.thresholds["overfit_rise"] == 1.0
    assert relaxed.thresholds["noise_fraction"] == DEFAULT_THRESHOLDS[
        "noise_fraction"]


def test_accepts_keras_history_and_serializes(tmp_path):
    history = keras.callbacks.History()
    history.history = _clean()
    diagnosis = diagnose_history(history)
    assert diagnosis.healthy
    data = diagnosis.to_dict()
    assert data["codes"] == ["healthy"]
    assert data["findings"][0]["advice"] == ADVICE["healthy"]
    assert data["history"]["loss"][0] == pytest.approx(2.3)
    assert "final val_loss 0.2503" in diagnosis.summary()
    path = diagnosis.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert path == tmp_path / "curves.png"


@pytest.mark.parametrize(
    "history,kwargs,match",
    [
        ([1, 2], {}, "Received: history='list'"),
        ({"val_loss": [1.0]}, {}, "Received: history=\"keys"),
        ({"loss": []}, {}, "Received: history=.an empty loss list"),
        ({"loss": [1.0, 0.5], "val_loss": [1.0]}, {},
         "Received: 2 'loss' values and 1 'val_loss' values"),
        ({"loss": [1.0, 0.5]}, {"num_classes": 1}, "Received: num_classes=1"),
        ({"loss": [1.0, 0.5]}, {"overfit_rise": -1},
         "Received: overfit_rise=-1"),
        ({"loss": [1.0, 0.5]}, {"bogus": 3}, "Received: bogus=3"),
    ],
)
def test_rejects_bad_input(history, kwargs, match):
    with pytest.raises(ValueError, match=match):
        diagnose_history(history, **kwargs)


def test_codes_list_is_complete():
    assert set(CODES) == set(ADVICE)


def _digits_model(learning_rate):
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype("float32")
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(32, activation="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(
        hidden))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
                  loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model, x[:600], y[:600]


def test_callback_on_real_training(tmp_path, capsys):
    model, x, y = _digits_model(0.1)
    callback = LossCurveDiagnosis(plot_path=tmp_path / "d.png",
                                  num_classes=10)
    model.fit(x, y, validation_split=0.25, batch_size=32, epochs=4, verbose=0,
              callbacks=[callback])
    diagnosis = callback.diagnosis
    assert len(diagnosis.history["loss"]) == 4
    assert set(diagnosis.history) >= {"loss", "val_loss", "accuracy",
                                      "val_accuracy"}
    # Four epochs of SGD at 0.1: still learning fast, not diverging.
    assert "not_converged" in diagnosis.codes
    assert "diverging" not in diagnosis.codes
    assert "Loss-curve diagnosis (4 epochs" in capsys.readouterr().out
    assert (tmp_path / "d.png").stat().st_size > 1000


def test_callback_flags_a_learning_rate_far_too_high():
    model, x, y = _digits_model(200.0)
    callback = LossCurveDiagnosis(verbose=0, num_classes=10)
    model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[callback])
    # Keras clips the probabilities, so no NaN: the loss explodes instead.
    assert callback.diagnosis.codes == ["diverging"]
    assert "the loss of guessing uniformly" in callback.diagnosis.summary()
    callback.on_train_begin()
    assert callback.diagnosis is None


def test_callback_rejects_bad_arguments():
    with pytest.raises(ValueError, match="Received: verbose=3"):
        LossCurveDiagnosis(verbose=3)
    with pytest.raises(ValueError, match="Received: gap_ratio=0"):
        LossCurveDiagnosis(gap_ratio=0)


def test_small_absolute_gap_of_a_well_fitted_model_is_not_overfitting():
    # The quickstart's real curves (mnist5k, 20 epochs): the validation loss
    # starts high (BatchNorm statistics still settling) and ends 0.03 above a
    # training loss of 0.06 - a relative gap of 30% but no overfitting.
    loss = [1.55, 0.55, 0.28, 0.21, 0.15, 0.13, 0.11, 0.10, 0.09, 0.088,
            0.08, 0.075, 0.07, 0.068, 0.065, 0.063, 0.061, 0.06, 0.059, 0.058]
    val = [4.0, 5.3, 4.27, 1.6, 0.54, 0.41, 0.27, 0.11, 0.10, 0.097, 0.095,
           0.09, 0.095, 0.088, 0.087, 0.086, 0.09, 0.084, 0.086, 0.085]
    diagnosis = diagnose_history({"loss": loss, "val_loss": val},
                                 num_classes=10)
    assert "overfitting" not in diagnosis.codes
    # The same relative gap at a meaningful size still is.
    big = diagnose_history({"loss": [x * 10 for x in loss],
                            "val_loss": [x * 10 for x in val]},
                           num_classes=10)
    assert "overfitting" in big.codes
