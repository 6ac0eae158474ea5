"""Training workflow: `fit`, one call from data to a tested, diagnosed
model.

The names are imported on first use, so that the command line can read the
option vocabularies without importing TensorFlow.
"""

import importlib

_NAMES = {
    "BALANCE_OPTIONS": "kerascnn.core.settings",
    "SCHEDULES": "kerascnn.core.settings",
    "FitResult": "kerascnn.core.results",
    "fit": "kerascnn.training.fit",
}

__all__ = ["BALANCE_OPTIONS", "FitResult", "SCHEDULES", "fit"]


def __getattr__(name):
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
