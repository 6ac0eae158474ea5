"""Smoke test of benchmarks/bench_quickstart.py (--quick: both sides run)."""

import json
import pathlib
import sys

import pytest

_ROOT = str(pathlib.Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from benchmarks import bench_quickstart  # noqa: E402


@pytest.mark.slow
def test_quick_runs_both_sides_and_prints_the_ratio(tmp_path, capsys):
    results = bench_quickstart.main(["--quick", "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "quickstart: wall-time ratio quickstart / script: " in out
    with open(tmp_path / "bench_quickstart.json") as handle:
        stored = json.load(handle)
    assert len(stored["runs"]["quickstart"]) == len(stored["runs"]["script"])
    ratio = stored["ratios"]["quickstart: wall-time ratio quickstart / script"]
    assert ratio == pytest.approx(
        sum(r["wall_s"] for r in stored["runs"]["quickstart"])
        / sum(r["wall_s"] for r in stored["runs"]["script"]))
    assert all(0.0 <= r["accuracy"] <= 1.0 for side in stored["runs"].values()
               for r in side)
    assert results["goal_met"] is False  # --quick never claims the goal
