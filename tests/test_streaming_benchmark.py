"""Smoke test of benchmarks/bench_streaming.py (its --quick mode).

The measured commands (`kerascnn train` and the plain-Keras peer) each
import TensorFlow in a child process, minutes on a shared CI core, so here
they are replaced by small Python children of known memory: what is tested
is the benchmark itself (folder generation, the per-child peak memory from
`os.wait4`, the ratios, table and JSON), not the timings.
"""

import json
import os
import pathlib
import sys

import numpy as np
import pytest
from PIL import Image

_ROOT = str(pathlib.Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import bench_streaming  # noqa: E402

ALLOCATE = "import sys, numpy; a = numpy.ones({} * 2 ** 20, 'uint8'); " \
           "print(sys.argv)"


def test_make_folder_writes_balanced_rgb_pngs(tmp_path):
    written = bench_streaming.make_folder(str(tmp_path / "f"), 30, 32,
                                          processes=2)
    assert written == 30
    counts = [len(os.listdir(tmp_path / "f" / str(d))) for d in range(10)]
    assert counts == [3] * 10
    image = Image.open(next((tmp_path / "f" / "4").iterdir()))
    assert image.mode == "RGB" and image.size == (32, 32)
    assert np.asarray(image).std() > 0


def test_quick_mode_measures_children(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench_streaming, "QUICK",
                        {"sizes": (20, 40), "image_size": 16})

    def command(folder, export_dir, seed):
        megabytes = 120 if folder.endswith("_40") else 40
        return [sys.executable, "-c", ALLOCATE.format(megabytes), folder]

    real = bench_streaming.train_command
    monkeypatch.setattr(bench_streaming, "train_command", command)
    monkeypatch.setattr(bench_streaming, "PEER", ALLOCATE.format(10))
    data = tmp_path / "data"
    results = bench_streaming.main(["--quick", "--output-dir",
                                    str(tmp_path / "out"), "--data-dir",
                                    str(data)])
    assert sorted(os.listdir(data / "rgb16_40" / "3")) and len(
        list((data / "rgb16_20").rglob("*.png"))) == 20
    runs = results["runs"]
    assert set(runs) == {"kerascnn_20", "kerascnn_40", "keras_40"}
    # Each child's own peak: 120 MiB vs 40 MiB of ones, plus the interpreter.
    extra = (runs["kerascnn_40"]["peak_rss_bytes"]
             - runs["kerascnn_20"]["peak_rss_bytes"]) / 2 ** 20
    assert 60 < extra < 100
    memory, wall = results["ratios"].values()
    assert memory == pytest.approx(runs["kerascnn_40"]["peak_rss_bytes"]
                                   / runs["kerascnn_20"]["peak_rss_bytes"])
    assert wall == pytest.approx(runs["kerascnn_40"]["wall_s"]
                                 / runs["keras_40"]["wall_s"])
    assert results["meets_target"]["memory"] is (memory <= 1.2) is False
    with open(tmp_path / "out" / "bench_streaming.json") as handle:
        stored = json.load(handle)
    assert stored["ratios"] == pytest.approx(results["ratios"])
    assert stored["prescan"]["files"] == 40  # the larger folder, scanned
    assert 0 < stored["prescan"]["share_of_train_run"]
    assert stored["command"] == " ".join(command("FOLDER", "EXPORT_DIR",
                                                 0)[1:])
    assert " ".join(real("F", "E", 0)[1:]).startswith(
        "-m kerascnn train --data F --epochs 1")
    printed = capsys.readouterr().out
    assert "peak memory ratio 40 / 20 images:" in printed
    assert "wall time ratio kerascnn / keras (40 images):" in printed


def test_failing_command_is_reported(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_streaming, "QUICK",
                        {"sizes": (10, 20), "image_size": 16})
    monkeypatch.setattr(bench_streaming, "train_command", lambda *a: [
        sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"])
    with pytest.raises(RuntimeError, match=r"exited with 3:\n.*boom"):
        bench_streaming.main(["--quick", "--output-dir",
                              str(tmp_path / "out")])
