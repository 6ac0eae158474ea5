"""Train a head on a frozen backbone's features, computed once."""

import collections
import time

import keras
import numpy as np

from kerascnn import _validation
from kerascnn.core.callbacks import early_stopping
from kerascnn.core.compile import compile_classifier

CachedHead = collections.namedtuple(
    "CachedHead", ["model", "head", "history", "feature_seconds",
                   "train_seconds"])
CachedHead.__doc__ = """The result of `fit_cached_head`.

Fields:
    model: End-to-end Keras model, raw pixels -> class probabilities.
    head: The head alone, pooled features -> class probabilities.
    history: `History.history` dict of the head's training.
    feature_seconds: Time spent computing the features.
    train_seconds: Time spent training the head.
"""


def _is_dataset(data):
    try:
        import tensorflow as tf
    except ImportError:  # pragma: no cover
        return False
    return isinstance(data, tf.data.Dataset)


def _batches(data, batch_size):
    """Yields `(images, labels or None)` batches and the number of batches.

    `data` is an array of images, an `ImageSource` (streamed batch by batch
    through its `dataset`), or a batched `tf.data.Dataset` of images or of
    `(images, labels)` pairs.
    """
    if hasattr(data, "dataset") and hasattr(data, "image_shape"):
        steps = data.steps(batch_size)
        return ((np.asarray(x), np.asarray(y))
                for x, y in data.dataset(batch_size)), steps
    if _is_dataset(data):
        cardinality = int(data.cardinality())
        steps = cardinality if cardinality > 0 else None

        def generate():
            for element in data:
                if isinstance(element, (tuple, list)):
                    yield np.asarray(element[0]), np.asarray(element[1])
                else:
                    yield np.asarray(element), None
        return generate(), steps
    images = np.asarray(data)
    steps = -(-len(images) // batch_size)
    return ((images[start:start + batch_size].astype("float32"), None)
            for start in range(0, len(images), batch_size)), steps


def extract_features(feature_model, images, batch_size=64, verbose=0,
                     augment=None, copies=0, return_labels=False):
    """Runs `feature_model` in inference mode over images, batch by batch.

    Only the features are kept: the images are streamed (an `ImageSource`
    or a `tf.data.Dataset` is never held in memory whole), which is what
    lets a frozen backbone's features be cached for data larger than memory.

    What it adds to Keras: `model.predict` on the arrays or the stream, plus
    the labels read from the same stream, several outputs kept apart, an
    optional augmentation applied before the model (`copies` augmented
    copies of every image), a `keras.utils.Progbar` when `verbose`, and
    one row per image for a model built in a `tf.distribute` scope
    (`kerascnn.core.distribute.batch_predictor`).

    Args:
        feature_model: A Keras model (one or several outputs).
        images: Raw images `(n, h, w, c)`, an `ImageSource`, or a batched
            `tf.data.Dataset` of images or `(images, labels)`.
        batch_size: Batch size for arrays and sources. Defaults to `64`.
        verbose: `1` shows a progress bar. Defaults to `0`.
        augment: Optional augmentation layer (called with
            `training=True`), for the copies.
        copies: Number of augmented copies of every image, computed after
            the original images (row `k * n + i` is copy `k` of image `i`,
            copy 0 being the original). Defaults to `0`.
        return_labels: Also return the labels read from the stream (for
            arrays: `None`). Defaults to `False`.

    Returns:
        The features (an array, or a list of arrays for several outputs);
        with `return_labels`, `(features, labels)`.
    """
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    copies = _validation.check_non_negative_int("copies", copies)
    if copies and augment is None:
        _validation.fail("augment", "an augmentation layer when copies > 0",
                         augment)
    from kerascnn.core import distribute

    # Not `predict_on_batch` for a model of a MirroredStrategy: it would
    # return every row once per replica.
    predict = distribute.batch_predictor(feature_model)
    outputs, labels = None, []
    rounds = []
    for copy in range(copies + 1):
        iterator, steps = _batches(images, batch_size)
        bar = keras.utils.Progbar(
            steps, unit_name="batch") if verbose else None
        if verbose and copies:
            print(f"Features, copy {copy + 1}/{copies + 1}:")
        parts, seen = None, 0
        for batch, batch_labels in iterator:
            batch = batch.astype("float32")
            if copy:
                batch = np.asarray(augment(batch, training=True))
            out = predict(batch)
            if not isinstance(out, (list, tuple)):
                out = [out]
            if parts is None:
                parts = [[] for _ in out]
            for part, o in zip(parts, out):
                part.append(np.asarray(o))
            if copy == 0 and batch_labels is not None:
                labels.append(batch_labels)
            seen += 1
            if bar is not None:
                bar.update(seen)
        if parts is None:
            _validation.fail("images", "at least one image", images)
        rounds.append([np.concatenate(part, axis=0) for part in parts])
    outputs = [np.concatenate([r[i] for r in rounds], axis=0)
               for i in range(len(rounds[0]))]
    result = outputs if len(outputs) > 1 else outputs[0]
    if return_labels:
        labels = (np.concatenate(labels).astype("int64").reshape(-1)
                  if labels else None)
        return result, labels
    return result



def feature_dataset(features, labels, batch_size, shuffle=False, seed=None):
    """Cached features and their labels as a batched `tf.data.Dataset`, for
    the `fit` of a head.

    What it adds to `model.fit(features, labels)`: Keras' array adapter
    keeps tf.data's autotuning on, and every epoch of a head, which lasts
    milliseconds, then waits for the autotuning thread at its end
    (`kerascnn.data.pipeline.without_autotune_stall`): 40 epochs of a Dense
    head on 1,000 rows of 256 features took 3.8-4.0 s from arrays against
    1.7 s from this dataset on this project's 2-core machine. With
    `shuffle`, reshuffled every epoch as Keras' `shuffle=True` does; a
    `seed` gives the same order on every worker (so that data sharding
    partitions the rows).
    """
    import tensorflow as tf

    from kerascnn.data.pipeline import without_autotune_stall

    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle:
        dataset = dataset.shuffle(len(labels), seed=seed,
                                  reshuffle_each_iteration=True)
    return without_autotune_stall(
        dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE))


