"""Smoke test of examples/tune_mnist5k.py (--quick)."""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tune_mnist5k_example_quick(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "tune_mnist5k", os.path.join(ROOT, "examples", "tune_mnist5k.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = module.main(["--quick", "--directory", str(tmp_path / "kt"),
                        "--export-dir", str(tmp_path / "exports")])
    out = capsys.readouterr().out
    assert code == 0
    assert "Best configuration:" in out
    tested = float(out.split("Test metrics: accuracy=")[1].split(",")[0])
    served = float(out.split("SavedModel's test accuracy is ")[1].split()[0])
    assert served == tested or abs(served - tested) < 1e-4
    assert os.path.isfile(tmp_path / "exports" / "mnist5k_tuned" /
                          "metadata.json")
