"""Runs the evidence experiments, all or the named ones.

    python -m benchmarks.evidence [NAME ...] [--quick] [--seeds N]
        [--output-dir D]

Runs every evidence experiment (or the named ones, e.g. `01_groupnorm` or
`01`) one after another with the same options.
"""

import sys

from benchmarks import _common
from benchmarks import evidence


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    names = [a for a in argv if not a.startswith("-") and not _is_value(argv, a)]
    options = [a for a in argv if a not in names]
    parser = _common.make_parser("benchmarks.evidence", __doc__.splitlines()[0])
    _common.parse_args(parser, options)  # validate before the first run
    modules = [evidence.get_experiment(n) for n in (names or evidence.EXPERIMENTS)]
    results = {}
    for module in modules:
        with _common.Stopwatch() as watch:
            results[module.NAME] = module.main(options)
        print(f"-- {module.NAME} took {watch.seconds:.0f} s\n", flush=True)
    return results


def _is_value(argv, item):
    """Whether `item` is the value of a preceding `--seeds`/`--output-dir`."""
    index = argv.index(item)
    return index > 0 and argv[index - 1] in ("--seeds", "--output-dir")


if __name__ == "__main__":
    main()
