"""`transfer.fit(strategy=...)` and `kerascnn transfer` under `tf.distribute`.

A 2-replica `MirroredStrategy` over the two logical CPUs of conftest.py
stands for several GPUs; `TF_CONFIG` is set with monkeypatch (no second
process) for what a non-chief worker of the CLI writes; one test starts two
real worker processes on loopback (each killed by its PID in a `finally`).
Backbones are tiny own models on 16x16x1 images.
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kerascnn import transfer
from kerascnn.cli import main
from kerascnn.transfer import registry

from _support import band_images, free_ports, tiny_source


def _source(shape=(16, 16, 1), classes=3, batchnorm=False):
    return tiny_source(shape, classes, batchnorm)


def _images(n_per_class=6, shape=(16, 16, 1), classes=3, seed=0):
    return band_images(n_per_class, shape, classes, seed)


def _on(strategy, variables):
    return all(getattr(v.value, "distribute_strategy", None) is strategy
               for v in variables)


@pytest.fixture
def built_under(monkeypatch):
    """Makes "tinynet" a registry name (a tiny own model); records the
    strategy in scope at each build."""
    strategies = []
    real = registry.get_backbone

    def get_backbone(name, input_shape=None, weights="imagenet", **kwargs):
        strategies.append(tf.distribute.get_strategy())
        assert name == "tinynet" and weights is None
        return real(_source(), input_shape=input_shape)

    monkeypatch.setattr(registry, "get_backbone", get_backbone)
    return strategies


def test_fine_tuning_runs_on_two_replicas(two_cpu_strategy, built_under,
                                          capsys):
    x, y = _images()
    result = transfer.fit("tinynet", x, y, similar=True, large=True,
                          weights=None, epochs=1, head_epochs=1,
                          head_patience=0, batch_size=4,
                          strategy=two_cpu_strategy, verbose=2)
    # A registry name: built once to measure the data (recommend), then
    # again inside the strategy's scope for the Keras phases.
    assert built_under[0] is not two_cpu_strategy
    assert built_under[-1] is two_cpu_strategy and len(built_under) == 2
    line = "MirroredStrategy: 1 worker, 2 replicas, global batch 8 (4 per " \
           "replica)"
    assert line in capsys.readouterr().out
    assert result.strategy == line
    assert (result.replicas, result.batch_size) == (2, 8)
    assert f"Trained with {line}." in result.summary()
    assert result.to_dict()["replicas"] == 2
    assert list(result.history) == ["head", "fine-tune"]
    # Backbone, head and optimizer state: every variable is mirrored.
    assert _on(two_cpu_strategy, result.model.weights)
    assert _on(two_cpu_strategy, result.backbone.base.weights)
    assert _on(two_cpu_strategy, result.model.optimizer.variables)
    probabilities = result.model.predict(x, verbose=0)
    assert probabilities.shape == (18, 3)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, rtol=1e-5)
    assert 0.0 <= result.val_accuracy <= 1.0


def test_registry_name_with_a_plan_is_built_once_in_scope(
        two_cpu_strategy, built_under, monkeypatch):
    import sys

    x, y = _images()
    plan = transfer.recommend(registry.get_backbone("tinynet", weights=None,
                                                    input_shape=x.shape[1:]),
                              x, y, similar=True, large=True)
    built_under.clear()
    seen = []

    def no_training(backbone, *args):  # only the building is checked here
        seen.append(backbone)
        return None, {}, None, None

    monkeypatch.setattr(sys.modules["kerascnn.transfer.fit"], "_fine_tune",
                        no_training)
    transfer.fit("tinynet", x, y, plan=plan, weights=None,
                 strategy=two_cpu_strategy)
    assert built_under == [two_cpu_strategy]
    assert _on(two_cpu_strategy, seen[0].base.weights)


def test_given_backbone_is_cloned_into_the_scope(two_cpu_strategy):
    x, y = _images()
    backbone = transfer.get_backbone(_source())
    before = [w.copy() for w in backbone.base.get_weights()]
    plan = transfer.recommend(backbone, x, y, similar=True, large=True,
                              lr_decay=0.5)
    result = transfer.fit(backbone, x, y, plan=plan, epochs=1, head_epochs=1,
                          head_patience=0, batch_size=3,
                          strategy=two_cpu_strategy)
    clone = result.backbone
    assert clone is not backbone
    assert clone.blocks == backbone.blocks and clone.name == backbone.name
    assert _on(two_cpu_strategy, clone.base.weights)
    assert not _on(two_cpu_strategy, backbone.base.weights)
    for old, new in zip(before, backbone.base.get_weights()):
        np.testing.assert_array_equal(old, new)  # the given one is untouched
    assert result.batch_size == 6
    assert result.model.predict(x[:5], verbose=0).shape == (5, 3)


def test_small_target_under_the_strategy_is_not_distributed(
        two_cpu_strategy, capsys):
    x, y = _images()
    result = transfer.fit(_source(), x, y, source_images=x, augment="none",
                          strategy=two_cpu_strategy, verbose=1)
    assert "does not distribute" in capsys.readouterr().out
    assert result.plan.cell == "similar-small"
    assert result.strategy is None and result.replicas == 1
    assert result.batch_size is None
    assert 0.0 <= result.cv_accuracy <= 1.0
    assert result.model.predict(x, verbose=0).shape == (18, 3)


def test_bad_strategy_is_named_before_any_work(monkeypatch):
    def no_backbone(*args, **kwargs):
        raise AssertionError("built a backbone")

    monkeypatch.setattr(registry, "get_backbone", no_backbone)
    with pytest.raises(ValueError, match=r"Argument `strategy` must be one "
                       r"of 'auto'. Received: strategy='bogus'"):
        transfer.fit("resnet50", "no/such/folder", strategy="bogus")
    with pytest.raises(ValueError, match="Received: strategy=3"):
        transfer.fit("resnet50", "no/such/folder", strategy=3)


# -- the CLI ------------------------------------------------------------------


def _folder(root, size=20, per_class=6):
    """3 classes of RGB PNGs of `size`, a bright band per class."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(3):
        os.makedirs(root / f"class{c}")
        for i in range(per_class):
            pixels = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
            pixels[c * 6:c * 6 + 6] += 150
            Image.fromarray(pixels).save(root / f"class{c}" / f"{i}.png")
    return str(root)


