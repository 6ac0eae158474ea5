"""`benchmarks/bench_gpu.py`: says so without a GPU; `--quick` runs its code."""

import json
import pathlib
import sys

import pytest

_ROOT = str(pathlib.Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import __main__ as runner  # noqa: E402
from benchmarks import bench_gpu  # noqa: E402
from kerascnn._validation import ArgumentError  # noqa: E402


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(bench_gpu, "gpu_devices", lambda: ([], []))


def test_without_gpu_says_so_measures_and_writes_nothing(no_gpu, tmp_path,
                                                          capsys):
    results = bench_gpu.main(["--output-dir", str(tmp_path)])
    assert results == {"gpu": False, "measured": False, "ratios": {}}
    assert "No GPU is visible" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_runner_runs_it_by_short_name(no_gpu, tmp_path):
    summary = runner.main(["gpu", "--output-dir", str(tmp_path)])
    assert list(summary) == ["bench_gpu"]
    assert summary["bench_gpu"]["ratios"] == {}
    assert summary["bench_gpu"]["status"].startswith("ran in")


def test_rejects_unknown_backbone_before_measuring(tmp_path):
    with pytest.raises(ArgumentError, match="Received: backbone='vgg16'"):
        bench_gpu.main(["--quick", "--backbone", "vgg16", "--output-dir",
                        str(tmp_path)])
    with pytest.raises(ArgumentError, match="Received: settings='fp8'"):
        bench_gpu.main(["--quick", "--settings", "fp8", "--output-dir",
                        str(tmp_path)])


@pytest.mark.slow
@pytest.mark.timeout(1200)  # five small fits; minutes on a busy 2-core CPU
def test_quick_runs_every_measurement_on_cpu(no_gpu, tmp_path):
    # Mixed precision and XLA together: both code paths, fewer traces.
    results = bench_gpu.main(["--quick", "--settings", "mixed_float16 + XLA",
                              "--output-dir", str(tmp_path)])
    assert results["measured"] and not results["gpu"]
    assert "not GPU figures" in results["where"]
    cnn, backbone = results["throughput_images_per_s"].values()
    assert list(cnn) == ["float32", "mixed_float16 + XLA"]
    assert list(backbone) == ["float32"]
    assert all(v > 0 for v in [*cnn.values(), *backbone.values()])
    ratios = results["ratios"]
    assert ratios["gpu: images/s ratio mixed_float16 + XLA / float32 "
                  "(build_cnn)"] == pytest.approx(
        cnn["mixed_float16 + XLA"] / cnn["float32"])
    scaling = results["scaling"]
    assert [row["replicas"] for row in scaling] == list(
        range(1, len(scaling) + 1))
    assert scaling[0]["efficiency"] == 1.0
    for row in scaling[1:]:
        assert row["efficiency"] == pytest.approx(
            row["images_per_s"] / (row["replicas"]
                                   * scaling[0]["images_per_s"]))
    # Without a GPU the estimate is reported, and no peak is made up.
    for entry in results["memory"].values():
        assert entry["estimate_bytes"] > 0 and entry["peak_bytes"] is None
    assert not any("memory" in name for name in ratios)
    with open(tmp_path / "bench_gpu.json") as handle:
        assert json.load(handle)["quick"] is True
    assert (tmp_path / "bench_gpu.png").read_bytes()[:4] == b"\x89PNG"
