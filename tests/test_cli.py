"""Smoke tests of `kerascnn quickstart`, `train` and `predict` via `main`."""

import json
import os

import numpy as np
import pytest
from PIL import Image

from kerascnn.cli import main


@pytest.fixture(scope="module")
def quick_export(tmp_path_factory):
    """One `quickstart --quick` run shared by the tests that need an export."""
    import keras

    keras.utils.set_random_seed(1234)
    root = tmp_path_factory.mktemp("quickstart")
    code = main(["quickstart", "--quick", "--verbose", "0",
                 "--output-dir", str(root / "runs"),
                 "--export-dir", str(root / "exports"), "--name", "qs"])
    assert code == 0
    return root


def test_quickstart_quick_writes_export_and_plots(quick_export, capsys):
    export = quick_export / "exports" / "qs"
    assert sorted(os.listdir(export)) == ["metadata.json", "model.keras",
                                          "saved_model"]
    metadata = json.loads((export / "metadata.json").read_text())
    assert metadata["class_names"] == [str(i) for i in range(10)]
    assert metadata["input_shape"] == [28, 28, 1]
    assert 0.0 <= metadata["metrics"]["test_accuracy"] <= 1.0
    for plot in ("loss_curves.png", "confusion_matrix.png"):
        assert (quick_export / "runs" / plot).stat().st_size > 0


def test_quickstart_refuses_existing_export_before_training(
        quick_export, capsys, monkeypatch):
    from kerascnn import training

    def no_training(*args, **kwargs):
        raise AssertionError("trained before refusing")

    monkeypatch.setattr(training, "fit", no_training)
    code = main(["quickstart", "--quick", "--export-dir",
                 str(quick_export / "exports"), "--name", "qs"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("kerascnn quickstart: error:")
    assert "--overwrite" in err and "--name" in err and "qs" in err


def test_predict_prints_class_and_probability(quick_export, capsys,
                                              tmp_path, mnist5k):
    images, labels = mnist5k
    paths = []
    for index in (0, 1):
        path = tmp_path / f"digit{index}.png"
        # Saved as RGB at 2x size: predict converts to 28x28 grayscale.
        Image.fromarray(images[index, :, :, 0]).convert("RGB").resize(
            (56, 56)).save(path)
        paths.append(str(path))
    capsys.readouterr()
    code = main(["predict", "--model", str(quick_export / "exports" / "qs"),
                 *paths])
    assert code == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for path, line in zip(paths, lines):
        head, _, rest = line.partition(": ")
        assert head == path
        name, probability = rest.split(" ")
        assert name in [str(i) for i in range(10)]
        assert 0.0 < float(probability.strip("()")) <= 1.0


def test_predict_missing_image_is_one_line(quick_export, capsys):
    code = main(["predict", "--model", str(quick_export / "exports" / "qs"),
                 "no_such.png"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == ("kerascnn predict: error: no such image file: "
                   "'no_such.png'")


def test_train_digits_exports(tmp_path, capsys):
    code = main(["train", "--data", "digits", "--depth", "1", "--filters",
                 "16", "--epochs", "2", "--batch-size", "32", "--verbose",
                 "0", "--learning-rate", "0.003", "--export", "digits_cnn",
                 "--export-dir", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    assert "Exported SavedModel" in out
    metadata = json.loads(
        (tmp_path / "digits_cnn" / "metadata.json").read_text())
    assert metadata["input_shape"] == [8, 8, 1]
    assert metadata["data"] == "digits"
    assert metadata["metrics"]["test_accuracy"] > 0.3


def test_train_streams_a_folder_with_the_data_and_accelerator_flags(
        tmp_path, capsys):
    from test_fit_streaming import write_folder

    root = write_folder(str(tmp_path / "photos"))
    (tmp_path / "photos" / "c1" / "broken.png").write_bytes(b"not a png")
    code = main(["train", "--data", root, "--depth", "1", "--filters", "4",
                 "--epochs", "1", "--batch-size", "2", "--verbose", "0",
                 "--validation-split", "0.2", "--test-split", "0.2",
                 "--image-size", "12", "--on-error", "skip",
                 "--color-mode", "rgb", "--precision", "float32",
                 "--jit-compile", "false", "--steps-per-execution", "2",
                 "--export", "photos_cnn", "--export-dir",
                 str(tmp_path / "exports")])
    out = capsys.readouterr().out
    assert code == 0, out
    metadata = json.loads((tmp_path / "exports" / "photos_cnn"
                           / "metadata.json").read_text())
    assert metadata["input_shape"] == [12, 12, 3]
    assert metadata["class_names"] == ["c0", "c1", "c2"]


def test_train_bad_data_is_one_line_exit_2(tmp_path, capsys):
    code = main(["train", "--data", str(tmp_path / "missing"), "--export",
                 "x", "--export-dir", str(tmp_path)])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith("kerascnn train: error: Argument `data` must be")
    assert "Received: data=" in err
    assert not (tmp_path / "x").exists()


def test_train_bad_name_is_refused(tmp_path, capsys):
    code = main(["train", "--data", "digits", "--export", "../up",
                 "--export-dir", str(tmp_path)])
    assert code == 2
    assert "Received: name='../up'" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["train", "--learning-rate", "fast"],
                                  ["train", "--schedule", "cosine"],
                                  ["quickstart", "--epochs", "0"]])
def test_bad_flag_values_are_usage_errors(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv + ["--data", "digits", "--export", "x"]
             if argv[0] == "train" else argv)
    assert info.value.code == 2
    assert "error: argument --" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["quickstart", "train", "predict"])
def test_help_shows_defaults_and_example(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"kerascnn {command}" in out
    if command != "predict":
        assert "(default:" in out


def test_top_level_help_lists_commands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("quickstart", "train", "predict"):
        assert command in out


def test_predict_top_k(quick_export, capsys, tmp_path, mnist5k):
    images, _ = mnist5k
    path = tmp_path / "d.png"
    Image.fromarray(images[2, :, :, 0]).save(path)
    capsys.readouterr()
    assert main(["predict", "--model", str(quick_export / "exports" / "qs"),
                 "--top", "3", str(path)]) == 0
    line = capsys.readouterr().out.strip()
    probabilities = [float(p.strip("(),")) for p in line.split()[2::2]]
    assert len(probabilities) == 3
    assert probabilities == sorted(probabilities, reverse=True)
    assert np.sum(probabilities) <= 1.0 + 1e-6


def test_model_flag_defaults_are_fits():
    """`kerascnn train`'s model flags default to what `fit` builds: build_cnn's
    own defaults under `training.defaults.MODEL`."""
    import argparse
    import inspect

    from kerascnn.cli import _common
    from kerascnn.models import build_cnn
    from kerascnn.training import defaults

    parser = argparse.ArgumentParser()
    _common.add_model_arguments(parser)
    args = parser.parse_args([])
    signature = inspect.signature(build_cnn).parameters
    for name, value in _common.model_kwargs_from_args(args).items():
        expected = defaults.MODEL.get(name, signature[name].default)
        assert value == expected, name
