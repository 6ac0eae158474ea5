"""Train a head on a frozen backbone's features, computed once."""

import collections
import time

import keras
import numpy as np

from kerascnn import _validation

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


def extract_features(feature_model, images, batch_size=64):
    """Runs `feature_model` in inference mode over `images` in batches."""
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    outputs = []
    for start in range(0, len(images), batch_size):
        out = feature_model(images[start:start + batch_size], training=False)
        outputs.append(np.asarray(out))
    return np.concatenate(outputs, axis=0)


def build_head(input_dim, num_classes, dropout=0.2, name="transfer_head"):
    """The classifier put on pooled features: Dropout then Dense(softmax)."""
    input_dim = _validation.check_positive_int("input_dim", input_dim)
    num_classes = _validation.check_int("num_classes", num_classes, 2)
    dropout = _validation.check_rate("dropout", dropout)
    inputs = keras.Input((input_dim,), name="features")
    x = keras.layers.Dropout(dropout, name="head_dropout")(inputs)
    outputs = keras.layers.Dense(num_classes, activation="softmax",
                                 name="head_dense")(x)
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


def compile_classifier(model, learning_rate=1e-3, optimizer=None,
                       steps_per_execution=1):
    """Compiles with Adam, sparse cross-entropy and accuracy."""
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy", metrics=["accuracy"],
        steps_per_execution=steps_per_execution)
    return model


def early_stopping(patience, monitor="val_loss"):
    """kerascnn's EarlyStopping when present, else Keras's, best restored."""
    try:
        from kerascnn.callbacks import EarlyStopping
    except ImportError:  # kerascnn.callbacks not built yet
        EarlyStopping = keras.callbacks.EarlyStopping
    return EarlyStopping(monitor=monitor, patience=patience,
                         restore_best_weights=True)


def fit_cached_head(backbone, x_train, y_train, validation_data=None,
                    epochs=20, batch_size=32, learning_rate=1e-3,
                    dropout=0.2, patience=5, verbose=0, callbacks=None):
    """Trains a classifier on a frozen backbone, computing features once.

    With the backbone frozen its output for an image never changes, so
    running it every epoch (what `model.fit` on the whole model does) is
    wasted work: the features are computed once, the head is trained on
    them with a plain `model.fit` (early stopping on `val_loss` when
    `validation_data` is given), and the end-to-end model is assembled
    afterwards. `benchmarks/bench_transfer_feature_cache.py` measures the
    speed-up; the numbers are the same as training the frozen model.

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
    train_features = extract_features(feature_model,
                                      x_train.astype("float32"))
    val = None
    if validation_data is not None:
        val = (extract_features(feature_model, x_val.astype("float32")),
               y_val)
    feature_seconds = time.perf_counter() - start
    head = build_head(train_features.shape[-1], num_classes, dropout)
    # The head's steps are tiny: run a whole epoch per call, not one step.
    compile_classifier(head, learning_rate, steps_per_execution=max(
        1, -(-len(train_features) // batch_size)))
    callbacks = list(callbacks or [])
    if val is not None and patience:
        callbacks.append(early_stopping(patience))
    start = time.perf_counter()
    history = head.fit(train_features, y_train, validation_data=val,
                       epochs=epochs, batch_size=batch_size,
                       callbacks=callbacks, verbose=verbose)
    train_seconds = time.perf_counter() - start
    model = compile_classifier(assemble(backbone, head), learning_rate)
    return CachedHead(model, head, dict(history.history), feature_seconds,
                      train_seconds)
