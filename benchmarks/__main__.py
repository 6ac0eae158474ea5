"""`python -m benchmarks [--quick] [--seeds N] [--output-dir D] [--only a,b]`.

Runs the benchmarks one after another in this process and prints one table
of the ratios each measured:

- `bench_overhead`: kerascnn `build_cnn` + `training.fit` vs hand-written
  Keras + `model.fit`, throughput ratio (target >= 0.97);
- `bench_normalization`: kerascnn GroupNorm vs Keras GroupNorm vs
  BatchNorm, step-time ratios;
- `bench_epoch_end`: `model.fit` on kerascnn's `tf.data` pipelines vs the
  same with tf.data's autotuning on (the end-of-epoch stall), time ratio;
- `bench_transfer_feature_cache` and `bench_tuning` (from the transfer and
  tuning issues), when present;
- `bench_gpu`: float32 / mixed precision / XLA, MirroredStrategy scaling
  and memory on GPUs (says so and measures nothing without one);
  `python -m benchmarks gpu` runs it alone.

A benchmark's `main(argv)` either returns a dict with `"ratios"`
(name -> float), or prints lines ``<something> ratio <...>: <value>``,
which are read from its output. The table is also written to
`<output-dir>/benchmarks.json`.
"""

import contextlib
import importlib
import importlib.util
import io
import re
import sys

from benchmarks import _common

# (module, accepts the common --seeds/--output-dir options)
BENCHMARKS = (
    ("bench_overhead", True),
    ("bench_normalization", True),
    ("bench_epoch_end", True),
    ("bench_transfer_feature_cache", False),
    ("bench_tuning", False),
    ("bench_gpu", True),
)
_RATIO_LINE = re.compile(
    r"^(?P<name>[^:\n]*ratio[^:\n]*):\s*(?P<bound>>=\s*|<=\s*)?"
    r"(?P<value>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)", re.IGNORECASE | re.M)


class _Tee(io.TextIOBase):
    """Writes to the real stdout and keeps a copy."""

    def __init__(self, stream):
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text):
        self.stream.write(text)
        self.copy.write(text)
        return len(text)

    def flush(self):
        self.stream.flush()


def ratios_from_text(text):
    """`{name: value}` from lines like ``time ratio naive / ours: >= 2.31``."""
    found = {}
    for match in _RATIO_LINE.finditer(text):
        name = match.group("name").strip()
        bound = (match.group("bound") or "").strip()
        found[name] = (f"{bound} " if bound else "") + match.group("value")
    return {k: (float(v) if not v[0] in "<>" else v) for k, v in found.items()}


def run_benchmark(name, common_options, args):
    """Runs one benchmark; returns `(status, {ratio name: value})`."""
    module_name = f"benchmarks.{name}"
    if importlib.util.find_spec(module_name) is None:
        return "not present", {}
    module = importlib.import_module(module_name)
    argv = ["--quick"] if args.quick else []
    if common_options:
        argv += ["--seeds", str(args.seeds), "--output-dir", args.output_dir]
    tee = _Tee(sys.stdout)
    with _common.Stopwatch() as watch, contextlib.redirect_stdout(tee):
        returned = module.main(argv)
    if isinstance(returned, dict) and "ratios" in returned:
        ratios = dict(returned["ratios"])
    else:
        ratios = ratios_from_text(tee.copy.getvalue())
    status = f"ran in {watch.seconds:.0f} s"
    if isinstance(returned, int) and returned != 0:
        status += f" (exit code {returned})"
    return status, ratios


def main(argv=None):
    parser = _common.make_parser("benchmarks", __doc__.splitlines()[0],
                                 default_seeds=3)
    parser.add_argument("--only", default=None,
                        help="comma-separated benchmark names (default all)")
    parser.add_argument("short_names", nargs="*", metavar="NAME",
                        help="benchmarks by short name, e.g. `gpu` for "
                             "bench_gpu (same as --only)")
    args = _common.parse_args(parser, argv)
    if args.short_names:
        args.only = ",".join(filter(None, [args.only] + [
            n if n.startswith("bench_") else f"bench_{n}"
            for n in args.short_names]))
    names = [name for name, _ in BENCHMARKS]
    if args.only is not None:
        chosen = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in chosen if n not in names]
        if not chosen or unknown:
            from kerascnn import _validation

            _validation.fail("only", "comma-separated names among "
                             + ", ".join(names), args.only)
        names = chosen
    rows, summary = [], {}
    for name, common_options in BENCHMARKS:
        if name not in names:
            continue
        print(f"\n## {name}", flush=True)
        status, ratios = run_benchmark(name, common_options, args)
        summary[name] = {"status": status, "ratios": ratios}
        if not ratios:
            rows.append([name, "(no ratio)", "", status])
        for ratio_name, value in ratios.items():
            text = value if isinstance(value, str) else f"{value:.3f}"
            rows.append([name, ratio_name, text, status])
    print()
    print(_common.format_table(["benchmark", "ratio", "value", "status"],
                               rows, title="Benchmark ratios ("
                               + ("quick" if args.quick else "default")
                               + " size)"))
    _common.write_json(args.output_dir, "benchmarks",
                       {"quick": args.quick, "benchmarks": summary})
    return summary


if __name__ == "__main__":
    main()
