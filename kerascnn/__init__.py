"""kerascnn: best practices for training convolutional networks, as Keras 3 objects.

Subpackages:
    layers, constraints, schedules, callbacks, utils: building blocks for a
        plain `model.fit`.
    datasets, data: offline datasets, splits, imbalance handling, metrics.
    models: `build_cnn`, a CNN builder that checks its shapes first.
    training: `fit`, one call that trains with good defaults.
    export: verified, atomic SavedModel export.
    transfer: keras.applications backbones and the transfer-learning table.
    tuning: KerasTuner search over filter size, stride, padding, depth, LR.

Every subpackage that defines Keras objects is imported here, so that after a
bare ``import kerascnn`` a saved model using them (``kerascnn>Name``) loads
with ``keras.saving.load_model``. The command line is imported on first use.
"""

import importlib

__version__ = "0.1.0"

_SUBPACKAGES = (
    "layers",
    "constraints",
    "schedules",
    "callbacks",
    "utils",
    "datasets",
    "data",
    "models",
    "training",
    "export",
    "transfer",
    "tuning",
    "cli",
)

# Top-level shortcuts: name -> module that defines it.
_SHORTCUTS = {
    "build_cnn": "kerascnn.models",
    "fit": "kerascnn.training",
    "find_learning_rate": "kerascnn.callbacks",
    "export_model": "kerascnn.export",
    "ArgumentError": "kerascnn._validation",
}

__all__ = list(_SUBPACKAGES) + list(_SHORTCUTS) + ["__version__"]

# Imported eagerly: these register serializable objects (layers, constraints,
# schedules, the augmentation block, backbone preprocessing, optimizers) or are
# needed by those that do.
from kerascnn import _validation  # noqa: E402
from kerascnn import layers  # noqa: E402
from kerascnn import constraints  # noqa: E402
from kerascnn import schedules  # noqa: E402
from kerascnn import callbacks  # noqa: E402
from kerascnn import utils  # noqa: E402
from kerascnn import datasets  # noqa: E402
from kerascnn import data  # noqa: E402
from kerascnn import models  # noqa: E402
from kerascnn import export  # noqa: E402
from kerascnn import training  # noqa: E402
from kerascnn import transfer  # noqa: E402
from kerascnn import tuning  # noqa: E402


def __getattr__(name):
    if name in _SUBPACKAGES:
        module = importlib.import_module(f"kerascnn.{name}")
        globals()[name] = module
        return module
    if name in _SHORTCUTS:
        value = getattr(importlib.import_module(_SHORTCUTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kerascnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
