"""Evidence experiments: one command per best practice kerascnn embodies.

Each module `NN_name.py` has `main(argv=None)` with `--quick`, `--seeds` and
`--output-dir`; it prints a table with the published figure beside ours and
writes `NN_name.json` and `NN_name.png`. `python -m benchmarks.evidence`
runs them all, or the ones named. Results: docs/evidence.md.
"""

import importlib

EXPERIMENTS = (
    "01_groupnorm",
    "02_cyclical_lr",
    "03_regularization",
    "04_dropout_forms",
    "05_transfer_table",
    "06_label_imbalance",
    "07_tuning",
    "08_transferability",
)


def get_experiment(name):
    """The module of experiment `name` (`"01_groupnorm"`, or `"01"`)."""
    from kerascnn import _validation

    matches = [e for e in EXPERIMENTS if name in (e, e[:2], e[3:])]
    if len(matches) != 1:
        _validation.fail("name", "one of " + ", ".join(EXPERIMENTS), name)
    return importlib.import_module(f"{__name__}.{matches[0]}")
