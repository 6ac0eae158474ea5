"""The shared core through the workflows: tuning on streamed data, the
project fingerprint, the CLI's divergence and export rules (issue 12 cases
6 and 8, `tune --export`), and the core's own pieces."""

import json
import os

import matplotlib
import pytest
import numpy as np

from kerascnn.core import callbacks as core_callbacks
from kerascnn.core import settings as core_settings
from kerascnn.core import trainer
from kerascnn.tuning import search
from test_fit import _blobs

SPACE = {"depths": [1], "filter_sizes": [3], "strides": [1],
         "paddings": ["same"], "filters": [4], "normalizations": ["none"],
         "dropouts": [0.0], "learning_rate": 0.01}


def test_search_streams_a_three_class_folder(tmp_path):
    from test_fit_streaming import write_folder

    root = write_folder(str(tmp_path / "photos"))
    result = search(root, tuner="random", space=SPACE, max_trials=1,
                    epochs=1, batch_size=2, directory=tmp_path / "kt",
                    validation_split=0.2, test_split=0.2, strategy=None,
                    verbose=0)
    assert result.class_names == ["c0", "c1", "c2"]
    assert [t["status"] for t in result.trials] == ["COMPLETED"]
    assert result.best_model.input_shape == (None, 16, 16, 3)
    assert set(result.test_metrics) == {"loss", "accuracy"}
    assert result.splits.x_test.shape == (6, 16, 16, 3)
    assert result.fingerprint
    stored = json.loads((tmp_path / "kt" / "random"
                         / search_module().PROJECT_FILE).read_text())
    assert stored["data"] == result.fingerprint


def search_module():
    import importlib

    return importlib.import_module("kerascnn.tuning.search")


def test_rerun_with_other_data_is_refused_before_any_trial(tmp_path):
    # Issue 12, case 6: the old project's result must not be reported.
    images, labels = _blobs(60)
    first = search((images, labels), tuner="random", space=SPACE,
                   max_trials=1, epochs=1, batch_size=4,
                   directory=tmp_path / "kt", strategy=None, verbose=0)
    assert first.best_score is not None
    other = _blobs(60, seed=9)
    with pytest.raises(ValueError, match=r"other data.*--overwrite.*"
                       r"--project-name.*Received: project_name='random'"):
        search(other, tuner="random", space=SPACE, max_trials=1, epochs=1,
               batch_size=4, directory=tmp_path / "kt", strategy=None,
               verbose=0)
    with pytest.raises(ValueError, match=r"settings.epochs"):
        search((images, labels), tuner="random", space=SPACE, max_trials=1,
               epochs=2, batch_size=4, directory=tmp_path / "kt",
               strategy=None, verbose=0)
    # overwrite=True or another project name starts a new search.
    fresh = search(other, tuner="random", space=SPACE, max_trials=1,
                   epochs=1, batch_size=4, directory=tmp_path / "kt",
                   strategy=None, overwrite=True, verbose=0)
    assert fresh.fingerprint != first.fingerprint


@pytest.mark.parametrize("kwargs,match", [
    ({"precision": "fp16"}, "Received: precision='fp16'"),
    ({"jit_compile": 1}, "Received: jit_compile=1"),
    ({"steps_per_execution": -2}, "Received: steps_per_execution=-2"),
])
def test_search_rejects_accelerator_options_before_any_trial(tmp_path, kwargs,
                                                             match):
    with pytest.raises(ValueError, match=match):
        search(_blobs(60), tuner="random", space=SPACE, max_trials=1,
               epochs=1, directory=tmp_path / "kt", verbose=0, **kwargs)
    assert not os.path.exists(tmp_path / "kt")


def test_plot_objective_leaves_the_backend_alone(tmp_path):
    backend = matplotlib.get_backend()
    trials = [{"status": "COMPLETED", "score": 0.5},
              {"status": "FAILED", "score": None}]
    search_module().plot_objective(trials, tmp_path / "o.png",
                                   "val_accuracy")
    assert os.path.getsize(tmp_path / "o.png") > 0
    assert matplotlib.get_backend() == backend


