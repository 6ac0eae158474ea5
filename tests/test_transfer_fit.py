"""`transfer.fit` on the data kinds of `resolve_data`, small targets with
defaults, callbacks, and the no-download error of `get_backbone`."""

import os

import keras
import numpy as np
import pytest

from kerascnn import transfer

from _support import band_images, tiny_source


def _source(shape=(16, 16, 1), classes=3, seed=0):
    return tiny_source(shape, classes, seed=seed)


def _images(n_per_class=10, shape=(16, 16, 1), classes=3, seed=0):
    return band_images(n_per_class, shape, classes, seed)


def test_small_target_with_defaults_spends_no_label_on_validation():
    x, y = _images(10)  # 30 images: smaller than the default batch size
    result = transfer.fit(_source(), x, y, source_images=x)
    assert result.plan.cell == "similar-small"
    assert result.val_accuracy is None
    assert result.probe.selection == "cross-validation"
    assert 0.0 <= result.cv_accuracy <= 1.0
    assert result.copies == 10 and result.augment == "digits"
    accuracy = np.mean(result.model.predict(x, verbose=0).argmax(-1) == y)
    assert accuracy > 0.9
    text = result.summary()
    assert "Cross-validated accuracy" in text and "augmented copies" in text
    assert result.to_dict()["copies"] == 10


def test_small_target_uses_given_validation_data_to_choose():
    x, y = _images(6)
    x_val, y_val = _images(2, seed=1)
    result = transfer.fit(_source(), x, y, validation_data=(x_val, y_val),
                          source_images=x, augment="none")
    assert result.probe.selection == "validation"
    assert result.copies == 0
    assert 0.0 <= result.val_accuracy <= 1.0


def test_fine_tune_plan_runs_user_callbacks():
    x, y = _images(6)
    seen = []

    class Count(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            seen.append(epoch)

    result = transfer.fit(_source(), x, y, similar=True, large=True,
                          epochs=1, head_epochs=2, head_patience=0,
                          callbacks=[Count()])
    assert list(result.history) == ["head", "fine-tune"]
    assert len(seen) == 3  # 2 head epochs + 1 fine-tuning epoch
    assert 0.0 <= result.val_accuracy <= 1.0


def test_class_folder_is_streamed_through_fit(tmp_path):
    from PIL import Image

    x, y = _images(4)
    for i, (image, label) in enumerate(zip(x, y)):
        folder = tmp_path / "data" / f"class{label}"
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(image[..., 0].astype("uint8")).save(
            folder / f"{i}.png")
    result = transfer.fit(_source(), str(tmp_path / "data"),
                          source_images=x, augment="none")
    assert result.plan.num_classes == 3
    probabilities = result.model.predict(x, verbose=0)
    assert probabilities.shape == (12, 3)


def test_tf_data_stream_through_fit():
    import tensorflow as tf

    x, y = _images(4)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(5)
    result = transfer.fit(_source(), dataset, source_images=x,
                          augment="none")
    assert result.plan.num_classes == 3
    assert result.model.predict(x, verbose=0).shape == (12, 3)


def test_stream_with_y_is_refused():
    import tensorflow as tf

    x, y = _images(2)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)
    with pytest.raises(ValueError, match="Received: y="):
        transfer.fit(_source(), dataset, y)


def test_extract_features_progress_bar_and_copies(capsys):
    from kerascnn.data.augmentation import augmentation

    x, _ = _images(2)
    model = transfer.get_backbone(_source()).model
    features = transfer.extract_features(
        model, x, batch_size=4, verbose=1, copies=2,
        augment=augmentation("digits", seed=0))
    assert features.shape[0] == 3 * len(x)
    np.testing.assert_allclose(features[:len(x)],
                               model.predict(x, verbose=0), rtol=1e-5,
                               atol=1e-5)
    assert "batch" in capsys.readouterr().out


def test_imagenet_download_failure_is_one_clear_error(monkeypatch):
    from keras.src.utils import file_utils

    def no_network(*args, **kwargs):
        raise Exception("URL fetch failure on https://example.invalid/w.h5: "
                        "None -- [Errno -3] Temporary failure in name "
                        "resolution")

    monkeypatch.setattr(file_utils, "get_file", no_network)
    with pytest.raises(ValueError, match="could not be downloaded") as error:
        transfer.get_backbone("mobilenetv2", input_shape=(32, 32, 3))
    assert "weights=None" in str(error.value)
    assert "Received: weights='imagenet'" in str(error.value)


def test_feature_dataset_every_row_reshuffled_without_the_autotune_stall():
    """The cached-feature heads read their rows through `feature_dataset`
    (tf.data's autotuning off: Keras' own array adapter keeps it on and
    waits at the end of every millisecond-long head epoch)."""
    from kerascnn.transfer.feature_cache import feature_dataset

    x = np.arange(10, dtype="float32")[:, None] * np.ones((1, 3), "float32")
    y = np.arange(10) % 2
    dataset = feature_dataset(x, y, 4, shuffle=True, seed=1)
    assert dataset.options().autotune.enabled is False

    def epoch(ds):
        batches = [(b.numpy(), l.numpy()) for b, l in ds]
        assert [len(b) for b, _ in batches] == [4, 4, 2]
        rows = np.concatenate([b[:, 0] for b, _ in batches]).astype(int)
        labels = np.concatenate([l for _, l in batches])
        np.testing.assert_array_equal(labels, rows % 2)
        return rows

    first, second = epoch(dataset), epoch(dataset)
    assert sorted(first) == list(range(10)) == sorted(second)
    assert list(first) != list(second)  # reshuffled every epoch
    again = feature_dataset(x, y, 4, shuffle=True, seed=1)
    np.testing.assert_array_equal(epoch(again), first)  # same on every worker
    in_order = feature_dataset(x, y, 4)
    np.testing.assert_array_equal(epoch(in_order), np.arange(10))
    assert in_order.options().autotune.enabled is False
