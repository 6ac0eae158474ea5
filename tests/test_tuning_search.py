"""kerascnn.tuning.search on tiny data: replicas, outputs, memory, resume, errors."""

import csv
import gc
import json
import os
import weakref

import keras
import numpy as np
import pytest

from kerascnn import datasets
from kerascnn.data import split_dataset
from kerascnn.tuning import search

# One conv configuration family, few filters: each trial is a second or two.
TINY_SPACE = {"depths": (1,), "filter_sizes": (3,), "strides": (1, 2),
              "paddings": ("same",), "filters": (4,),
              "normalizations": ("none",), "dropouts": (0.0,),
              "learning_rate": (3e-3, 3e-2)}


@pytest.fixture(scope="module")
def digits_splits():
    images, labels = datasets.load_digits()
    return tuple(split_dataset(images[:400], labels[:400],
                               validation_split=0.25, test_split=0.15,
                               seed=0))


class _ModelRefs(keras.callbacks.Callback):
    """Keeps weak references to every trial's model (class-level: KerasTuner
    deep-copies callbacks per trial)."""

    refs = []

    def on_train_begin(self, logs=None):
        _ModelRefs.refs.append(weakref.ref(self.model))


def test_search_mirrored_two_replicas_writes_table(tmp_path, digits_splits,
                                                   two_cpu_strategy):
    _ModelRefs.refs = []
    result = search(digits_splits, tuner="random", space=TINY_SPACE,
                    max_trials=2, epochs=2, batch_size=8,
                    strategy=two_cpu_strategy, directory=tmp_path,
                    callbacks=[_ModelRefs()], verbose=0)
    assert result.num_replicas == 2
    assert result.global_batch_size == 16
    assert len(result.trials) == 2
    for row in result.trials:
        assert row["status"] == "COMPLETED"
        assert row["replicas"] == 2.0
        assert row["global_batch_size"] == 16.0
        assert row["depth"] == 1 and row["filter_size"] == 3
        assert 3e-3 <= row["learning_rate"] <= 3e-2
    # The best trial is the one with the highest validation accuracy.
    scores = [row["score"] for row in result.trials]
    assert result.best_score == max(scores)
    # Files: CSV and JSON hold the same trials, the PNG is a real image.
    with open(result.files["trials_csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["trial_id"] for r in rows] == [t["trial_id"]
                                              for t in result.trials]
    assert float(rows[0]["score"]) == pytest.approx(result.trials[0]["score"])
    with open(result.files["trials_json"]) as handle:
        assert json.load(handle) == json.loads(json.dumps(result.trials))
    with open(result.files["objective_png"], "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    # The best model is the best trial's checkpoint: same validation score.
    x_val, y_val = digits_splits[2], digits_splits[3]
    accuracy = np.mean(result.best_model.predict(
        x_val.astype("float32"), verbose=0).argmax(1) == y_val)
    assert accuracy == pytest.approx(result.best_score, abs=1e-6)
    assert set(result.test_metrics) == {"accuracy", "loss"}
    # Memory is released between trials: no trial's model outlives it.
    gc.collect()
    assert len(_ModelRefs.refs) == 2
    assert [ref() for ref in _ModelRefs.refs] == [None, None]


def test_hyperband_with_class_weights_clr_and_retrain(tmp_path,
                                                      digits_splits):
    result = search(digits_splits, tuner="hyperband", space=TINY_SPACE,
                    max_trials=3, epochs=3, batch_size=16,
                    class_weight="balanced", schedule="cyclic",
                    retrain=True, strategy=None, directory=tmp_path,
                    verbose=0)
    # Hyperband is capped at max_trials like the other tuners.
    assert 1 <= len(result.trials) <= 3
    assert all("hyperband_epochs" in row for row in result.trials)
    assert result.num_replicas == 1
    model = result.best_model
    schedule = model.optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "TriangularCyclicalLearningRate"
    best_lr = result.best_hyperparameters["learning_rate"]
    assert schedule["config"]["maximal_learning_rate"] == pytest.approx(
        best_lr)
    assert schedule["config"]["initial_learning_rate"] == pytest.approx(
        best_lr / 4)
    # Retrained on train + validation for the best trial's epoch count.
    steps = int(np.ceil((len(digits_splits[0]) + len(digits_splits[2])) / 16))
    assert int(model.optimizer.iterations.numpy()) == (
        steps * result.best_epochs)
    x_test, y_test = digits_splits[4], digits_splits[5]
    accuracy = np.mean(model.predict(x_test.astype("float32"), verbose=0)
                       .argmax(1) == y_test)
    assert result.test_metrics["accuracy"] == pytest.approx(accuracy,
                                                            abs=1e-6)


def test_grid_search_resumes_and_continues(tmp_path, digits_splits):
    space = dict(TINY_SPACE, learning_rate=1e-2,
                 strides=(1, 2), dropouts=(0.0, 0.5))
    first = search(digits_splits, tuner="grid", space=space, max_trials=2,
                   epochs=1, directory=tmp_path, verbose=0, strategy=None)
    assert [t["trial_id"] for t in first.trials] == ["0", "1"]
    # Same search again with more trials: continues (keras-tuner#1055 would
    # raise KeyError after the first trial of the resumed process).
    second = search(digits_splits, tuner="grid", space=space, max_trials=4,
                    epochs=1, directory=tmp_path, verbose=0, strategy=None)
    assert second.ran_trials == ["2", "3"]
    assert [t["status"] for t in second.trials] == ["COMPLETED"] * 4
    combos = {(t["stride"], t["dropout"]) for t in second.trials}
    assert combos == {(1, 0.0), (1, 0.5), (2, 0.0), (2, 0.5)}
    # A third run has nothing left to do and keeps every result.
    third = search(digits_splits, tuner="grid", space=space, max_trials=4,
                   epochs=1, directory=tmp_path, verbose=0, strategy=None)
    assert third.ran_trials == []
    assert third.best_score == second.best_score


@pytest.mark.parametrize("kwargs,match", [
    ({"tuner": "evolution"}, "Received: tuner='evolution'"),
    ({"max_trials": 0}, "Received: max_trials=0"),
    ({"space": {"filter_sizes": ()}}, r"Received: filter_sizes=\(\)"),
    ({"space": {"depths": (1, 5), "paddings": ("same", "valid")}},
     r"depth 5 collapses .* Received: depths=\(1, 5\)"),
    ({"epochs": 0}, "Received: epochs=0"),
    ({"objective": "val_auc"}, "Received: objective='val_auc'"),
    ({"strategy": "tpu"}, "Received: strategy='tpu'"),
    ({"distributed": "master"}, "Received: distributed='master'"),
    ({"oracle_address": "localhost"}, "Received: oracle_address='localhost'"),
    ({"batch_size": 1000}, "Received: batch_size=1000"),
    ({"class_weight": "inverse"}, "Received: class_weight='inverse'"),
])
def test_bad_input_fails_before_any_trial(tmp_path, digits_splits, kwargs,
                                          match):
    arguments = dict(tuner="random", space=TINY_SPACE, max_trials=1,
                     epochs=1, directory=tmp_path / "kt", verbose=0,
                     strategy=None)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=match):
        search(digits_splits, **arguments)
    assert not os.path.exists(tmp_path / "kt")


def test_bad_data_fails_before_any_trial(tmp_path):
    with pytest.raises(ValueError, match="Received: data='cifar100'"):
        search("cifar100", directory=tmp_path / "kt")
    with pytest.raises(ValueError, match="Received: data=42"):
        search(42, directory=tmp_path / "kt")
    assert not os.path.exists(tmp_path / "kt")


def test_auto_strategy_is_default_on_cpu_and_explicit_is_kept(
        two_cpu_strategy):
    import tensorflow as tf

    from kerascnn.core.distribute import resolve_strategy
    from kerascnn.tuning.search import _is_real_strategy

    # No GPU here: "auto" means the default strategy (None for KerasTuner),
    # with the same meaning as in fit.
    assert resolve_strategy("auto") is tf.distribute.get_strategy()
    assert resolve_strategy(None) is tf.distribute.get_strategy()
    assert not _is_real_strategy(resolve_strategy("auto"))
    assert resolve_strategy(two_cpu_strategy) is two_cpu_strategy
    assert _is_real_strategy(two_cpu_strategy)


def test_mostly_collapsing_space_burns_no_trial(tmp_path, digits_splits):
    # At 8x8 most of these stacks collapse (e.g. 7x7 valid: 8 - 7 + 1 = 2,
    # then 2 - 7 + 1 < 1); a naive space would fail trials on them.
    space = dict(TINY_SPACE, depths=(1, 2, 3), filter_sizes=(3, 5, 7),
                 strides=(1, 2), paddings=("valid", 1))
    result = search(digits_splits, tuner="random", space=space,
                    max_trials=3, epochs=1, directory=tmp_path,
                    max_consecutive_failed_trials=1, strategy=None,
                    verbose=0)
    report = result.space_report
    assert report.excluded > report.valid > 0
    assert report.total == 3 * 3 * 2 * 2
    assert [t["status"] for t in result.trials] == ["COMPLETED"] * 3
    for row in result.trials:
        assert (row["depth"], row["filter_size"], row["stride"],
                row["padding"]) != (3, 7, 2, "valid")
