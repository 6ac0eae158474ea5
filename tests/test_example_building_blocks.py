"""Smoke test of examples/building_blocks.py (kerascnn blocks in model.fit)."""

import importlib.util
import os

import keras
import pytest

from kerascnn import layers

_PATH = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "examples", "building_blocks.py")


def _load():
    spec = importlib.util.spec_from_file_location("building_blocks", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_building_blocks_quick(tmp_path, capsys):
    example = _load()
    assert example.main(["--quick", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train 480, validation 60, test 60" in out
    assert "trained 2 epochs" in out
    test_accuracy = float(out.split("test accuracy ")[1].split()[0])
    served_accuracy = float(out.split("served test accuracy ")[1].split()[0])
    assert served_accuracy == pytest.approx(test_accuracy)
    assert test_accuracy > 0.2  # above chance (0.1) after 2 tiny epochs
    for line in out.splitlines():
        if "max |difference|" in line:
            diff = float(line.split("max |difference| ")[1].split(",")[0])
            assert diff < 1e-4, line
    assert "MC dropout: std of the predicted class" in out
    reloaded = keras.saving.load_model(tmp_path / "building_blocks.keras")
    kinds = {type(layer) for layer in reloaded.layers}
    assert {layers.GroupNormalization, layers.DropConnectConv2D,
            layers.DropConnectDense, layers.InvertedDropout} <= kinds
    assert (tmp_path / "saved_model" / "saved_model.pb").exists()


def test_building_blocks_rejects_bad_epochs(capsys):
    with pytest.raises(SystemExit):
        _load().main(["--epochs", "0"])
    assert "Received: epochs=0" in capsys.readouterr().err
