"""Smoke test of examples/workflow_mnist5k.py (the Python-API workflow)."""

import importlib.util
import json
import os

import pytest

_PATH = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "examples", "workflow_mnist5k.py")


def _load():
    spec = importlib.util.spec_from_file_location("workflow_mnist5k", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_workflow_quick(tmp_path, capsys):
    example = _load()
    code = example.main(["--quick", "--export-dir", str(tmp_path / "exp"),
                         "--plot-dir", str(tmp_path / "plots")])
    assert code == 0
    out = capsys.readouterr().out
    assert "600 images (28, 28, 1), imbalance ratio 1.00" in out
    assert "train 480, validation 60, test 60" in out
    assert "served test accuracy" in out
    metadata = json.loads(
        (tmp_path / "exp" / "mnist5k_workflow" / "metadata.json").read_text())
    assert metadata["class_names"] == [str(i) for i in range(10)]
    served = float(out.split("served test accuracy ")[1].split()[0])
    # The example prints the served accuracy to 4 decimals.
    assert served == pytest.approx(metadata["metrics"]["test_accuracy"],
                                   abs=5e-5)
    assert (tmp_path / "plots" / "loss_curves.png").exists()