@pytest.fixture
def cli_inputs(tmp_path, monkeypatch):
    from kerascnn import datasets

    def no_loading(*args, **kwargs):
        raise AssertionError("kerascnn transfer loaded the data into memory")

    monkeypatch.setattr(datasets, "load", no_loading)
    source = str(tmp_path / "source.keras")
    _source(batchnorm=True).save(source)
    return _folder(tmp_path / "photos"), source


def _cli(folder, source, export_dir, *extra):
    return main(["transfer", "--data", folder, "--backbone", source,
                 "--image-size", "16", "--color-mode", "grayscale",
                 "--test-split", "0.25", "--augment", "none",
                 "--export", "photos_tx", "--export-dir", str(export_dir),
                 *extra])


def test_cli_streams_a_folder_and_fine_tunes(tmp_path, cli_inputs, capsys,
                                            monkeypatch):
    from kerascnn.core import data as core_data

    folder, source = cli_inputs
    evaluated = []
    predict_source = core_data.predict_source

    def spy(model, source, batch_size):
        evaluated.append(source)
        return predict_source(model, source, batch_size)

    monkeypatch.setattr(core_data, "predict_source", spy)
    # 18 images resized from 20x20 RGB: a "large" target, so the plan
    # fine-tunes on a streamed validation split of the training files.
    code = _cli(folder, source, tmp_path / "exports", "--large-threshold",
                "1", "--epochs", "1", "--head-epochs", "2")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "Strategy: fine_tune" in out and "Test accuracy: " in out
    assert "Exported to" in out
    kinds = {(s.kind, s.num_samples) for s in evaluated}
    assert ("files", 5) in kinds  # the test split, read from its files
    assert ("files", 3) in kinds  # the validation split
    export = tmp_path / "exports" / "photos_tx"
    assert "test_accuracy" in (export / "metadata.json").read_text()
    assert os.path.isdir(export / "saved_model")


