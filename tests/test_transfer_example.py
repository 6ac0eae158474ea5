"""Smoke test of examples/transfer_digits.py (quick mode)."""

import importlib.util
import os


def test_transfer_digits_example_quick(capsys):
    path = os.path.join(os.path.dirname(__file__), "..", "examples",
                        "transfer_digits.py")
    spec = importlib.util.spec_from_file_location("transfer_digits", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    results = module.main(["--quick"])
    out = capsys.readouterr().out
    assert "Cell: similar-small" in out and "Test accuracy" in out
    cell, accuracy, scratch = results[10]
    assert cell == "similar-small"
    assert 0.5 < accuracy <= 1.0 and 0.0 <= scratch <= 1.0