# -- CLI: diverged runs and tune --export -------------------------------------


def test_cli_train_diverged_exits_1_and_does_not_export(tmp_path, capsys):
    from kerascnn.cli import main

    argv = ["train", "--data", "digits", "--depth", "1", "--filters", "4",
            "--epochs", "1", "--batch-size", "64", "--learning-rate", "1e6",
            "--schedule", "none",
            "--no-early-stopping", "--verbose", "0", "--export", "d",
            "--export-dir", str(tmp_path / "exports")]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "diverged" in lines[0]
    assert "--export-diverged" in lines[0]
    assert not os.path.exists(tmp_path / "exports" / "d")


def test_cli_tune_refuses_an_existing_export_before_searching(tmp_path,
                                                              capsys):
    from kerascnn.cli import main
    from kerascnn.export import safety

    existing = tmp_path / "exports" / "best"
    existing.mkdir(parents=True)
    (existing / "metadata.json").write_text(json.dumps(
        {safety.MARKER_KEY: safety.MARKER_VERSION}))
    code = main(["tune", "--data", "digits", "--max-trials", "1",
                 "--directory", str(tmp_path / "kt"), "--export", "best",
                 "--export-dir", str(tmp_path / "exports"), "--overwrite"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--overwrite-export" in err and len(err.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "kt")
    assert os.listdir(existing) == ["metadata.json"]


# -- core pieces --------------------------------------------------------------


def test_divergence_rules():
    assert trainer.divergence({"loss": [1.0, 0.5]}, 10, 0.6) is None
    assert "non-finite" in trainer.divergence(
        {"loss": [1.0, float("nan")]}, 10)
    assert "val_loss" in trainer.divergence(
        {"loss": [1.0], "val_loss": [float("inf")]}, 10)
    assert "exceeds" in trainer.divergence({"loss": [1e9]}, 10)
    assert "test loss" in trainer.divergence({"loss": [1.0]}, 10, 2e21)


def test_settings_are_checked_at_construction():
    with pytest.raises(ValueError, match="Received: precision='half'"):
        core_settings.TrainSettings(precision="half")
    with pytest.raises(ValueError, match="Received: balance='smote'"):
        core_settings.TrainSettings(balance="smote")
    with pytest.raises(ValueError, match="Received: image_size=0"):
        core_settings.DataSettings(image_size=0)
    assert core_settings.DataSettings(image_size=16).image_size == (16, 16)
    assert core_settings.TrainSettings(optimizer="ADAM").optimizer == "adam"
    assert set(core_settings.PRECISIONS) == {
        "float32", "mixed_float16", "mixed_bfloat16", "auto"}


def test_auto_augment_and_early_stopping_resolve_from_data_and_schedule():
    import keras

    auto = core_settings.TrainSettings()
    assert (auto.augment, auto.early_stopping) == ("auto", "auto")
    # Built-in datasets get their measured preset; other data none.
    assert auto.resolve_auto("mnist5k").augment == "digits"
    assert auto.resolve_auto("MNIST5K").augment == "digits"
    assert auto.resolve_auto("digits").augment is None
    images = np.zeros((4, 8, 8, 1), "uint8")
    assert auto.resolve_auto((images, np.arange(4) % 2)).augment is None
    assert auto.resolve_auto("some/folder").augment is None
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    assert auto.resolve_auto("mnist5k", model=model).augment is None
    # One cycle anneals over its fixed budget: no early stopping; any other
    # schedule, or a compiled model's own optimizer: early stopping.
    assert auto.resolve_auto("mnist5k").early_stopping is False
    assert core_settings.TrainSettings(schedule="exponential").resolve_auto(
        "mnist5k").early_stopping is True
    model.compile(optimizer="sgd", loss="mse")
    assert auto.resolve_auto("mnist5k", model=model).early_stopping is True
    # Explicit values are kept.
    explicit = core_settings.TrainSettings(augment="natural",
                                           early_stopping=True)
    assert explicit.augment == "natural"
    assert explicit.resolve_auto("mnist5k") == explicit
    with pytest.raises(ValueError, match="Received: early_stopping='maybe'"):
        core_settings.TrainSettings(early_stopping="maybe")
    with pytest.raises(ValueError, match="Received: augment=3"):
        core_settings.TrainSettings(augment=3)


def test_cli_vocabularies_are_the_librarys():
    import argparse

    from kerascnn.cli import _common

    parser = argparse.ArgumentParser()
    _common.add_fit_arguments(parser)
    _common.add_data_arguments(parser)
    choices = {a.dest: a.choices for a in parser._actions}
    assert list(choices["precision"]) == list(core_settings.PRECISIONS)
    assert list(choices["balance"])[:-1] == list(
        core_settings.BALANCE_OPTIONS)
    assert list(choices["schedule"])[:-1] == list(core_settings.SCHEDULES)
    args = parser.parse_args(["--image-size", "32x24", "--jit-compile",
                              "false", "--on-error", "skip"])
    assert _common.data_kwargs_from_args(args)["image_size"] == (32, 24)
    assert _common.fit_kwargs_from_args(args)["jit_compile"] is False
    kwargs = _common.fit_kwargs_from_args(args)
    assert (kwargs["augment"], kwargs["early_stopping"]) == ("auto", "auto")
    for flag, value in (("--early-stopping", True),
                        ("--no-early-stopping", False)):
        assert parser.parse_args([flag]).early_stopping is value
    assert parser.parse_args(["--augment", "none"]).augment is None


def test_cli_depth_defaults_to_fits_auto_depth(capsys):
    import argparse

    from kerascnn.cli import _common
    from kerascnn.training import defaults

    parser = argparse.ArgumentParser()
    _common.add_model_arguments(parser)
    kwargs = _common.model_kwargs_from_args(parser.parse_args([]))
    assert kwargs["depth"] == defaults.MODEL["depth"] == "auto"
    assert parser.parse_args(["--depth", "AUTO"]).depth == "auto"
    assert parser.parse_args(["--depth", "3"]).depth == 3
    for bad in ("0", "deep"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--depth", bad])
        assert (f"must be a positive integer or auto, received {bad!r}"
                in capsys.readouterr().err)


def test_vocabularies_match_their_builders():
    from kerascnn.models import cnn
    from kerascnn.training import _schedules
    from kerascnn.tuning import tuners

    assert core_settings.NORMALIZATIONS == tuple(cnn.NORMALIZATIONS)
    assert core_settings.TUNERS == tuple(tuners.TUNERS)
    assert core_settings.SCHEDULES == _schedules.SCHEDULES


def test_backup_fingerprint_file(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    other = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    backup = str(tmp_path / "b")
    core_callbacks.check_backup(backup, model, "data1")
    os.makedirs(os.path.join(backup, core_callbacks.BACKUP_STATE))
    core_callbacks.check_backup(backup, model, "data1")  # same run: resumes
    with pytest.raises(ValueError, match="model differ"):
        core_callbacks.check_backup(backup, other, "data1")
    with pytest.raises(ValueError, match="data differ"):
        core_callbacks.check_backup(backup, model, "data2")


def test_eval_batch_splits_evenly_over_replicas():
    from kerascnn.core.data import eval_batch_size

    # Keras reduces the first batch across replicas: 5 images on 2 fail.
    assert eval_batch_size(5, 64, replicas=2) == 4
    assert eval_batch_size(500, 64, replicas=2) == 64
    assert eval_batch_size(500, 63, replicas=2) == 62
    assert eval_batch_size(5, 64) == 5
    assert eval_batch_size(None, 32, replicas=4) == 32
    with pytest.raises(ValueError, match=r"`test_data`.*at least 2 images"
                                         r".*Received: test_data=.1 image"):
        eval_batch_size(1, 64, replicas=2, name="test_data")