def test_cli_non_chief_worker_writes_nothing(tmp_path, cli_inputs, capsys,
                                             monkeypatch):
    from kerascnn.core import distribute

    folder, source = cli_inputs
    monkeypatch.setenv("TF_CONFIG", json.dumps({
        "cluster": {"worker": ["127.0.0.1:2000", "127.0.0.1:2001"]},
        "task": {"type": "worker", "index": 1}}))
    # No second process: the strategy "auto" would start is this process's.
    monkeypatch.setattr(distribute, "multi_worker_mirrored_strategy",
                        tf.distribute.get_strategy)
    # Not an export: the chief would refuse it before training; this worker
    # neither checks nor touches it.
    taken = tmp_path / "exports" / "photos_tx"
    taken.mkdir(parents=True)
    (taken / "notes.txt").write_text("mine")
    assert _cli(folder, source, tmp_path / "exports") == 0
    out = capsys.readouterr().out
    assert "Test accuracy: " in out and "Exported to" not in out
    assert sorted(os.listdir(tmp_path / "exports")) == ["photos_tx"]
    assert os.listdir(taken) == ["notes.txt"]


# -- two real workers on loopback ----------------------------------------------


@pytest.mark.subprocess
@pytest.mark.slow
def test_two_workers_fine_tune_a_folder_and_only_the_chief_exports(
        tmp_path):
    """Two `kerascnn transfer` processes under `TF_CONFIG`, as two machines
    would run them: MultiWorkerMirroredStrategy, the folder's training files
    sharded by file, the same steps on both, one export."""
    import subprocess
    import sys

    folder = _folder(tmp_path / "photos", size=16, per_class=11)
    source = str(tmp_path / "source.keras")
    _source(batchnorm=True).save(source)
    # 33 images: 9 test, 5 validation, 19 training (10 and 9 per worker).
    command = [sys.executable, "-m", "kerascnn", "transfer", "--data",
               folder, "--backbone", source, "--color-mode", "grayscale",
               "--test-split", "0.25", "--augment", "none",
               "--large-threshold", "1", "--epochs", "2", "--head-epochs",
               "3", "--batch-size", "4", "--verbose", "2", "--export",
               "mw_tx"]
    ports = free_ports(2)
    procs, logs = [], []
    try:
        for index in range(2):
            cwd = tmp_path / f"worker{index}"
            cwd.mkdir()
            config = {"cluster": {"worker": [f"127.0.0.1:{p}"
                                             for p in ports]},
                      "task": {"type": "worker", "index": index}}
            env = dict(os.environ, TF_CONFIG=json.dumps(config),
                       TF_CPP_MIN_LOG_LEVEL="2")
            logs.append(tmp_path / f"worker{index}.log")
            with open(logs[-1], "w") as log:
                procs.append(subprocess.Popen(
                    command, cwd=cwd, env=env, stdout=log,
                    stderr=subprocess.STDOUT))
        codes = [proc.wait(timeout=400) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    texts = [log.read_text(errors="replace") for log in logs]
    for code, text in zip(codes, texts):
        assert code == 0, text[-4000:]
        assert "MultiWorkerMirroredStrategy: 2 workers, 2 replicas, global " \
            "batch 8 (4 per replica)" in text
        # ceil(19 / 8) = 3 optimizer steps per fine-tuning epoch on both.
        fine_tuning = text.split("Epoch 1/2")[1]
        assert fine_tuning.count("3/3 - ") == 2, fine_tuning
    accuracies = [t.split("Test accuracy: ")[1].split()[0] for t in texts]
    assert accuracies[0] == accuracies[1]
    assert (tmp_path / "worker0" / "saved_models" / "mw_tx" /
            "saved_model").is_dir()
    assert "Exported to" in texts[0] and "Exported to" not in texts[1]
    assert os.listdir(tmp_path / "worker1") == []
