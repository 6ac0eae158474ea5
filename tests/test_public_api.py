"""One test over the whole public API (STYLE rule 14).

For every subpackage: `__all__` is pinned and every name in it exists. For
every Keras object kerascnn defines (layers, constraints, schedules,
optimizers): it is registered as `kerascnn>Name`, its config round-trips, and
a model using it survives `.keras` save/load with unchanged outputs after a
bare ``import kerascnn`` (which must register everything).
"""

import importlib
import inspect

import keras
import numpy as np
import pytest

import kerascnn

PUBLIC = {
    "layers": {"DropConnectConv2D", "DropConnectDense", "GroupNormalization",
               "InvertedDropout", "mc_predict"},
    "constraints": {"MaxNorm"},
    "schedules": {"CyclicalLearningRate", "TriangularCyclicalLearningRate",
                  "Triangular2CyclicalLearningRate",
                  "ExponentialCyclicalLearningRate"},
    "callbacks": {"EarlyStopping", "LearningRateFinder", "find_learning_rate",
                  "LRFinderResult", "LossCurveDiagnosis", "diagnose_history",
                  "Diagnosis"},
    "utils": {"conv_output_size", "estimate_memory"},
    "datasets": {"load", "load_mnist5k", "load_digits", "load_directory",
                 "DATASETS"},
    "data": {"split_dataset", "Splits", "class_weights", "imbalance_ratio",
             "detect_imbalance", "make_dataset", "augmentation",
             "normalization_layer", "classification_report",
             "ClassificationReport", "Augmentation"},
    "models": {"build_cnn", "cnn_output_shapes"},
    "training": {"fit", "FitResult"},
    "export": {"export_model", "load_export", "predict_export"},
    "transfer": {"list_backbones", "recommend", "fit", "BackbonePreprocessing",
                 "measure_similarity"},
    "tuning": {"CNNHyperModel", "search", "SearchResult"},
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_all_is_pinned_and_importable(package):
    module = importlib.import_module(f"kerascnn.{package}")
    exported = set(module.__all__)
    missing = PUBLIC[package] - exported
    assert not missing, f"kerascnn.{package}.__all__ lacks {sorted(missing)}"
    for name in module.__all__:
        assert hasattr(module, name), f"kerascnn.{package}.{name} is missing"
    assert getattr(kerascnn, package) is module


def test_top_level_shortcuts():
    assert kerascnn.build_cnn is kerascnn.models.build_cnn
    assert kerascnn.fit is kerascnn.training.fit
    assert kerascnn.export_model is kerascnn.export.export_model
    assert issubclass(kerascnn.ArgumentError, ValueError)


def _keras_classes():
    bases = (keras.layers.Layer, keras.constraints.Constraint,
             keras.optimizers.schedules.LearningRateSchedule,
             keras.optimizers.Optimizer)
    for package in sorted(PUBLIC):
        module = importlib.import_module(f"kerascnn.{package}")
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, bases):
                yield obj


KERAS_CLASSES = sorted(set(_keras_classes()), key=lambda c: c.__name__)


@pytest.mark.parametrize("cls", KERAS_CLASSES, ids=lambda c: c.__name__)
def test_registered_under_kerascnn(cls):
    assert keras.saving.get_registered_name(cls) == f"kerascnn>{cls.__name__}"
    assert keras.saving.get_registered_object(
        f"kerascnn>{cls.__name__}") is cls


