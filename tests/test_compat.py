"""One test per shim of kerascnn._compat: the private path works with the
installed versions, and without it the shim falls back to a public
equivalent or raises a CompatibilityError naming the tested versions."""

import pathlib
import re
import types

import keras
import numpy as np
import pytest

from kerascnn import _compat

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _model():
    inputs = keras.Input((4, 4, 1))
    inner = keras.Sequential([keras.layers.Conv2D(2, 3, name="c"),
                              keras.layers.Flatten(name="f")], name="inner")
    x = inner(inputs)
    outputs = keras.layers.Dense(2, name="d")(x)
    return keras.Model(inputs, outputs, name="outer")


def _no(attribute, obj):
    """A stand-in for `obj` that hides `attribute` (a release without it)."""
    class Hidden:
        def __getattr__(self, name):
            if name == attribute:
                raise AttributeError(name)
            return getattr(obj, name)
    return Hidden()


def test_no_private_api_outside_compat():
    pattern = re.compile(r"keras_tuner\.src|keras\.src|tensorflow\.python|"
                         r"_flatten_layers|_nodes_by_depth|_inbound_nodes|"
                         r"_keras_history|_get_variable_index|"
                         r"\._learning_rate\b|\._num_workers|\._oracle\b")
    offenders = []
    for path in (ROOT / "kerascnn").rglob("*.py"):
        if path.name == "_compat.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#")[0]
            if pattern.search(code) and not code.strip().startswith(
                    ("(`", "`", "The KerasTuner")):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line}")
    assert offenders == []


def test_error_names_installed_and_tested_versions():
    with pytest.raises(_compat.CompatibilityError,
                       match=r"from keras 3\.\d+.*tested with keras 3\.15\.x"):
        _compat._missing("keras", "a thing")


def test_flatten_layers():
    model = _model()
    names = [layer.name for layer in _compat.flatten_layers(model)]
    assert names[0] == "outer" and {"inner", "c", "f", "d"} <= set(names)
    public = _compat.flatten_layers(_no("_flatten_layers", model))

    def not_inputs(layers):
        return sorted(layer.name for layer in layers
                      if not isinstance(layer, keras.layers.InputLayer))

    # Same layers (a Sequential's implicit InputLayer is not in `.layers`).
    assert not_inputs(public) == not_inputs(_compat.flatten_layers(model))
    without_self = _compat.flatten_layers(model, include_self=False)
    assert model not in without_self and len(without_self) == len(names) - 1


def test_flatten_layers_public_walk():
    model = _model()
    fake = types.SimpleNamespace(name="outer", layers=model.layers)
    names = [layer.name for layer in _compat.flatten_layers(fake)]
    assert names[0] == "outer"
    assert {"inner", "c", "f", "d"} <= set(names)


def test_functional_graph_and_nodes_by_depth():
    model = _model()
    graph = _compat.functional_graph(model)
    assert graph is model and _compat.has_node_graph(graph)
    nodes = _compat.nodes_by_depth(graph)
    assert nodes is model._nodes_by_depth
    sequential = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert _compat.has_node_graph(_compat.functional_graph(sequential))
    assert not _compat.has_node_graph(
        _compat.functional_graph(keras.Sequential([keras.layers.Dense(2)])))
    # Without the private graph: one node per layer from `layer.output`.
    fake = types.SimpleNamespace(layers=model.layers, inputs=model.inputs)
    public = _compat.nodes_by_depth(fake)
    assert [public[d][0].operation.name for d in sorted(public)] == [
        layer.name for layer in reversed(model.layers)]
    assert tuple(public[0][0].outputs[0].shape) == (None, 2)


def test_inbound_nodes_and_keras_history():
    model = _model()
    dense = model.get_layer("d")
    nodes = _compat.inbound_nodes(dense)
    assert len(nodes) == 1
    producer = _compat.keras_history(nodes[0].input_tensors[0])[0]
    assert producer.name == "inner"
    assert _compat.keras_history(np.zeros(2)) is None
    assert _compat.inbound_nodes(object()) == []

    class Layer(keras.layers.Layer):
        def __getattribute__(self, name):
            if name == "_inbound_nodes":
                raise AttributeError(name)
            return super().__getattribute__(name)

    with pytest.raises(_compat.CompatibilityError, match="_inbound_nodes"):
        _compat.inbound_nodes(Layer())


def test_learning_rate_object():
    optimizer = keras.optimizers.SGD(0.1)
    assert isinstance(_compat.learning_rate_object(optimizer), keras.Variable)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5)
    assert _compat.learning_rate_object(
        keras.optimizers.SGD(schedule)) is schedule
    public = _compat.learning_rate_object(_no("_learning_rate", optimizer))
    assert public is optimizer.learning_rate
    with pytest.raises(_compat.CompatibilityError, match="learning_rate"):
        _compat.learning_rate_object(object())


