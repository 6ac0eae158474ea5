"""Smoke tests of the evidence experiments at their `--quick` size.

Each experiment runs end to end on a few dozen images and must write a JSON
of sane numbers and a PNG; the helpers are checked on hand-made inputs.
"""

import importlib
import json
import os
import pathlib
import sys

import numpy as np
import pytest

# `benchmarks` is not installed with the package: import it from the
# repository root also under a bare `pytest` (which does not add the cwd).
_ROOT = str(pathlib.Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import _common  # noqa: E402
from benchmarks import evidence  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _module(name):
    return importlib.import_module(f"benchmarks.evidence.{name}")


def _run_quick(name, tmp_path):
    results = _module(name).main(["--quick", "--output-dir", str(tmp_path)])
    json_path = tmp_path / f"{name}.json"
    png_path = tmp_path / f"{name}.png"
    assert results["json"] == str(json_path)
    assert results["png"] == str(png_path)
    with open(png_path, "rb") as handle:
        assert handle.read(8) == PNG_MAGIC
    assert os.path.getsize(png_path) > 2000
    with open(json_path) as handle:
        stored = json.load(handle)
    assert stored["quick"] is True and stored["seeds"] == 1
    assert stored["environment"]["utc"].startswith("20")
    assert stored["table"]["rows"], "the printed table must have rows"
    return stored


def _in_unit(values):
    values = np.asarray(values, np.float64)
    return values.size > 0 and np.all((values >= 0.0) & (values <= 1.0))


@pytest.mark.slow
def test_groupnorm_quick(tmp_path):
    stored = _run_quick("01_groupnorm", tmp_path)
    assert stored["batch_sizes"] == [2, 16]
    for kind in stored["norms"]:
        for batch in ("2", "16"):
            assert _in_unit(stored["test_error"][kind][batch])
    # The paper's figures travel with ours.
    assert stored["table"]["rows"][0][-2:] == [34.7, 24.1]


@pytest.mark.slow
def test_cyclical_lr_quick(tmp_path):
    stored = _run_quick("02_cyclical_lr", tmp_path)
    run = stored["runs"][0]
    low, high = run["bounds"]
    assert 0 < low < high
    for curve in run["curves"].values():
        assert len(curve) == stored["epochs"] and _in_unit(curve)
    reached = run["clr_epochs_to_fixed_final"]
    assert reached is None or 1 <= reached <= stored["epochs"]
    assert run["finder"]["learning_rates"][0] == pytest.approx(1e-5)


@pytest.mark.slow
def test_regularization_quick(tmp_path):
    stored = _run_quick("03_regularization", tmp_path)
    assert set(stored["test_error"]) == {"L2", "max-norm", "dropout + L2",
                                         "dropout + max-norm"}
    for errors in stored["test_error"].values():
        assert len(errors) == 1 and _in_unit(errors)
    assert sorted(row[4] for row in stored["table"]["rows"]) == [1, 2, 3, 4]


def test_dropout_forms_quick(tmp_path):
    stored = _run_quick("04_dropout_forms", tmp_path)
    expected = stored["expected"]
    assert expected["inverted"]["test_output_over_input"] == pytest.approx(1.0)
    assert expected["test_time_scaling"]["test_output_over_input"] == \
        pytest.approx(0.5)
    for form in ("inverted", "test_time_scaling"):
        # 200 masks x 512 units: the mean ratio is within a few percent.
        assert expected[form]["mean_train_over_test"] == pytest.approx(
            1.0, abs=0.05)
        assert expected[form]["kept_fraction"] == pytest.approx(0.5, abs=0.02)
    run = stored["runs"][0]
    assert run["same_initial_weights"] is True
    assert _in_unit(list(run["test_accuracy"].values()))
    # Rewriting the trained inverted network in test-time-scaling form is
    # the same function.
    assert run["converted_max_abs_difference"] < 1e-6
    assert run["converted_class_agreement"] == 1.0


@pytest.mark.slow
def test_transfer_table_quick(tmp_path):
    stored = _run_quick("05_transfer_table", tmp_path)
    (row,) = stored["rows"]
    assert row["labels_per_class"] == 10
    assert set(row["accuracy"]) == set(stored["plans"])
    assert _in_unit(list(row["accuracy"].values()))
    plans = _module("05_transfer_table").STRATEGY_TO_PLAN.values()
    assert row["recommended"] in plans
    assert set(row["best"].split(" = ")) <= set(stored["plans"])
    top = max(row["accuracy"].values())
    assert all(row["accuracy"][p] == top for p in row["best"].split(" = "))
    assert -1.0 <= row["cosine"] <= 1.0


@pytest.mark.slow
def test_label_imbalance_quick(tmp_path):
    stored = _run_quick("06_label_imbalance", tmp_path)
    scores = stored["scores"]["0.1"]
    assert set(scores) == set(stored["methods"])
    for runs in scores.values():
        (run,) = runs
        assert _in_unit([run["roc_auc"], run["macro_f1"],
                         run["minority_recall"], run["accuracy"]])
    # Every method trained the same number of optimizer steps.
    assert len({runs[0]["steps"] for runs in scores.values()}) == 1
    assert stored["imbalance_ratio"]["0.1"] >= 5


@pytest.mark.slow
def test_tuning_quick(tmp_path):
    stored = _run_quick("07_tuning", tmp_path)
    run = stored["runs"][0]
    for key in ("hyperband", "random", "defaults"):
        assert _in_unit([run[key]["test_accuracy"],
                         run[key]["best_val_accuracy"]])
        assert run[key]["epochs_trained"] >= 1
    assert run["epoch_budget"] == run["hyperband"]["epochs_trained"]
    # KerasTuner's trial folders went to a temporary folder, now removed.
    assert stored["work_directory_removed"] is True
    assert sorted(os.listdir(tmp_path)) == ["07_tuning.json", "07_tuning.png"]


@pytest.mark.slow
def test_08_transferability_quick(tmp_path):
    stored = _run_quick("08_transferability", tmp_path)
    module = _module("08_transferability")
    assert stored["candidates"] == [module.candidate_name(*c)
                                    for c in module.QUICK_CANDIDATES]
    rows = stored["rows"]
    assert [r["candidate"] for r in rows] == stored["candidates"]
    assert _in_unit([r["accuracy"] for r in rows])
    for r in rows:
        assert r["leep"] <= 0.0 and np.isfinite(r["logme"])
        assert r["logme_best_block"] >= r["logme"] - 1e-9  # top is a block
    (entry,) = stored["kendall"]
    for score in module.SCORES:
        tau = entry[score]["tau"]
        assert tau is None or -1.0 <= tau <= 1.0
        assert entry[score]["picked"] in stored["candidates"]
    assert entry["best_accuracy"] == max(r["accuracy"] for r in rows)


def test_08_transferability_kendall_and_arguments(tmp_path):
    module = _module("08_transferability")
    assert module.kendall([1, 2, 3, 4], [0.1, 0.2, 0.3, 0.4])["tau"] == \
        pytest.approx(1.0)
    assert module.kendall([1, 2, 3], [0.5, 0.5, 0.5])["tau"] is None
    assert len(module.CANDIDATES) >= 6
    with pytest.raises(ValueError, match="Received: per_class=0"):
        module.main(["--per-class", "10,0", "--output-dir",
                     str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


# -- arguments and helpers (no training) --------------------------------------


@pytest.mark.parametrize("bad, shown", [("0", "0"), ("-2", "-2"),
                                        ("two", "'two'")])
def test_rejects_bad_seeds(tmp_path, bad, shown):
    with pytest.raises(ValueError, match=f"Received: seeds={shown}"):
        _module("04_dropout_forms").main(
            ["--quick", "--seeds", bad, "--output-dir", str(tmp_path)])


def test_rejects_output_dir_that_is_a_file(tmp_path):
    path = tmp_path / "taken"
    path.write_text("x")
    with pytest.raises(ValueError, match="Received: output_dir="):
        _module("03_regularization").main(["--quick", "--output-dir",
                                           str(path)])
    assert path.read_text() == "x"


def test_experiment_lookup():
    assert evidence.get_experiment("01").NAME == "01_groupnorm"
    assert evidence.get_experiment("tuning").NAME == "07_tuning"
    assert evidence.get_experiment("06_label_imbalance").NAME == \
        "06_label_imbalance"
    assert len(evidence.EXPERIMENTS) == 8
    assert evidence.get_experiment("08").NAME == "08_transferability"
    with pytest.raises(ValueError, match="Received: name='99'"):
        evidence.get_experiment("99")


def test_runner_validates_before_running(tmp_path):
    from benchmarks.evidence import __main__ as runner

    with pytest.raises(ValueError, match="Received: name='nope'"):
        runner.main(["nope", "--quick", "--output-dir", str(tmp_path)])
    with pytest.raises(ValueError, match="Received: seeds=0"):
        runner.main(["04", "--seeds", "0", "--output-dir", str(tmp_path)])
    assert os.listdir(tmp_path) == []


def test_first_epoch_reaching():
    first = _module("02_cyclical_lr").first_epoch_reaching
    assert first([0.5, 0.7, 0.9, 0.95], 0.9) == 3
    assert first([0.5, 0.7], 0.9) is None
    assert first([0.9], 0.9) == 1


def test_make_imbalanced_cuts_even_digits():
    module = _module("06_label_imbalance")
    y = np.repeat(np.arange(10), 100)
    x = np.arange(1000)
    x_cut, y_cut = module.make_imbalanced(x, y, 0.05, seed=0)
    counts = np.bincount(y_cut)
    assert counts.tolist() == [5, 100] * 5
    assert np.array_equal(y[x_cut], y_cut)  # images follow their labels


def test_per_class_subset_and_tables():
    y = np.repeat(np.arange(3), 10)
    x = np.arange(30)
    xs, ys = _common.per_class_subset(x, y, 4, seed=1)
    assert np.bincount(ys).tolist() == [4, 4, 4]
    assert np.array_equal(y[xs], ys)
    text = _common.format_table(["a", "bb"], [[1, 2.5], ["long", 3]])
    assert text.splitlines()[0] == "a     bb "
    assert text.splitlines()[2] == "1     2.5"
    assert _common.markdown_table(["a"], [[1]]) == "| a |\n|---|\n| 1 |"
    assert _common.markdown_table(["x"], [["|d|"]]).endswith("| \\|d\\| |")
    assert _common.fmt_mean_std([0.01, 0.03], 100.0) == "2.00 ± 1.41"
    assert _common.fmt_mean_std([0.5]) == "0.50"


def test_groupnorm_rejects_unknown_optimizer(tmp_path):
    with pytest.raises(ValueError, match="Received: optimizer='rmsprop'"):
        _module("01_groupnorm").main(["--quick", "--optimizer", "rmsprop",
                                      "--output-dir", str(tmp_path)])