def _examples():
    L, C, S = kerascnn.layers, kerascnn.constraints, kerascnn.schedules
    return {
        "GroupNormalization": lambda: L.GroupNormalization(groups=2),
        "InvertedDropout": lambda: L.InvertedDropout(0.3, seed=1),
        "DropConnectDense": lambda: L.DropConnectDense(3, rate=0.4, seed=1),
        "DropConnectConv2D": lambda: L.DropConnectConv2D(2, 3, rate=0.4,
                                                         seed=1),
        "MaxNorm": lambda: C.MaxNorm(2.5),
        "CyclicalLearningRate": lambda: S.TriangularCyclicalLearningRate(
            1e-4, 1e-2, 10),
        "TriangularCyclicalLearningRate":
            lambda: S.TriangularCyclicalLearningRate(1e-4, 1e-2, 10),
        "Triangular2CyclicalLearningRate":
            lambda: S.Triangular2CyclicalLearningRate(1e-4, 1e-2, 10),
        "ExponentialCyclicalLearningRate":
            lambda: S.ExponentialCyclicalLearningRate(1e-4, 1e-2, 10,
                                                      gamma=0.99),
        "Augmentation": lambda: kerascnn.data.augmentation("digits", seed=1),
        "BackbonePreprocessing":
            lambda: kerascnn.transfer.BackbonePreprocessing(mode="caffe"),
        "ImageViews": lambda: kerascnn.transfer.ImageViews(
            kerascnn.transfer.preset_views("digits", (28, 28, 1)).transforms,
            fill_mode="constant", include_original=False),
        "ViewAverage": lambda: kerascnn.transfer.ViewAverage(5),
    }


@pytest.mark.parametrize("cls", KERAS_CLASSES, ids=lambda c: c.__name__)
def test_config_round_trip(cls):
    examples = _examples()
    if cls.__name__ not in examples:
        if issubclass(cls, keras.optimizers.Optimizer):
            obj = cls(learning_rate=0.01)
        else:
            pytest.fail(f"add an example instance of {cls.__name__}")
    else:
        obj = examples[cls.__name__]()
    config = obj.get_config()
    clone = type(obj).from_config(config)
    assert clone.get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(obj))
    assert type(restored) is type(obj)
    assert restored.get_config() == config
    if isinstance(obj, keras.optimizers.schedules.LearningRateSchedule):
        for step in (0, 7, 10, 25):
            np.testing.assert_allclose(float(obj(step)), float(clone(step)))


def test_model_with_every_block_saves_and_reloads(tmp_path):
    L, C, S = kerascnn.layers, kerascnn.constraints, kerascnn.schedules
    inputs = keras.Input((8, 8, 1))
    x = kerascnn.transfer.BackbonePreprocessing(mode="tf")(inputs)
    x = L.DropConnectConv2D(4, 3, rate=0.3, padding="same",
                            kernel_constraint=C.MaxNorm(3.0), seed=2)(x)
    x = L.GroupNormalization(groups="auto")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = L.InvertedDropout(0.2, seed=3)(x)
    outputs = L.DropConnectDense(3, rate=0.3, activation="softmax", seed=4)(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.SGD(
            learning_rate=S.Triangular2CyclicalLearningRate(1e-3, 1e-2, 4)),
        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    x_data = np.random.default_rng(0).uniform(0, 255, (8, 8, 8, 1))
    y_data = np.arange(8) % 3
    model.fit(x_data, y_data, batch_size=4, epochs=1, verbose=0)
    path = tmp_path / "all_blocks.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x_data, verbose=0),
                               model.predict(x_data, verbose=0), atol=1e-6)
    schedule = reloaded.optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == "Triangular2CyclicalLearningRate"
    assert schedule["config"]["step_size"] == 4


def test_bare_import_registers_everything_for_loading(tmp_path):
    """A fresh interpreter that only runs `import kerascnn` loads a model
    holding kerascnn objects from every subpackage."""
    import subprocess
    import sys

    model = kerascnn.build_cnn(
        (8, 8, 1), 3, depth=1, filters=4, normalization="group",
        dropconnect=0.3, max_norm=3.0, dense_units=8,
        normalizer=np.random.default_rng(0).uniform(0, 255, (6, 8, 8, 1)),
        augmentation=kerascnn.data.augmentation("digits", seed=0),
        verbose=False)
    path = tmp_path / "m.keras"
    model.save(path)
    x = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 1)).astype("float32")
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", model.predict(x, verbose=0))
    code = (
        "import numpy as np, keras, kerascnn, sys; p = sys.argv[1]; "
        "m = keras.saving.load_model(p + '/m.keras'); "
        "np.testing.assert_allclose(m.predict(np.load(p + '/x.npy'), verbose=0),"
        " np.load(p + '/y.npy'), atol=1e-6)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
