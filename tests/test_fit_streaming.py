"""`fit` on streamed data: a class folder, tf.data with explicit splits,
imbalance rules on streams, precision / XLA options, and the issue-12
training cases (diverged runs, a backup of another model)."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kerascnn.training import fit
from test_fit import _Recorder, _blobs, guard  # noqa: F401 (a fixture)

TINY = {"depth": 1, "filters": 4, "convs_per_block": 1, "dense_units": 8,
        "head": "flatten", "dropout": 0.0}


def write_folder(root, per_class=(10, 10, 10), size=16):
    """A class folder of RGB PNGs: `root/c{k}/{i}.png`."""
    rng = np.random.default_rng(0)
    for label, count in enumerate(per_class):
        folder = os.path.join(root, f"c{label}")
        os.makedirs(folder, exist_ok=True)
        for i in range(count):
            pixels = rng.integers(0, 60, (size, size, 3)).astype("uint8")
            pixels[4 * label:4 * label + 5, 2:8, label] = 255
            Image.fromarray(pixels).save(os.path.join(folder, f"{i}.png"))
    return root


class _BatchCounter(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.count = 0

    def on_train_batch_end(self, batch, logs=None):
        self.count += 1


def test_fit_streams_a_three_class_folder(tmp_path):
    root = write_folder(str(tmp_path / "photos"))
    result = fit(root, epochs=1, batch_size=2, model_kwargs=TINY,
                 validation_split=0.2, test_split=0.2, schedule=None,
                 plot_dir=tmp_path / "plots", verbose=0)
    assert result.class_names == ["c0", "c1", "c2"]
    assert result.splits == {"train": 18, "validation": 6, "test": 6}
    assert result.model.input_shape == (None, 16, 16, 3)
    assert 0.0 <= result.test_metrics["accuracy"] <= 1.0
    assert np.isfinite(result.test_metrics["loss"])
    assert result.report.to_dict()  # batchwise per-class report
    x_test, y_test = result.test_data
    assert x_test.shape == (6, 16, 16, 3) and sorted(np.bincount(y_test)) \
        == [2, 2, 2]
    assert os.path.isfile(result.plots["loss_curves"])
    assert os.path.isfile(result.plots["top_losses"])
    assert result.fingerprint


def _dataset(images, labels, batch=None):
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    return ds.batch(batch) if batch else ds


def test_fit_on_tf_data_with_explicit_validation_and_test():
    images, labels = _blobs(90)
    train = _dataset(images[:60], labels[:60], batch=4)   # batched
    val = _dataset(images[60:75], labels[60:75])          # unbatched
    test = _dataset(images[75:], labels[75:], batch=5)
    result = fit(train, validation_data=val, test_data=test, epochs=2,
                 batch_size=4, learning_rate=3e-2, schedule=None,
                 model_kwargs=TINY, verbose=0)
    assert result.splits["test"] in (15, None)
    assert len(result.report.to_dict()) > 0
    # The report and the accuracy come from the one pass over the stream.
    assert result.test_metrics["accuracy"] == pytest.approx(
        result.report.to_dict().get("accuracy",
                                    result.test_metrics["accuracy"]))
    assert len(result.history["loss"]) == 2
    assert not result.diverged


def test_fit_stream_class_weights_come_from_the_counts(capsys):
    images, labels = _blobs(120)
    keep = np.concatenate([np.where(labels == 0)[0],
                           np.where(labels == 1)[0],
                           np.where(labels == 2)[0][:6]])
    x, y = images[keep], labels[keep]
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order], y[order]
    result = fit(_dataset(x[:70], y[:70], batch=8),
                 validation_data=_dataset(x[70:78], y[70:78]),
                 test_data=_dataset(x[78:], y[78:]), epochs=1, batch_size=8,
                 schedule=None, model_kwargs=TINY, verbose=1)
    counts = np.bincount(y[:70], minlength=3)
    assert result.balance == "class_weight"
    expected = len(y[:70]) / (3 * counts)
    np.testing.assert_allclose(
        [result.class_weight[k] for k in range(3)], expected, rtol=1e-5)
    assert "balanced class weights" in capsys.readouterr().out


def test_fit_oversamples_a_folder(tmp_path):
    root = write_folder(str(tmp_path / "imbalanced"), per_class=(20, 20, 4))
    batches = _BatchCounter()
    result = fit(root, epochs=1, batch_size=2, balance="oversample",
                 model_kwargs=TINY, schedule=None, validation_split=0.25,
                 test_split=0.25, callbacks=[batches], verbose=0)
    assert result.balance == "oversample" and result.class_weight is None
    # Train split 10 / 10 / 2 (stratified): oversampling repeats the
    # minority class up to the largest one, an epoch of 3 x 10 samples.
    assert result.imbalance_ratio == pytest.approx(5.0)
    assert batches.count == 15


@pytest.mark.parametrize("kwargs,match", [
    ({"precision": "half"}, "Received: precision='half'"),
    ({"precision": 16}, "Received: precision=16"),
    ({"jit_compile": "yes"}, "Received: jit_compile='yes'"),
    ({"steps_per_execution": 0}, "Received: steps_per_execution=0"),
    ({"on_error": "ignore"}, "Received: on_error='ignore'"),
    ({"color_mode": "cmyk"}, "Received: color_mode='cmyk'"),
    ({"image_size": (0, 8)}, r"Received: image_size=\(0, 8\)"),
])
def test_accelerator_and_data_options_rejected_first(guard, kwargs, match):
    _, recorder = guard
    images, labels = _blobs(60)
    with pytest.raises(ValueError, match=match):
        fit((images, labels), epochs=1, batch_size=8, model_kwargs=TINY,
            callbacks=[recorder], verbose=0, **kwargs)


def test_accelerator_options_accepted():
    images, labels = _blobs(60)
    result = fit((images, labels), epochs=1, batch_size=8, model_kwargs=TINY,
                 precision="auto", jit_compile=False, steps_per_execution=2,
                 schedule=None, verbose=0)
    assert result.precision == "float32"  # "auto" on a CPU
    assert result.model.steps_per_execution == 2
    assert result.model.jit_compile is False


def test_mixed_bfloat16_builds_under_the_policy():
    images, labels = _blobs(60)
    result = fit((images, labels), epochs=1, batch_size=8, model_kwargs=TINY,
                 precision="mixed_bfloat16", schedule=None, verbose=0)
    assert result.precision == "mixed_bfloat16"
    assert result.model.dtype_policy.name == "mixed_bfloat16"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert result.model.output.dtype == "float32" or \
        result.model.outputs[0].dtype in ("float32", "bfloat16")


# -- issue 12, case 8: a diverged run -----------------------------------------


def test_exploding_learning_rate_is_reported_as_diverged():
    images, labels = _blobs(60)
    result = fit((images, labels), epochs=2, batch_size=8, model_kwargs=TINY,
                 learning_rate=1e6, schedule=None, early_stopping=False,
                 optimizer="sgd", verbose=0)
    assert result.diverged
    assert "loss" in result.divergence
    assert "DIVERGED" in result.summary()


def test_a_normal_run_is_not_diverged():
    images, labels = _blobs(60)
    result = fit((images, labels), epochs=1, batch_size=8, model_kwargs=TINY,
                 schedule=None, verbose=0)
    assert not result.diverged and result.divergence is None


# -- issue 12, case 13: a backup written by another model or data -------------


def test_backup_of_another_model_is_refused_before_training(tmp_path):
    from kerascnn.core import callbacks as core_callbacks

    images, labels = _blobs(60)
    backup = tmp_path / "backup"
    fit((images, labels), epochs=1, batch_size=8, model_kwargs=TINY,
        schedule=None, backup_dir=backup, verbose=0)
    # Simulate a run killed mid-way: the Keras backup state is present.
    state = backup / core_callbacks.BACKUP_STATE
    state.mkdir(parents=True, exist_ok=True)
    (state / "training_metadata.json").write_text('{"epoch": 0}')
    recorder = _Recorder()
    with pytest.raises(ValueError, match=r"its model differ.*Received: "
                       r"backup_dir="):
        fit((images, labels), epochs=1, batch_size=8,
            model_kwargs=dict(TINY, filters=8), schedule=None,
            backup_dir=backup, callbacks=[recorder], verbose=0)
    other_images, other_labels = _blobs(60, seed=5)
    with pytest.raises(ValueError, match=r"data differ.*Received: "
                       r"backup_dir="):
        fit((other_images, other_labels), epochs=1, batch_size=8,
            model_kwargs=TINY, schedule=None, backup_dir=backup,
            callbacks=[recorder], verbose=0)
    assert recorder.calls == []
