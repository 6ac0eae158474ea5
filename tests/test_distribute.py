"""`kerascnn.core.distribute`: TF_CONFIG, chief-only writing, precision, XLA."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn._validation import ArgumentError
from kerascnn.core import distribute


def _set_tf_config(monkeypatch, workers=2, kind="worker", index=0,
                   chief=False):
    cluster = {"worker": [f"127.0.0.1:{20000 + i}" for i in range(workers)]}
    if chief:
        cluster["chief"] = ["127.0.0.1:19999"]
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": cluster, "task": {"type": kind, "index": index}}))


def test_single_process_is_chief(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.num_workers() == 1
    assert distribute.task() == (None, None)
    assert distribute.is_chief()


@pytest.mark.parametrize("kind,index,chief,expected", [
    ("worker", 0, False, True),    # worker 0 is the chief when none is named
    ("worker", 1, False, False),
    ("worker", 0, True, False),    # ... but not when the cluster has a chief
    ("chief", 0, True, True),
    ("evaluator", 0, False, False),
])
def test_is_chief_under_tf_config(monkeypatch, kind, index, chief, expected):
    _set_tf_config(monkeypatch, kind=kind, index=index, chief=chief)
    assert distribute.num_workers() == (3 if chief else 2)
    assert distribute.task() == (kind, index)
    assert distribute.is_chief() is expected


def test_one_worker_tf_config_is_chief(monkeypatch):
    _set_tf_config(monkeypatch, workers=1, index=0)
    assert distribute.num_workers() == 1 and distribute.is_chief()


@pytest.mark.parametrize("text", ["not json", "[1, 2]",
                                  '{"task": {"type": "worker", "index": -1},'
                                  ' "cluster": {"worker": ["a:1", "b:2"]}}'])
def test_bad_tf_config_named(monkeypatch, text):
    monkeypatch.setenv("TF_CONFIG", text)
    with pytest.raises(ArgumentError, match="Argument `TF_CONFIG` must be"):
        distribute.task()


def test_worker_output_dir_chief_gets_the_path(monkeypatch, tmp_path):
    _set_tf_config(monkeypatch, index=0)
    target = tmp_path / "saved_models"
    with distribute.worker_output_dir(target) as path:
        assert path == target
    with distribute.worker_output_dir(None) as path:
        assert path is None


def test_worker_output_dir_other_workers_write_nothing(monkeypatch, tmp_path):
    _set_tf_config(monkeypatch, index=1)
    target = tmp_path / "saved_models"
    with distribute.worker_output_dir(str(target)) as path:
        assert os.path.basename(path) == "saved_models"
        assert not os.path.abspath(path).startswith(str(tmp_path))
        os.makedirs(os.path.join(path, "export"))
        with open(os.path.join(path, "export", "file.txt"), "w") as f:
            f.write("x")
        scratch = os.path.dirname(path)
    assert not os.path.exists(scratch)
    assert list(tmp_path.iterdir()) == []


def test_worker_output_dir_cleans_up_on_error(monkeypatch, tmp_path):
    _set_tf_config(monkeypatch, index=1)
    with pytest.raises(RuntimeError):
        with distribute.worker_output_dir(tmp_path / "out") as path:
            os.makedirs(path)
            raise RuntimeError("failed save")
    assert not os.path.exists(os.path.dirname(path))


def test_describe_strategy_default():
    strategy = distribute.resolve_strategy(None)
    assert distribute.describe_strategy(strategy) == \
        "default strategy: 1 worker, 1 replica"
    assert distribute.describe_strategy(strategy, batch_size=32).endswith(
        "global batch 32 (32 per replica)")


def test_describe_strategy_mirrored(two_cpu_strategy):
    assert distribute.describe_strategy(two_cpu_strategy, batch_size=8) == (
        "MirroredStrategy: 1 worker, 2 replicas, global batch 16 "
        "(8 per replica)")


def test_describe_strategy_rejects_non_strategy():
    with pytest.raises(ArgumentError, match="Received: strategy='auto'"):
        distribute.describe_strategy("auto")


def test_auto_without_tf_config_or_gpus_is_the_strategy_in_scope(
        monkeypatch, two_cpu_strategy):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.resolve_strategy("auto") is tf.distribute.get_strategy()
    with two_cpu_strategy.scope():
        assert distribute.resolve_strategy(None) is two_cpu_strategy
    assert distribute.resolve_strategy(two_cpu_strategy) is two_cpu_strategy


@pytest.mark.parametrize("bad", ["mirrored", 2, True])
def test_resolve_strategy_rejects(bad):
    with pytest.raises(ArgumentError, match="Received: strategy="):
        distribute.resolve_strategy(bad)


# -- precision -------------------------------------------------------------------


@pytest.mark.parametrize("value", ["float32", "mixed_float16",
                                   "mixed_bfloat16", "Mixed_Float16"])
def test_resolve_precision_names(value):
    assert distribute.resolve_precision(value) == value.lower()


def test_resolve_precision_none_is_global_policy():
    assert distribute.resolve_precision(None) == "float32"
    with distribute.precision_scope("mixed_bfloat16"):
        assert distribute.resolve_precision(None) == "mixed_bfloat16"


@pytest.mark.parametrize("capabilities,expected", [
    ([], "float32"),                       # CPU only
    ([(8, 0)], "mixed_float16"),           # A100
    ([(7, 0), (9, 0)], "mixed_float16"),
    ([(6, 1)], "float32"),                 # Pascal: no Tensor Cores
    ([(8, 0), (6, 0)], "float32"),         # one old GPU decides
])
def test_auto_precision_follows_compute_capability(monkeypatch, capabilities,
                                                   expected):
    monkeypatch.setattr(distribute, "_gpus_compute_capability",
                        lambda: capabilities)
    assert distribute.resolve_precision("auto") == expected


def test_auto_precision_on_this_machine():
    has_tensor_cores = any(tuple(
        tf.config.experimental.get_device_details(g).get(
            "compute_capability", (0, 0))) >= (7, 0)
        for g in tf.config.list_physical_devices("GPU"))
    assert distribute.resolve_precision("auto") == (
        "mixed_float16" if has_tensor_cores else "float32")


@pytest.mark.parametrize("bad", ["float16", "half", "", 16, True, ["float32"]])
def test_resolve_precision_rejects(bad):
    with pytest.raises(ArgumentError, match="Received: precision="):
        distribute.resolve_precision(bad)


def test_precision_scope_builds_mixed_model_and_restores():
    before = keras.mixed_precision.global_policy().name
    with distribute.precision_scope("mixed_float16") as name:
        assert name == "mixed_float16"
        inputs = keras.Input((4,))
        hidden = keras.layers.Dense(3)(inputs)
        outputs = keras.layers.Activation("softmax", dtype="float32")(hidden)
        model = keras.Model(inputs, outputs)
    assert keras.mixed_precision.global_policy().name == before
    dense = model.layers[1]
    assert dense.compute_dtype == "float16"
    assert dense.kernel.dtype == "float32"
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    # Keras wraps the optimizer for loss scaling itself.
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    out = model.predict(np.ones((2, 4), "float32"), verbose=0)
    assert out.dtype == np.float32


def test_precision_scope_restores_after_error():
    with pytest.raises(RuntimeError):
        with distribute.precision_scope("mixed_bfloat16"):
            raise RuntimeError("build failed")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_precision_scope_rejects_before_changing_policy():
    with pytest.raises(ArgumentError, match="Received: precision='fp8'"):
        with distribute.precision_scope("fp8"):
            pass
    assert keras.mixed_precision.global_policy().name == "float32"


# -- XLA and steps per execution -------------------------------------------------------


@pytest.mark.parametrize("value,expected", [("auto", "auto"), ("AUTO", "auto"),
                                            (True, True), (False, False),
                                            (np.bool_(True), True)])
def test_check_jit_compile_accepts(value, expected):
    assert distribute.check_jit_compile(value) == expected


@pytest.mark.parametrize("bad", ["xla", "true", 1, 0, None, 1.0])
def test_check_jit_compile_rejects(bad):
    with pytest.raises(ArgumentError, match="Received: jit_compile="):
        distribute.check_jit_compile(bad)


def test_check_steps_per_execution():
    assert distribute.check_steps_per_execution(4) == 4
    for bad in (0, -1, 1.5, True, "2", None):
        with pytest.raises(ArgumentError,
                           match="Received: steps_per_execution="):
            distribute.check_steps_per_execution(bad)


# -- backup shared by several workers ---------------------------------------------


def _tiny_model():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def _fit_with_backup(backup_dir, epochs=2):
    model = _tiny_model()
    callback = distribute.backup_and_restore(str(backup_dir))
    seen = []

    class Spy(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(os.listdir(backup_dir) if os.path.isdir(backup_dir)
                        else [])

    x = np.ones((4, 3), "float32")
    model.fit(x, x[:, :2], epochs=epochs, verbose=0,
              callbacks=[callback, Spy()])
    return callback, seen


def test_backup_chief_writes_the_shared_folder(monkeypatch, tmp_path):
    _set_tf_config(monkeypatch, index=0)
    callback, seen = _fit_with_backup(tmp_path / "bk")
    assert callback.writes_backup
    assert "latest.weights.h5" in seen[-1]
    assert not (tmp_path / "bk").exists()  # Keras deletes it at the end


def test_backup_other_workers_only_read_it(monkeypatch, tmp_path):
    _set_tf_config(monkeypatch, index=1)
    shared = tmp_path / "bk"
    callback, seen = _fit_with_backup(shared)
    assert not callback.writes_backup
    assert seen == [[], []] and not shared.exists()
    assert callback._scratch is None  # its private copy is gone


def test_backup_resumes_from_the_chiefs_state(monkeypatch, tmp_path):
    _set_tf_config(monkeypatch, index=0)
    shared = tmp_path / "bk"
    model = _tiny_model()
    x = np.ones((4, 3), "float32")

    class Stop(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        model.fit(x, x[:, :2], epochs=5, verbose=0, callbacks=[
            distribute.backup_and_restore(str(shared)), Stop()])
    _set_tf_config(monkeypatch, index=1)  # a worker restarted afterwards
    history = _tiny_model().fit(
        x, x[:, :2], epochs=5, verbose=0,
        callbacks=[distribute.backup_and_restore(str(shared))])
    assert len(history.history["loss"]) == 3   # epochs 3..5 only
    assert (shared / "latest.weights.h5").exists()  # left for the chief
