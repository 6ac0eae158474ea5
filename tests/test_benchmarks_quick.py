"""Smoke tests of the benchmarks and of the `python -m benchmarks` runner."""

import json
import os
import pathlib
import sys

import keras
import numpy as np
import pytest

# `benchmarks` is not installed with the package: import it from the
# repository root also under a bare `pytest` (which does not add the cwd).
_ROOT = str(pathlib.Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import __main__ as runner  # noqa: E402
from benchmarks import bench_epoch_end, bench_overhead  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_png(path):
    with open(path, "rb") as handle:
        assert handle.read(8) == PNG_MAGIC


@pytest.mark.slow
def test_overhead_quick(tmp_path):
    results = bench_overhead.main(["--quick", "--output-dir", str(tmp_path)])
    with open(tmp_path / "bench_overhead.json") as handle:
        stored = json.load(handle)
    _check_png(tmp_path / "bench_overhead.png")
    ratios = stored["ratios"]
    assert set(ratios) == {"overhead: throughput kerascnn / keras",
                           "overhead: end-to-end speed kerascnn / keras"}
    assert all(value > 0 for value in ratios.values())
    throughput = stored["throughput_images_per_s"]
    assert ratios["overhead: throughput kerascnn / keras"] == pytest.approx(
        throughput["kerascnn"] / throughput["keras"])
    assert stored["meets_target"] == (
        ratios["overhead: throughput kerascnn / keras"] >= 0.97)
    # Both paths trained the same network.
    assert stored["trainable_parameters"] == results["trainable_parameters"] > 0
    assert "Conv2D" in stored["layers"] and "BatchNormalization" in \
        stored["layers"]


@pytest.mark.slow
def test_epoch_end_quick(tmp_path):
    results = bench_epoch_end.main(["--quick", "--seeds", "1",
                                    "--output-dir", str(tmp_path)])
    with open(tmp_path / "bench_epoch_end.json") as handle:
        stored = json.load(handle)
    _check_png(tmp_path / "bench_epoch_end.png")
    fits = stored["fit_s"]
    assert set(fits) == {"kerascnn", "autotune on"}
    ratio = stored["ratios"]["epoch end: fit wall time kerascnn / "
                             "autotune on"]
    assert ratio == pytest.approx(sum(fits["kerascnn"])
                                  / sum(fits["autotune on"]))
    assert set(stored["iterator_free_s"]) == {"0.3 s, autotune on",
                                              "0.3 s, autotune off"}
    for run in stored["iterator_free_s"].values():
        # The iterator was read to its end (15 elements, 20 ms apart).
        assert run["read_s"][0] >= 0.3 and run["free_s"][0] >= 0
    assert results["images"] == {"train": 320, "validation": 80}


def test_hand_written_matches_build_cnn():
    from kerascnn import models

    x = np.random.default_rng(0).integers(0, 255, (8, 28, 28, 1)).astype(
        "uint8")
    ours = models.build_cnn((28, 28, 1), 10, depth=2, filters=4,
                            dense_units=8, normalization="batch",
                            head="flatten", dropout=0.25, normalizer=x,
                            verbose=False)
    keras.utils.set_random_seed(0)
    theirs = bench_overhead.hand_written((28, 28, 1), x, 4, 8)
    assert bench_overhead._trainable(ours) == bench_overhead._trainable(theirs)
    assert bench_overhead._trainable(ours)[0] == sum(
        int(np.prod(w.shape)) for w in theirs.trainable_weights)


@pytest.mark.slow
def test_runner_normalization_quick(tmp_path, capsys):
    summary = runner.main(["--quick", "--seeds", "1", "--only",
                           "bench_normalization", "--output-dir",
                           str(tmp_path)])
    assert list(summary) == ["bench_normalization"]
    ratios = summary["bench_normalization"]["ratios"]
    assert len(ratios) == 5 and all(v > 0 for v in ratios.values())
    with open(tmp_path / "bench_normalization.json") as handle:
        stored = json.load(handle)
    step = stored["train_step_ms"]
    assert ratios["norm: train step keras GN / BN"] == pytest.approx(
        step["keras_gn"] / step["batch"])
    _check_png(tmp_path / "bench_normalization.png")
    with open(tmp_path / "benchmarks.json") as handle:
        table = json.load(handle)
    assert table["benchmarks"]["bench_normalization"]["ratios"] == \
        pytest.approx(ratios)
    printed = capsys.readouterr().out
    assert "Benchmark ratios (quick size)" in printed
    assert "norm: train step kerascnn GN / keras GN" in printed


def test_ratios_from_text():
    text = ("target val_accuracy 0.9, max_trials 6\n"
            "time-to-target ratio naive / ours: >= 2.31\n"
            "speed-up ratio cached / uncached: 12.5\n"
            "no number here: ratio\n")
    assert runner.ratios_from_text(text) == {
        "time-to-target ratio naive / ours": ">= 2.31",
        "speed-up ratio cached / uncached": 12.5}
    assert runner.ratios_from_text("nothing") == {}


def test_runner_rejects_unknown_benchmark(tmp_path):
    with pytest.raises(ValueError, match="Received: only='nope'"):
        runner.main(["--quick", "--only", "nope", "--output-dir",
                     str(tmp_path)])
    assert not os.path.exists(tmp_path / "benchmarks.json")


def test_runner_reports_missing_module(tmp_path):
    status, ratios = runner.run_benchmark(
        "bench_not_written", False,
        type("Args", (), {"quick": True, "seeds": 1,
                          "output_dir": str(tmp_path)})())
    assert (status, ratios) == ("not present", {})
