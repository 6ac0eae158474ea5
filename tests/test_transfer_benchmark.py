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


@pytest.mark.slow
def test_transfer_digits_benchmark_quick(tmp_path, capsys):
    from benchmarks import bench_transfer_digits as bench

    result = bench.main(["--quick", "--cache-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "ours" in out and "frozen" in out and "scratch" in out
    row = result["table"]["plain_10_seed0"]
    assert set(row) == {"ours", "frozen", "finetune", "scratch"}
    assert all(0.0 <= v <= 1.0 for v in row.values())
    ratio = result["ratios"]["accuracy ratio ours / best peer plain_10"]
    best = max(row[c] for c in ("frozen", "finetune", "scratch"))
    assert ratio == pytest.approx(row["ours"] / best)
    # The trained source model is cached for the next run.
    assert len(list(tmp_path.glob("source_plain_seed0_*.keras"))) == 1