def test_variable_index():
    variables = [keras.Variable(np.zeros(2)), keras.Variable(np.ones(3))]
    optimizer = keras.optimizers.SGD(0.1)
    optimizer.build(variables)
    assert _compat.variable_index(optimizer, variables[1]) == 1
    with pytest.raises(_compat.CompatibilityError,
                       match="_get_variable_index"):
        _compat.variable_index(types.SimpleNamespace(), variables[1])


def test_early_stopping_state():
    callback = keras.callbacks.EarlyStopping(restore_best_weights=True)
    callback.set_model(_model())
    callback.on_train_begin()
    assert _compat.check_early_stopping_state(callback) is callback
    with pytest.raises(_compat.CompatibilityError, match="best_weights"):
        _compat.check_early_stopping_state(_no("best_weights", callback))


def test_backup_and_restore_state(tmp_path):
    callback = keras.callbacks.BackupAndRestore(str(tmp_path / "b"))
    assert _compat.check_backup_and_restore(callback) is callback
    with pytest.raises(_compat.CompatibilityError, match="_weights_path"):
        _compat.check_backup_and_restore(_no("_weights_path", callback))


def test_strategy_num_workers():
    import tensorflow as tf

    strategy = tf.distribute.get_strategy()
    workers = _compat.strategy_num_workers(strategy)
    assert workers is None or workers == 1
    fake = types.SimpleNamespace(extended=types.SimpleNamespace(
        _num_workers=3))
    assert _compat.strategy_num_workers(fake) == 3
    assert _compat.strategy_num_workers(types.SimpleNamespace()) is None


def test_is_chief_oracle(monkeypatch):
    for name in ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT",
                 "KERASTUNER_TUNER_ID"):
        monkeypatch.delenv(name, raising=False)
    assert _compat.is_chief_oracle() is False
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    monkeypatch.setenv("KERASTUNER_ORACLE_PORT", "8000")
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert _compat.is_chief_oracle() is True
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "tuner0")
    assert _compat.is_chief_oracle() is False
    # The public fallback (documented environment variables) agrees.
    from keras_tuner.src.distribute import utils

    monkeypatch.delattr(utils, "is_chief_oracle")
    assert _compat.is_chief_oracle() is False
    monkeypatch.setenv("KERASTUNER_TUNER_ID", "chief")
    assert _compat.is_chief_oracle() is True


def test_grid_search_internals(monkeypatch):
    from kerascnn.tuning import tuners

    linked = _compat.grid_linked_list()()
    assert _compat.check_linked_list(linked) is linked
    oracle = tuners.GridSearchOracle(objective="val_loss", max_trials=2)
    assert _compat.check_grid_oracle(oracle) is oracle
    import keras_tuner

    assert isinstance(oracle, keras_tuner.oracles.GridSearchOracle)
    with pytest.raises(_compat.CompatibilityError, match="_populate_next"):
        _compat.check_grid_oracle(_no("_populate_next", oracle))
    with pytest.raises(_compat.CompatibilityError, match="_next_index"):
        _compat.check_linked_list(_no("_next_index", linked))
    from keras_tuner.src.tuners import gridsearch

    monkeypatch.delattr(gridsearch, "LinkedList")
    with pytest.raises(_compat.CompatibilityError,
                       match="tested with keras_tuner 1.4.x"):
        _compat.grid_linked_list()


def test_local_oracle():
    oracle = object()
    assert _compat.local_oracle(oracle) is oracle
    client = types.SimpleNamespace(_oracle=oracle)
    assert _compat.local_oracle(client) is oracle


def test_chief_server_parts(monkeypatch):
    get_service_grpc, servicer, exit_chief = _compat.chief_server_parts()
    assert hasattr(get_service_grpc(), "add_OracleServicer_to_server")
    assert callable(servicer) and callable(exit_chief)
    from keras_tuner.src.distribute import oracle_chief

    monkeypatch.delattr(oracle_chief, "exit_chief")
    with pytest.raises(_compat.CompatibilityError, match="exit_chief"):
        _compat.chief_server_parts()


def test_tested_versions_match_setup():
    setup = (ROOT / "setup.py").read_text()
    cap = _next_minor(_compat.TESTED["keras_tuner"])
    assert f'"keras-tuner>=1.4.8,<{cap}"' in setup
    import keras_tuner
    import tensorflow as tf

    def minor(version):
        return tuple(int(part) for part in version.split(".")[:2])

    # Capped packages run at the tested minor; Keras at least at it.
    assert minor(keras_tuner.__version__) == minor(
        _compat.TESTED["keras_tuner"])
    assert minor(tf.__version__) == minor(_compat.TESTED["tensorflow"])
    assert minor(keras.__version__) >= minor(_compat.TESTED["keras"])
    assert '"tensorflow>=2.21.0,<2.22"' in setup


def _next_minor(version):
    major, minor = version.split(".")
    return f"{major}.{int(minor) + 1}"
