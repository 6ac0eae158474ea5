"""Tests for kerascnn.training.fit: end to end on tiny data, and every check
that must fire before a model is built or an epoch runs."""

import functools
import os

import keras
import numpy as np
import pytest

from kerascnn import training
from kerascnn.training import _schedules
from kerascnn.training import fit

TINY = {"depth": 1, "filters": 16, "convs_per_block": 1, "dense_units": 32,
        "head": "flatten", "dropout": 0.0}


def test_all():
    assert sorted(training.__all__) == [
        "BALANCE_OPTIONS", "FitResult", "SCHEDULES", "fit"]


class _Recorder(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append("train_begin")

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(epoch)


@pytest.fixture
def guard(monkeypatch):
    """Fails the test if a model is built; records any training."""
    from kerascnn import models

    built = []
    original = models.build_cnn

    @functools.wraps(original)
    def spy(*args, **kwargs):
        model = original(*args, **kwargs)
        built.append(model)
        return model

    monkeypatch.setattr(models, "build_cnn", spy)
    recorder = _Recorder()
    yield built, recorder
    assert built == [], "a model was built before the error"
    assert recorder.calls == [], "training started before the error"


def _blobs(n=60, size=8, classes=3, seed=0):
    """Images whose class is the position of a bright square: learnable."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    images = rng.integers(0, 40, size=(n, size, size, 1)).astype("uint8")
    for i, label in enumerate(labels):
        images[i, 2 * label:2 * label + 3, 1:4, 0] = 255
    return images, labels


def test_fit_digits_end_to_end(tmp_path):
    result = fit("digits", epochs=3, batch_size=32, learning_rate=3e-3,
                 model_kwargs=TINY, plot_dir=tmp_path, verbose=0,
                 tensorboard_dir=tmp_path / "tb")
    assert os.listdir(tmp_path / "tb" / "train")
    assert result.splits["train"] + result.splits["validation"] \
        + result.splits["test"] == 1797
    assert result.splits["test"] == pytest.approx(180, abs=2)
    assert result.class_names == [str(i) for i in range(10)]
    assert len(result.history["loss"]) == 3 == result.epochs_run
    assert result.history["loss"][-1] < result.history["loss"][0]
    # Far above chance (0.1) after 3 epochs of a tiny net (0.96 measured).
    assert result.test_metrics["accuracy"] > 0.85
    assert result.test_metrics["loss"] < 2.0
    x_test, y_test = result.test_data
    predicted = result.model.predict(x_test, verbose=0).argmax(axis=1)
    assert result.test_metrics["accuracy"] == pytest.approx(
        float(np.mean(predicted == y_test)))
    assert result.normalization == "batch"  # 32 >= 16 images per replica
    assert result.learning_rate == pytest.approx(3e-3)
    assert result.balance is None and result.class_weight is None
    assert result.imbalance_ratio < 1.1
    assert isinstance(result.diagnosis.summary(), str)
    for key in ("loss_curves", "confusion_matrix"):
        path = result.plots[key]
        assert os.path.dirname(path) == str(tmp_path)
        with open(path, "rb") as handle:
            assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    assert "Test: loss" in result.summary()


def test_fit_small_batch_uses_group_norm_and_prints(capsys):
    images, labels = _blobs(60)
    result = fit((images, labels), epochs=1, batch_size=8, strategy="auto",
                 model_kwargs=TINY, verbose=1, early_stopping=False)
    assert result.replicas == 1  # "auto" on a machine without GPUs
    assert result.normalization == "group"
    out = capsys.readouterr().out
    assert "Test accuracy" in out


def test_fit_user_model_uncompiled_and_splits():
    from kerascnn import data

    images, labels = _blobs(90)
    splits = data.split_dataset(images, labels, 0.2, 0.2, seed=1)
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Rescaling(1 / 255)(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    result = fit(splits, model, epochs=8, batch_size=8, learning_rate=0.05,
                 optimizer="sgd", verbose=0, early_stopping=False)
    assert result.model is model
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert model.optimizer.nesterov and model.optimizer.momentum == 0.9
    assert result.splits == {"train": len(splits.y_train),
                             "validation": len(splits.y_val),
                             "test": len(splits.y_test)}
    assert result.normalization == "none"
    # The bright square makes the task easy for a linear model.
    assert result.test_metrics["accuracy"] >= 0.9


def test_fit_compiled_model_keeps_its_optimizer():
    images, labels = _blobs(60)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.0125),
                  loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    result = fit((images, labels), model, epochs=1, batch_size=8, verbose=0)
    assert result.learning_rate == pytest.approx(0.0125)
    assert model.optimizer.iterations.numpy() > 0
    with pytest.raises(ValueError, match="Received: schedule='step'"):
        fit((images, labels), model, schedule="step", batch_size=8)
    with pytest.raises(ValueError, match="Received: learning_rate='find'"):
        fit((images, labels), model, learning_rate="find", batch_size=8)


def test_fit_auto_balance_uses_class_weights(capsys):
    images, labels = _blobs(120, classes=3)
    keep = (labels != 2) | (np.arange(120) < 30)  # class 2: 10 of 40 images
    result = fit((images[keep], labels[keep]), epochs=1, batch_size=8,
                 model_kwargs=TINY, verbose=1, early_stopping=False,
                 validation_split=0.2, test_split=0.2)
    assert result.balance == "class_weight"
    assert result.imbalance_ratio == pytest.approx(4.0, rel=0.2)
    weights = result.class_weight
    assert weights[0] == pytest.approx(weights[1])
    # "balanced" weights are n / (k * count): their ratio is the count ratio.
    assert weights[2] / weights[0] == pytest.approx(result.imbalance_ratio)
    out = capsys.readouterr().out
    assert "class weights" in out


@pytest.mark.parametrize("balance", ["oversample", "effective_number"])
def test_fit_balance_options_run(balance):
    images, labels = _blobs(120, classes=3)
    keep = (labels != 2) | (np.arange(120) < 30)
    result = fit((images[keep], labels[keep]), epochs=1, batch_size=8,
                 model_kwargs=TINY, verbose=0, balance=balance,
                 validation_split=0.2, test_split=0.2)
    assert result.balance == balance
    assert (result.class_weight is None) == (balance == "oversample")


def test_fit_with_two_replicas(two_cpu_strategy):
    images, labels = _blobs(60)
    result = fit((images, labels), epochs=1, batch_size=4,
                 strategy=two_cpu_strategy, model_kwargs=TINY, verbose=0)
    assert result.replicas == 2 and result.batch_size == 8
    # 4 images per replica: GroupNorm by build_cnn's rule.
    assert result.normalization == "group"
    assert 0.0 <= result.test_metrics["accuracy"] <= 1.0


def test_fit_clones_a_user_model_into_the_strategy(two_cpu_strategy):
    images, labels = _blobs(60)
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              keras.layers.Rescaling(1 / 255),
                              keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax")])
    before = [w.copy() for w in model.get_weights()]
    result = fit((images, labels), model, epochs=1, batch_size=4,
                 strategy=two_cpu_strategy, verbose=0)
    assert result.model is not model and result.replicas == 2
    # The user's model is left as it was; the clone started from its weights
    # and was trained.
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)
    assert not np.allclose(before[0], result.model.get_weights()[0])


def test_fit_named_schedule_reaches_the_optimizer():
    images, labels = _blobs(60)
    result = fit((images, labels), epochs=2, batch_size=8,
                 schedule="triangular2", learning_rate=0.004,
                 model_kwargs=TINY, verbose=0, early_stopping=False)
    rate = result.model.optimizer._learning_rate
    from kerascnn.schedules import Triangular2CyclicalLearningRate

    assert isinstance(rate, Triangular2CyclicalLearningRate)
    assert result.learning_rate_bounds == pytest.approx((0.001, 0.004))
    steps = _schedules.steps_for(result.splits["train"], 8)
    assert rate.step_size == 2 * steps
    assert result.schedule == "triangular2"


@pytest.mark.parametrize("schedule", ["cyclic", None])
def test_fit_learning_rate_find(schedule, tmp_path):
    images, labels = _blobs(90)
    result = fit((images, labels), epochs=1, batch_size=8,
                 learning_rate="find", schedule=schedule, plot_dir=tmp_path,
                 model_kwargs=TINY, verbose=0)
    low, high = result.lr_finder.suggested
    assert 0 < low < high
    assert len(result.lr_finder.learning_rates) > 5
    assert os.path.exists(result.plots["lr_finder"])
    if schedule == "cyclic":
        assert result.learning_rate_bounds == pytest.approx((low, high))
        assert result.learning_rate == pytest.approx(high)
    else:
        assert result.learning_rate_bounds is None
        assert result.learning_rate == pytest.approx(np.sqrt(low * high))
        assert float(result.model.optimizer.learning_rate) == pytest.approx(
            np.sqrt(low * high), rel=1e-5)


# -- schedules: closed forms --------------------------------------------------


def _at(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_step_schedule():
    s = _schedules.make_schedule("step", 0.1, steps_per_epoch=10, epochs=8)
    assert _at(s, 0) == pytest.approx(0.1)
    assert _at(s, 40) == pytest.approx(0.1)
    assert _at(s, 41) == pytest.approx(0.01)
    assert _at(s, 61) == pytest.approx(0.001)


def test_exponential_schedule_ends_at_one_hundredth():
    s = _schedules.make_schedule("exponential", 0.1, 10, 5)
    assert _at(s, 9) == pytest.approx(0.1)  # staircase: constant in epoch 0
    assert _at(s, 10) == pytest.approx(0.1 * 0.01 ** 0.25, rel=1e-5)
    assert _at(s, 45) == pytest.approx(0.001, rel=1e-5)


def test_inverse_time_schedule_ends_at_one_tenth():
    s = _schedules.make_schedule("inverse_time", 0.1, 10, 9)
    assert _at(s, 0) == pytest.approx(0.1)
    assert _at(s, 10) == pytest.approx(0.1 / 2, rel=1e-5)
    assert _at(s, 90) == pytest.approx(0.01, rel=1e-5)


def test_one_cycle_schedule_warms_up_then_anneals_to_zero():
    # 10 epochs of 10 steps: 15 warm-up steps from 1/10 of the peak.
    s = _schedules.make_schedule("one_cycle", 0.003, 10, 10)
    assert _at(s, 0) == pytest.approx(0.0003, rel=1e-5)
    assert _at(s, 15) == pytest.approx(0.003, rel=1e-5)
    values = [_at(s, step) for step in range(15, 101)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert _at(s, 100) == pytest.approx(0.0, abs=1e-9)
    # Half way through the annealing, a cosine is at half the peak.
    assert _at(s, 15 + 85 / 2) == pytest.approx(0.0015, rel=1e-4)
    # Too short to warm up (1 step): starts at the peak.
    s = _schedules.make_schedule("one_cycle", 0.003, 1, 1)
    assert _at(s, 0) == pytest.approx(0.003)


@pytest.mark.parametrize("epochs,half", [(1, 2), (8, 2), (12, 3), (30, 7),
                                         (100, 8)])
def test_half_cycle_epochs(epochs, half):
    assert _schedules.half_cycle_epochs(epochs) == half


def test_cyclic_schedule_bounds():
    s = _schedules.make_schedule("cyclic", 0.004, 5, 8)
    step_size = 2 * 5
    assert _at(s, 0) == pytest.approx(0.001)
    assert _at(s, step_size) == pytest.approx(0.004)
    assert _at(s, step_size // 2) == pytest.approx(0.0025)
    assert _at(s, 2 * step_size) == pytest.approx(0.001)
    e = _schedules.make_schedule("exp_range", 0.004, 5, 8)
    # gamma ** (2 * step_size) == 0.5: the amplitude halves every cycle.
    assert _at(e, 3 * step_size) == pytest.approx(
        0.001 + 0.003 * 0.5 ** 1.5, rel=1e-4)


# -- validation before any model or epoch -------------------------------------


def _bad_images():
    images, labels = _blobs(60)
    images = images.astype("float32")
    images[7, 1, 1, 0] = np.nan
    return images, labels


@pytest.mark.parametrize("data,match", [
    (_bad_images(), "Received: 1 NaN"),
    ((_blobs(60)[0], np.full(60, 1)), "only class 1"),
    ((_blobs(60)[0], np.arange(60) % 3 - 1), "labels from -1 to 1"),
    ((_blobs(60)[0], np.where(np.arange(60) % 2, 0, 3)),
     r"classes \[1, 2\] missing|class\(es\) \['1', '2'\]"),
    ((_blobs(60)[0], _blobs(60)[1][:59]), "60 images and 59 labels"),
    ("no_such_dataset", "Received: data='no_such_dataset'"),
    (42, "Received: data=42"),
])
def test_bad_data_fails_first(guard, data, match):
    _, recorder = guard
    with pytest.raises(ValueError, match=match):
        fit(data, epochs=1, model_kwargs=TINY, callbacks=[recorder],
            verbose=0)


@pytest.mark.parametrize("kwargs,match", [
    ({"model_kwargs": {"depth": 4, "pooling": "max2"}},  # 8x8 collapses at
     # the 4th pooling
     r"`block4_pool`.*Received: input_shape=\(8, 8, 1\), depth=4"),
    ({"model_kwargs": {"dropout": 1.5}}, "Received: dropout=1.5"),
    ({"batch_size": 100}, "Received: batch_size=100"),
    ({"schedule": "cosine"}, "Received: schedule='cosine'"),
    ({"schedule": 3}, "Received: schedule=3"),
    ({"balance": "smote"}, "Received: balance='smote'"),
    ({"optimizer": "adamm"}, "Received: optimizer='adamm'"),
    ({"augment": "flips"}, "Received: augment='flips'"),
    ({"augment": {"preset": "digits", "spin": 0.1}},
     r"overrides.*Received: augment=\{'preset': 'digits', 'spin': 0.1\}"),
    ({"augment": {"preset": "digits", "rotation": 2.0}},
     r"rotation.*Received: augment=\{'preset': 'digits', 'rotation': 2.0\}"),
    ({"augment": {"preset": "digits", "seed": 1}},
     r"without 'seed'.*Received: augment="),
    ({"learning_rate": "fast"}, "Received: learning_rate='fast'"),
    ({"learning_rate": -1.0}, "Received: learning_rate=-1.0"),
    ({"strategy": "mirror"}, "Received: strategy='mirror'"),
    ({"model_kwargs": {"depht": 2}}, r"Received: model_kwargs=\{'depht': 2\}"),
    ({"model_kwargs": {"normalizer": None}},
     r"Received: model_kwargs=\{'normalizer': None\}"),
    ({"epochs": 0}, "Received: epochs=0"),
    ({"seed": "1"}, "Received: seed='1'"),
    ({"verbose": 3}, "Received: verbose=3"),
    ({"early_stopping": "yes"}, "Received: early_stopping='yes'"),
    ({"validation_split": 1.5}, "Received: validation_split=1.5"),
    ({"validation_split": 0.5, "test_split": 0.5},
     "Received: validation_split=0.5, test_split=0.5"),
    ({"callbacks": "tb"}, "Received: callbacks='tb'"),
    ({"plot_dir": 5}, "Received: plot_dir=5"),
])
def test_bad_arguments_fail_first(guard, kwargs, match):
    _, recorder = guard
    images, labels = _blobs(60)
    kwargs = {"model_kwargs": TINY, "batch_size": 8, **kwargs}
    callbacks = kwargs.pop("callbacks", [recorder])
    with pytest.raises(ValueError, match=match):
        fit((images, labels), epochs=kwargs.pop("epochs", 1),
            callbacks=callbacks, verbose=kwargs.pop("verbose", 0), **kwargs)


def test_bad_user_model_fails_first(guard):
    _, recorder = guard
    images, labels = _blobs(60)
    wrong_input = keras.Sequential([keras.Input((9, 9, 1)),
                                    keras.layers.Flatten(),
                                    keras.layers.Dense(3)])
    with pytest.raises(ValueError, match=r"Received: model with input shape"):
        fit((images, labels), wrong_input, batch_size=8, callbacks=[recorder],
            verbose=0)
    wrong_output = keras.Sequential([keras.Input((8, 8, 1)),
                                     keras.layers.Flatten(),
                                     keras.layers.Dense(4)])
    with pytest.raises(ValueError, match=r"output 3 class scores"):
        fit((images, labels), wrong_output, batch_size=8,
            callbacks=[recorder], verbose=0)
    with pytest.raises(ValueError, match="Received: augment='digits'"):
        fit((images, labels), wrong_output, augment="digits",
            callbacks=[recorder], verbose=0)
    with pytest.raises(ValueError, match="Received: model='cnn'"):
        fit((images, labels), "cnn", callbacks=[recorder], verbose=0)


def test_plot_dir_that_is_a_file_fails_first(guard, tmp_path):
    _, recorder = guard
    path = tmp_path / "file.png"
    path.write_bytes(b"x")
    images, labels = _blobs(60)
    with pytest.raises(ValueError, match="Received: plot_dir="):
        fit((images, labels), plot_dir=path, model_kwargs=TINY,
            callbacks=[recorder], verbose=0)


def test_augment_dict_builds_the_preset_with_overrides_and_fit_model_defaults():
    images, labels = _blobs()
    result = fit((images, labels), epochs=1, batch_size=16, verbose=0,
                 model_kwargs={"depth": 1, "filters": 8},
                 augment={"preset": "digits", "rotation": 0.05,
                          "translation": 0.08, "zoom": 0.0})
    block = result.model.get_layer("augmentation")
    layers = {type(layer).__name__: layer
              for layer in block.layer._flatten_layers(include_self=False)}
    assert layers["RandomRotation"].factor == (-0.05, 0.05)
    assert layers["RandomTranslation"].height_factor == 0.08
    assert "RandomZoom" not in layers  # zoom 0 leaves the layer out
    # fit's model defaults (training.defaults.MODEL) under model_kwargs:
    # the strided downsampling and no hidden dense layer.
    assert "block1_pool" not in [layer.name for layer in result.model.layers]
    assert result.model.get_layer("block1_conv2").strides == (2, 2)
    assert "head_dense" not in [layer.name for layer in result.model.layers]


def test_defaults_augment_mnist5k_with_its_preset_and_train_the_whole_cycle():
    # augment="auto", early_stopping="auto": mnist5k gets the "digits"
    # preset inside the model, and the one cycle runs to its last epoch.
    from kerascnn.data import augmentation

    result = fit("mnist5k", epochs=2, verbose=0,
                 model_kwargs={"depth": 1, "filters": 4,
                               "convs_per_block": 1})
    block = result.model.get_layer("augmentation")
    def random_layers(sequential):
        return {type(layer).__name__: layer.get_config()
                for layer in sequential._flatten_layers(include_self=False)
                if type(layer).__name__.startswith("Random")}

    ours = random_layers(block.layer)
    preset = random_layers(augmentation("digits"))
    assert ours.keys() == preset.keys() and "RandomRotation" in ours
    assert (ours["RandomRotation"]["factor"]
            == preset["RandomRotation"]["factor"])
    assert result.epochs_run == 2 and not result.stopped_early
    assert result.stop_reason is None


def test_defaults_do_not_augment_arrays():
    images, labels = _blobs()
    result = fit((images, labels), epochs=1, batch_size=16, verbose=0,
                 model_kwargs=TINY)
    assert "augmentation" not in [layer.name for layer in result.model.layers]
