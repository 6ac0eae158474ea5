"""Smoke test of benchmarks/bench_transfer_feature_cache.py (quick size)."""

import pytest


@pytest.mark.slow
def test_feature_cache_benchmark_quick(capsys):
    from benchmarks import bench_transfer_feature_cache as bench

    result = bench.main(["--quick", "--epochs", "1"])
    out = capsys.readouterr().out
    assert "speed ratio plain / cached:" in out
    ratio = result["ratios"]["speed ratio plain / cached"]
    assert ratio == pytest.approx(result["plain_seconds"]
                                  / result["cached_seconds"])
    # Same head, same initial weights, same epochs: the same accuracy.
    assert result["cached_accuracy"] == pytest.approx(
        result["plain_accuracy"], abs=0.05)
