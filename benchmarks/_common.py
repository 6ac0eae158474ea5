"""Helpers shared by the benchmarks and the evidence experiments.

Every experiment and benchmark is a module with `main(argv=None)` that
accepts `--quick` (a tiny size for the CI smoke tests), `--seeds` and
`--output-dir`, prints a table, and writes `<name>.json` (the numbers plus
how and when they were measured) and `<name>.png` into the output folder.
Argument errors come from `kerascnn._validation` in the package's form
("Argument `seeds` must be ... Received: seeds=...").
"""

import argparse
import datetime
import json
import logging
import math
import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from kerascnn import _validation  # noqa: E402

DEFAULT_OUTPUT_DIR = os.path.join("benchmarks", "results")


# -- command line --------------------------------------------------------------


def make_parser(name, description, default_seeds=1):
    """An argparse parser with the common `--quick/--seeds/--output-dir`."""
    parser = argparse.ArgumentParser(prog=name, description=description)
    parser.add_argument("--quick", action="store_true",
                        help="tiny size for smoke tests (seconds)")
    parser.add_argument("--seeds", default=None,
                        help=f"number of seeds (default {default_seeds}; "
                             "1 with --quick)")
    parser.set_defaults(default_seeds=default_seeds)
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR,
                        help="folder for the JSON and PNG "
                             f"(default {DEFAULT_OUTPUT_DIR})")
    return parser


def parse_int(name, text, min_value=1):
    """`int(text)` or an `ArgumentError` naming `name`."""
    try:
        value = int(str(text), 10)
    except ValueError:
        _validation.fail(name, f"an integer >= {min_value}", text)
    return _validation.check_int(name, value, min_value)


def parse_args(parser, argv):
    """Parses `argv`, validates the common options, creates the output dir."""
    args = parser.parse_args(argv)
    # tf.function retracing warnings are expected here: many small models.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    if args.seeds is None:
        args.seeds = 1 if args.quick else args.default_seeds
    else:
        args.seeds = parse_int("seeds", args.seeds)
    args.output_dir = check_output_dir(args.output_dir)
    return args


def check_output_dir(path):
    """Creates `path` if needed; refuses an existing file or an empty name."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path:
        _validation.fail("output_dir", "a folder path", path)
    if os.path.exists(path) and not os.path.isdir(path):
        _validation.fail("output_dir", "a folder path, not an existing file",
                         path)
    os.makedirs(path, exist_ok=True)
    return path


# -- results -------------------------------------------------------------------


def environment():
    """Where and when a run was measured (stored with every result)."""
    import keras
    import tensorflow as tf

    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    gpus = tf.config.list_physical_devices("GPU")
    return {
        "utc": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M:%S"),
        "host_cpus": os.cpu_count(),
        "load_average_1_5_15min": load,
        "gpus": [g.name for g in gpus],
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


def write_json(output_dir, name, results):
    """Writes `results` (plus the environment) to `<output_dir>/<name>.json`."""
    results = dict(results)
    results.setdefault("environment", environment())
    path = os.path.join(output_dir, f"{name}.json")
    with open(path, "w") as handle:
        json.dump(_jsonable(results), handle, indent=2, sort_keys=False)
        handle.write("\n")
    return path


def format_table(headers, rows, title=None):
    """A fixed-width text table (numbers formatted by the caller)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(h.ljust(w) for h, w in zip(cells[0], widths)))
    lines.append("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    return "\n".join(lines)


def markdown_table(headers, rows):
    """The same table in Markdown (for docs/evidence.md)."""
    def cell(value):
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(map(cell, headers)) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(map(cell, row)) + " |")
    return "\n".join(lines)


def pyplot():
    """matplotlib's pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def save_figure(figure, output_dir, name):
    path = os.path.join(output_dir, f"{name}.png")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=90)
    pyplot().close(figure)
    return path


def mean_std(values):
    values = np.asarray(values, np.float64)
    if values.size == 0:
        return float("nan"), float("nan")
    std = float(values.std(ddof=1)) if values.size > 1 else 0.0
    return float(values.mean()), std


def fmt_mean_std(values, scale=1.0, digits=2):
    mean, std = mean_std(np.asarray(values, np.float64) * scale)
    if len(values) > 1:
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    return f"{mean:.{digits}f}"


class Stopwatch:
    """`with Stopwatch() as s: ...` then `s.seconds`."""

    def __enter__(self):
        self.start = time.perf_counter()
        self.seconds = None
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        return False


# -- data ----------------------------------------------------------------------


def per_class_subset(x, y, per_class, seed, classes=None):
    """At most `per_class` random samples of each class (sorted by index)."""
    rng = np.random.default_rng(seed)
    classes = np.unique(y) if classes is None else classes
    keep = []
    for c in classes:
        index = np.flatnonzero(y == c)
        keep.append(rng.permutation(index)[:per_class])
    keep = np.sort(np.concatenate(keep))
    return x[keep], y[keep]


def mnist5k_splits(seed=42, per_class=None, test_split=0.2,
                   validation_split=0.1):
    """mnist5k (optionally `per_class` images of each digit), split with
    `kerascnn.data.split_dataset` (stratified, seeded). Pixels stay raw
    uint8; models put a `Normalization` layer inside."""
    from kerascnn import data, datasets

    x, y = datasets.load_mnist5k()
    if per_class is not None:
        x, y = per_class_subset(x, y, per_class, seed)
    return data.split_dataset(x, y, validation_split=validation_split,
                              test_split=test_split, seed=seed)


def compile_classifier(model, optimizer="adam", learning_rate=1e-3,
                       run_eagerly=False):
    import keras

    if isinstance(optimizer, str):
        optimizer = keras.optimizers.get(
            {"class_name": optimizer,
             "config": {"learning_rate": learning_rate}})
    model.compile(optimizer=optimizer,
                  loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], run_eagerly=run_eagerly)
    return model


def accuracy(model, x, y, batch_size=256):
    probabilities = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(probabilities, -1) == y))


def banner(name, args):
    mode = "quick" if args.quick else "default"
    print(f"== {name} ({mode} size, {args.seeds} seed(s)) -> "
          f"{args.output_dir}", flush=True)


def report(name, args, results, table, plot, title):
    """Ends an experiment: prints its table, writes its PNG and JSON.

    `table(results)` returns `(headers, rows)`; `plot(results, output_dir)`
    returns the PNG's path. The table, the PNG's and the JSON's paths are
    added to `results`, which is returned.
    """
    headers, rows = table(results)
    print(format_table(headers, rows, title=title))
    results["table"] = {"headers": headers, "rows": rows}
    results["png"] = plot(results, args.output_dir)
    results["json"] = write_json(args.output_dir, name, results)
    return results
