"""Markdown tables from the experiments' JSON results (for docs/evidence.md).

    python -m benchmarks.evidence.report [--results-dir benchmarks/results]
        [--copy-png docs/evidence]

Prints, for every `NN_name.json` found, its table in Markdown with the
measurement's environment (UTC time, load average, CPUs), and optionally
copies the PNGs next to the docs.
"""

import argparse
import json
import os
import shutil

from benchmarks import _common
from benchmarks import evidence

BENCHMARK_FILES = ("bench_overhead", "bench_normalization", "benchmarks")


def section(name, stored):
    env = stored.get("environment", {})
    lines = [f"### {name}", ""]
    if "claim" in stored:
        lines += [f"Claim: {stored['claim']}.", ""]
    table = stored.get("table")
    if table:
        lines += [_common.markdown_table(table["headers"], table["rows"]), ""]
    if "ratios" in stored:
        lines += [_common.markdown_table(
            ["ratio", "value"],
            [[k, f"{v:.3f}" if isinstance(v, float) else v]
             for k, v in stored["ratios"].items()]), ""]
    lines.append(
        f"Measured {env.get('utc', '?')} UTC, {env.get('host_cpus', '?')} "
        f"CPUs, load average (1/5/15 min) "
        f"{env.get('load_average_1_5_15min', '?')}, TF {env.get('tensorflow', '?')}"
        f", Keras {env.get('keras', '?')}, "
        f"{'quick' if stored.get('quick') else 'default'} size, "
        f"{stored.get('seeds', stored.get('rounds', '?'))} seed(s)/round(s).")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results-dir", default=_common.DEFAULT_OUTPUT_DIR)
    parser.add_argument("--copy-png", default=None)
    args = parser.parse_args(argv)
    if not os.path.isdir(args.results_dir):
        from kerascnn import _validation

        _validation.fail("results_dir", "an existing folder", args.results_dir)
    out = []
    for name in evidence.EXPERIMENTS + BENCHMARK_FILES:
        path = os.path.join(args.results_dir, f"{name}.json")
        if not os.path.exists(path):
            out.append(f"### {name}\n\nNot measured (no {path}).")
            continue
        with open(path) as handle:
            out.append(section(name, json.load(handle)))
        png = os.path.join(args.results_dir, f"{name}.png")
        if args.copy_png and os.path.exists(png):
            os.makedirs(args.copy_png, exist_ok=True)
            shutil.copy(png, os.path.join(args.copy_png, f"{name}.png"))
    text = "\n\n".join(out)
    print(text)
    return text


if __name__ == "__main__":
    main()
