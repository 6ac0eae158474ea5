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

Every subpackage is imported on first use (PEP 562): ``import kerascnn``
imports neither TensorFlow, Keras, KerasTuner nor scikit-learn, and
``import kerascnn.layers`` imports Keras and the layers only.

A bare ``import kerascnn`` is still enough to load a saved model that uses
kerascnn objects (``kerascnn>Name`` in its config) with
``keras.saving.load_model``: as soon as Keras is imported (now, or later by
anyone), every kerascnn registered name is entered in Keras' global custom
objects (`keras.saving.get_custom_objects()`) as a small stand-in whose
`from_config` imports the module defining the class and builds the real
object. Importing that module replaces the stand-in with the class itself.

TensorFlow's C++ log lines (CUDA probing, CPU feature notes) are silenced by
setting ``TF_CPP_MIN_LOG_LEVEL=2`` before TensorFlow can be imported, unless
the variable is already set (``TF_CPP_MIN_LOG_LEVEL=0`` shows them again).
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys

# Before anything can import TensorFlow (which reads it once, at import).
# The user's own value, if any, is kept (and read by the CLI).
_TF_LOG_LEVEL_FROM_USER = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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

# Every Keras-serializable kerascnn object: registered name -> defining
# module. tests/test_lazy_imports.py checks this against what the modules
# actually register.
SERIALIZABLES = {
    "kerascnn>GroupNormalization": "kerascnn.layers.group_normalization",
    "kerascnn>InvertedDropout": "kerascnn.layers.dropout",
    "kerascnn>DropConnectDense": "kerascnn.layers.dropconnect",
    "kerascnn>DropConnectConv2D": "kerascnn.layers.dropconnect",
    "kerascnn>MaxNorm": "kerascnn.constraints.max_norm",
    "kerascnn>CyclicalLearningRate": "kerascnn.schedules.cyclical_learning_rate",
    "kerascnn>TriangularCyclicalLearningRate":
        "kerascnn.schedules.cyclical_learning_rate",
    "kerascnn>Triangular2CyclicalLearningRate":
        "kerascnn.schedules.cyclical_learning_rate",
    "kerascnn>ExponentialCyclicalLearningRate":
        "kerascnn.schedules.cyclical_learning_rate",
    "kerascnn>TrainingOnly": "kerascnn.models.cnn",
    "kerascnn>Augmentation": "kerascnn.data.augmentation",
    "kerascnn>BackbonePreprocessing": "kerascnn.transfer.preprocessing",
    "kerascnn>ImageViews": "kerascnn.transfer.views",
    "kerascnn>ViewAverage": "kerascnn.transfer.views",
    "kerascnn>DiscriminativeAdam": "kerascnn.transfer.discriminative",
    "kerascnn>DiscriminativeAdamW": "kerascnn.transfer.discriminative",
    "kerascnn>DiscriminativeSGD": "kerascnn.transfer.discriminative",
    "kerascnn>DiscriminativeRMSprop": "kerascnn.transfer.discriminative",
}

__all__ = list(_SUBPACKAGES) + list(_SHORTCUTS) + ["__version__"]


class _LazySerializable:
    """Stands in for a kerascnn class in Keras' custom objects until used.

    Keras' deserializer only needs `from_config` from a registered entry;
    this one imports the defining module (which registers the real class
    over this entry) and delegates to the real class.
    """

    def __init__(self, registered_name, module):
        self.registered_name = registered_name
        self.module = module
        self.__name__ = registered_name.split(">", 1)[1]

    def resolve(self):
        importlib.import_module(self.module)
        import keras

        cls = keras.saving.get_custom_objects().get(self.registered_name)
        if cls is None or isinstance(cls, _LazySerializable):
            raise ImportError(
                f"{self.module} did not register {self.registered_name}")
        return cls

    def from_config(self, config, *args, **kwargs):
        return self.resolve().from_config(config, *args, **kwargs)

    def __call__(self, *args, **kwargs):
        return self.resolve()(*args, **kwargs)

    def __repr__(self):
        return f"<lazy {self.registered_name} from {self.module}>"


def _register_lazily():
    """Enters every kerascnn registered name in Keras' custom objects."""
    import keras

    registry = keras.saving.get_custom_objects()
    for registered_name, module in SERIALIZABLES.items():
        registry.setdefault(registered_name,
                            _LazySerializable(registered_name, module))


class _RegisterAfterKerasImport(importlib.abc.MetaPathFinder):
    """One-shot import hook: registers kerascnn's names once Keras loads."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        _remove_hook()
        spec = importlib.util.find_spec("keras")
        if spec is not None and spec.loader is not None and hasattr(
                spec.loader, "exec_module"):
            spec.loader = _RegisteringLoader(spec.loader)
        return spec


class _RegisteringLoader(importlib.abc.Loader):
    """Wraps Keras' own loader; registers after the module has executed."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        try:
            _register_lazily()
        except Exception:  # never break `import keras`
            pass

    def __getattr__(self, name):
        return getattr(self._loader, name)


def _remove_hook():
    sys.meta_path[:] = [finder for finder in sys.meta_path
                        if not isinstance(finder, _RegisterAfterKerasImport)]


if "keras" in sys.modules:
    _register_lazily()
elif not any(isinstance(finder, _RegisterAfterKerasImport)
             for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterKerasImport())

from kerascnn import _validation  # noqa: E402  (light: NumPy only)


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
