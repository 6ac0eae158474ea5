"""Proof on real offline data: digits 0-4 -> digits 5-9 (mnist5k).

The source is a small CNN pretrained here on digits 0-4 (the classic Keras
transfer example); the target is digits 5-9 with 10 and with 50 labels per
class. Everything runs on the embedded mnist5k subset with fixed seeds.
"""

import importlib.util
import pathlib

import keras
import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from kerascnn import transfer

pytestmark = pytest.mark.slow


def _load_example():
    """`examples/transfer_digits.py`, whose CNN this test pretrains."""
    path = pathlib.Path(__file__).parents[1] / "examples" / "transfer_digits.py"
    spec = importlib.util.spec_from_file_location("transfer_digits", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The example's small conv-BN-ReLU-pool CNN, compiled with Adam: the same
# architecture serves as the source and as the from-scratch baseline.
_source_cnn = _load_example().source_cnn


@pytest.fixture(scope="module")
def digits():
    data = np.load(_mnist_path())
    images, labels = data["images"][..., np.newaxis], data["labels"]
    source = labels < 5
    keras.utils.set_random_seed(1234)
    model = _source_cnn(5)
    model.fit(images[source], labels[source], epochs=3, batch_size=32,
              verbose=0)
    return {"model": model, "x_source": images[source],
            "x_target": images[~source], "y_target": labels[~source] - 5}


def _mnist_path():
    import os

    import kerascnn

    return os.path.join(os.path.dirname(kerascnn.__file__), "datasets",
                        "data", "mnist5k.npz")


def _few(digits, per_class):
    y = digits["y_target"]
    train = np.concatenate([np.where(y == c)[0][:per_class]
                            for c in range(5)])
    test = np.setdiff1d(np.arange(len(y)), train)
    return train, test


def _accuracy(model, x, y):
    return float(np.mean(model.predict(x, verbose=0).argmax(-1) == y))


@pytest.mark.parametrize("per_class", [10, 50])
def test_table_plan_beats_training_from_scratch(digits, per_class):
    train, test = _few(digits, per_class)
    x, y = digits["x_target"][train], digits["y_target"][train]
    x_test, y_test = digits["x_target"][test], digits["y_target"][test]
    result = transfer.fit(digits["model"], x, y, epochs=30, patience=5)
    assert result.plan.cell == "similar-small"
    assert result.plan.strategy == "linear_head"
    assert result.plan.head == "logistic"
    assert result.plan.frozen_blocks == ["block1", "block2"]
    transfer_accuracy = _accuracy(result.model, x_test, y_test)
    # The same architecture from scratch, on the same labels, with the same
    # protocol: the same stratified validation images, early stopping.
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=max(5, round(0.2 * len(y))), stratify=y,
        random_state=0)
    keras.utils.set_random_seed(1234)
    scratch = _source_cnn(5)
    scratch.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=30,
                batch_size=32, verbose=0, callbacks=[
                    keras.callbacks.EarlyStopping(
                        patience=5, restore_best_weights=True)])
    scratch_accuracy = _accuracy(scratch, x_test, y_test)
    print(f"{per_class} labels/class: transfer {transfer_accuracy:.3f}, "
          f"scratch {scratch_accuracy:.3f}")
    assert transfer_accuracy > scratch_accuracy
    assert transfer_accuracy > 0.7
    # The source model itself is untouched by the transfer.
    assert digits["model"].output.shape == (None, 5)


def _sample(digits, n=500):
    index = np.random.default_rng(0).permutation(len(digits["y_target"]))
    return index[:n]


def _dissimilar_targets(digits):
    x = digits["x_target"][_sample(digits)]
    rng = np.random.default_rng(0)
    permuted = x.reshape(len(x), -1)[:, rng.permutation(28 * 28)]
    noise = rng.integers(0, 256, x.shape).astype("uint8")
    return x, permuted.reshape(x.shape), noise


@pytest.mark.parametrize("route", ["source sample", "batchnorm statistics"])
def test_digits_are_more_similar_than_permuted_or_noise(digits, route):
    backbone = transfer.get_backbone(digits["model"])
    source = digits["x_source"][:500] if route == "source sample" else None
    scores = [transfer.measure_similarity(backbone, target, source)
              for target in _dissimilar_targets(digits)]
    assert all(s.route == route for s in scores)
    digits_score, permuted_score, noise_score = scores
    print(route, [(round(s.cosine, 3), round(s.distance, 3)) for s in scores])
    assert digits_score.cosine > permuted_score.cosine
    assert digits_score.cosine > noise_score.cosine
    assert digits_score.distance < permuted_score.distance / 2
    assert digits_score.distance < noise_score.distance / 2
    # With the default thresholds: digits similar, the others dissimilar.
    y = np.arange(500) % 5
    cells = [transfer.recommend(backbone, target, y, similarity=score).cell
             for target, score in zip(_dissimilar_targets(digits), scores)]
    assert cells == ["similar-small", "dissimilar-small", "dissimilar-small"]


def test_dissimilar_target_gets_the_linear_probe(digits, tmp_path):
    _, permuted, _ = _dissimilar_targets(digits)
    y = digits["y_target"][_sample(digits)]
    # No augmented copies: the test is about the plan and the probe over
    # blocks (the copies are covered by the 10/50-label tests above).
    result = transfer.fit(digits["model"], permuted[:250], y[:250],
                          copies=0)
    assert result.plan.cell == "dissimilar-small"
    assert set(result.probe.scores) == {"block1", "block2"}
    assert result.probe.best_block in result.probe.scores
    # Better than chance (0.2) on held-out permuted digits.
    assert _accuracy(result.model, permuted[250:], y[250:]) > 0.4
    path = str(tmp_path / "probe")
    result.model.export(path, verbose=False)
    import tensorflow as tf

    reloaded = tf.saved_model.load(path)  # keep a reference to its variables
    served = np.asarray(reloaded.serve(permuted[250:260].astype("float32")))
    np.testing.assert_allclose(
        served, result.model.predict(permuted[250:260], verbose=0),
        rtol=1e-4, atol=1e-5)
