"""Lazy subpackages (PEP 562) and lazy registration of kerascnn's Keras objects.

`import kerascnn` imports neither TensorFlow nor Keras; `import
kerascnn.layers` does not import KerasTuner or the heavy kerascnn subpackages;
and yet a model using kerascnn objects from any subpackage loads after a bare
`import kerascnn`, whether Keras is imported before or after it.
"""

import json
import subprocess
import sys

import keras
import numpy as np

import kerascnn

_PROBE = (
    "import sys, json; import kerascnn; "
    "bare = sorted(m for m in ('tensorflow', 'keras', 'keras_tuner', "
    "'sklearn', 'matplotlib') if m in sys.modules); "
    "import kerascnn.layers; "
    "layers = sorted(m for m in ('keras_tuner', 'kerascnn.tuning', "
    "'kerascnn.transfer', 'kerascnn.training.fit', 'kerascnn.export', "
    "'kerascnn.data') if m in sys.modules); "
    "print(json.dumps({'bare': bare, 'layers': layers, "
    "'keras': 'keras' in sys.modules}))"
)


def test_bare_import_is_light_and_layers_import_no_tuner():
    done = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["bare"] == [], found
    # Keras itself is needed by the layers; nothing heavier of ours is.
    assert found["keras"] and found["layers"] == [], found


def test_serializables_table_matches_what_modules_register():
    for package in ("layers", "constraints", "schedules", "models", "data",
                    "transfer"):
        getattr(kerascnn, package)
    registry = keras.saving.get_custom_objects()
    registered = {name: cls for name, cls in registry.items()
                  if name.startswith("kerascnn>")}
    assert set(registered) == set(kerascnn.SERIALIZABLES)
    for name, cls in registered.items():
        assert not isinstance(cls, kerascnn._LazySerializable), name
        assert cls.__module__ == kerascnn.SERIALIZABLES[name], name


def test_lazy_entry_builds_the_real_object():
    entry = kerascnn._LazySerializable("kerascnn>MaxNorm",
                                       "kerascnn.constraints.max_norm")
    constraint = entry.from_config({"max_value": 1.5, "axis": "auto"})
    assert type(constraint) is kerascnn.constraints.MaxNorm
    assert constraint.max_value == 1.5 and constraint.axis == "auto"


def test_model_loads_after_bare_import_either_order(tmp_path):
    """BackbonePreprocessing (transfer), Augmentation (data), MaxNorm,
    GroupNormalization, DropConnectDense and a cyclical schedule, loaded by
    fresh interpreters that import kerascnn before and after keras."""
    inputs = keras.Input((8, 8, 1))
    x = kerascnn.data.augmentation("digits", seed=0)(inputs)
    x = kerascnn.transfer.BackbonePreprocessing(mode="tf")(x)
    x = keras.layers.Conv2D(
        4, 3, kernel_constraint=kerascnn.constraints.MaxNorm(
            2.0, axis="auto"))(x)
    x = kerascnn.layers.GroupNormalization(groups=2)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = kerascnn.layers.DropConnectDense(3, rate=0.2,
                                               activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer=keras.optimizers.SGD(
            learning_rate=kerascnn.schedules.TriangularCyclicalLearningRate(
                1e-3, 1e-2, 4)),
        loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    path = tmp_path / "m.keras"
    model.save(path)
    x_data = np.random.default_rng(1).uniform(0, 255, (2, 8, 8, 1))
    np.save(tmp_path / "x.npy", x_data.astype("float32"))
    np.save(tmp_path / "y.npy", model.predict(x_data, verbose=0))
    check = ("p = sys.argv[1]; m = keras.saving.load_model(p + '/m.keras'); "
             "np.testing.assert_allclose(m.predict(np.load(p + '/x.npy'), "
             "verbose=0), np.load(p + '/y.npy'), atol=1e-6); "
             "print(m.optimizer.get_config()['learning_rate']"
             "['class_name'])")
    for imports in ("import sys, numpy as np, kerascnn, keras; ",
                    "import sys, numpy as np, keras, kerascnn; "):
        done = subprocess.run([sys.executable, "-c", imports + check,
                               str(tmp_path)], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, (imports, done.stderr[-2000:])
        assert "TriangularCyclicalLearningRate" in done.stdout