def build_head(input_dim, num_classes, dropout=0.2, name="transfer_head"):
    """The classifier put on pooled features: Dropout then Dense(softmax)."""
    input_dim = _validation.check_positive_int("input_dim", input_dim)
    num_classes = _validation.check_int("num_classes", num_classes, 2)
    dropout = _validation.check_rate("dropout", dropout)
    inputs = keras.Input((input_dim,), name="features")
    x = keras.layers.Dropout(dropout, name="head_dropout")(inputs)
    outputs = keras.layers.Dense(num_classes, activation="softmax",
                                 name="head_dense", dtype="float32")(x)
    return keras.Model(inputs, outputs, name=name)


def pooled_feature_model(backbone):
    """Raw pixels -> the backbone's features, globally average-pooled."""
    inputs = keras.Input(backbone.input_shape, name="pixels")
    features = backbone.model(inputs)
    if len(features.shape) == 4:
        features = keras.layers.GlobalAveragePooling2D(
            name="transfer_pool")(features)
    elif len(features.shape) > 2:
        features = keras.layers.Flatten(name="transfer_flatten")(features)
    return keras.Model(inputs, features, name="pooled_features")


def assemble(backbone, head, name="transfer_model"):
    """Raw pixels -> backbone -> pooling -> `head`: one exportable model."""
    features = pooled_feature_model(backbone)
    inputs = keras.Input(backbone.input_shape, name="pixels")
    x = backbone.model(inputs)
    for layer in features.layers[2:]:  # the pooling layer, if any
        x = layer(x)
    return keras.Model(inputs, head(x), name=name)


def fit_cached_head(backbone, x_train, y_train, validation_data=None,
                    epochs=20, batch_size=32, learning_rate=1e-3,
                    dropout=0.2, patience=5, verbose=0, callbacks=None,
                    jit_compile="auto"):
    """Trains a classifier on a frozen backbone, computing features once.

    With the backbone frozen its output for an image never changes, so
    running it every epoch (what `model.fit` on the whole model does) is
    wasted work: the features are computed once (batch by batch, so
    streamed data works too), the head is trained on them with a plain
    `model.fit` (early stopping on `val_loss` when `validation_data` is
    given), and the end-to-end model is assembled afterwards.
    `benchmarks/bench_transfer_feature_cache.py` measures the speed-up; the
    numbers are the same as training the frozen model.

    What it adds to Keras: the Keras guide trains the frozen model end to
    end; this gives the same head in a fraction of the time and still
    returns one model that saves and exports.

    Args:
        backbone: A `Backbone`; it is used frozen.
        x_train, y_train: Raw training images and integer labels.
        validation_data: Optional `(x_val, y_val)`.
        epochs, batch_size, learning_rate, dropout, patience, verbose:
            As for `model.fit`, Adam and EarlyStopping.
        callbacks: Optional extra callbacks for the head's fit.
        jit_compile: Keras' `compile` argument. Defaults to `"auto"`.

    Returns:
        A `CachedHead`.
    """
    x_train = _validation.check_images("x_train", x_train)
    y_train = _validation.check_labels("y_train", y_train,
                                       num_samples=len(x_train),
                                       samples_name="x_train")
    epochs = _validation.check_positive_int("epochs", epochs)
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    patience = _validation.check_non_negative_int("patience", patience)
    num_classes = int(y_train.max()) + 1
    if validation_data is not None:
        x_val, y_val = validation_data
        x_val = _validation.check_images("validation_data", x_val)
        y_val = _validation.check_labels("validation_data", y_val,
                                         num_samples=len(x_val),
                                         samples_name="validation_data")
        num_classes = max(num_classes, int(y_val.max()) + 1)
    feature_model = pooled_feature_model(backbone)
    start = time.perf_counter()
    train_features = extract_features(feature_model, x_train,
                                      verbose=verbose)
    val = None
    if validation_data is not None:
        val = (extract_features(feature_model, x_val, verbose=verbose),
               y_val)
    feature_seconds = time.perf_counter() - start
    head = build_head(train_features.shape[-1], num_classes, dropout)
    # The head's steps are tiny: run a whole epoch per call, not one step.
    compile_classifier(head, learning_rate=learning_rate,
                       jit_compile=jit_compile, steps_per_execution=max(
                           1, -(-len(train_features) // batch_size)))
    callbacks = list(callbacks or [])
    if val is not None and patience:
        callbacks.append(early_stopping(patience))
    start = time.perf_counter()
    if val is not None:
        val = feature_dataset(*val, batch_size)
    history = head.fit(feature_dataset(train_features, y_train, batch_size,
                                       shuffle=True),
                       validation_data=val, epochs=epochs,
                       callbacks=callbacks, verbose=verbose, shuffle=False)
    train_seconds = time.perf_counter() - start
    model = compile_classifier(assemble(backbone, head),
                               learning_rate=learning_rate)
    return CachedHead(model, head, dict(history.history), feature_seconds,
                      train_seconds)
