"""One call that applies the transfer table: `kerascnn.transfer.fit`."""

import keras
import numpy as np
from sklearn.model_selection import train_test_split

from kerascnn import _validation
from kerascnn.transfer import blocks as blocks_lib
from kerascnn.transfer import discriminative
from kerascnn.transfer import feature_cache
from kerascnn.transfer import linear_probe
from kerascnn.transfer import plan as plan_lib
from kerascnn.transfer import registry


class TransferResult:
    """What `fit` returns.

    Attributes:
        model: The end-to-end Keras model (raw pixels -> class
            probabilities), compiled, ready to `save` or export.
        plan: The `TransferPlan` that was applied.
        backbone: The `Backbone` (its flags show what was left trainable).
        history: Dict phase name -> `History.history` dict.
        val_accuracy: Accuracy of `model` on the validation data.
        probe: The `Probe` of the linear-probe cell, else `None`.
    """

    def __init__(self, model, plan, backbone, history, val_accuracy,
                 probe=None):
        self.model, self.plan, self.backbone = model, plan, backbone
        self.history, self.val_accuracy, self.probe = (history, val_accuracy,
                                                       probe)

    def summary(self):
        """The plan's summary and the validation accuracy."""
        text = self.plan.summary()
        if self.probe is not None:
            scores = ", ".join(f"{k}={v:.3f}"
                               for k, v in self.probe.scores.items())
            text += ("\nLinear classifier validation accuracy by block: "
                     + scores)
            text += f" -> {self.probe.best_block}"
        return text + f"\nValidation accuracy: {self.val_accuracy:.4f}"


def _split(x, y, validation_data, validation_split, seed):
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(
                validation_data) != 2:
            _validation.fail("validation_data", "a tuple (x_val, y_val)",
                             validation_data)
        x_val = _validation.check_images("validation_data", validation_data[0])
        y_val = np.asarray(validation_data[1]).astype("int64").reshape(-1)
        if len(y_val) != len(x_val):
            _validation.fail("validation_data", "images and labels of equal "
                             "length", f"{len(x_val)} images, {len(y_val)} "
                             "labels")
        return x, y, x_val, y_val
    validation_split = _validation.check_fraction("validation_split",
                                                  validation_split)
    counts = np.bincount(y)
    if counts[counts > 0].min() < 2:
        _validation.fail("y", "at least 2 images per class to split off "
                         "validation data (or pass validation_data)",
                         f"class counts {counts.tolist()}")
    num_classes = int((counts > 0).sum())
    n_val = max(num_classes, int(round(validation_split * len(y))))
    if len(y) - n_val < num_classes:
        _validation.fail("validation_split", "small enough to leave every "
                         "class in training", validation_split)
    x_train, x_val, y_train, y_val = train_test_split(
        x, y, test_size=n_val, stratify=y, random_state=seed)
    return x_train, y_train, x_val, y_val


def fit(backbone, x, y, validation_data=None, validation_split=0.2,
        source_images=None, plan=None, weights="imagenet", epochs=30,
        batch_size=32, patience=5, learning_rate=1e-3, head_epochs=200,
        head_patience=20, seed=0, verbose=0,
        **recommend_kwargs):
    """Chooses the transfer plan for the data, runs it, returns the model.

    Steps: check the data; split off validation data (stratified) unless
    given; `recommend` the cell and plan (size from images per class,
    similarity from mean features); run its phases: a head trained on
    cached frozen features, the linear probe over stages, or fine-tuning of
    the top blocks at a tenth of the head's learning rate (BatchNorm frozen,
    optionally gradual unfreezing and discriminative learning rates), each
    with early stopping on `val_loss`; return one Keras model that takes raw
    pixels and saves / exports.

    What it adds to Keras: the decision of what to freeze, and the whole
    multi-phase fine-tuning recipe of the Keras guide in one call.

    Args:
        backbone: A `Backbone`, a registry name (built for the images'
            shape with `weights`) or a Keras model to transfer from.
        x: Raw training images `(n, height, width, channels)`, 0-255.
        y: Integer labels `0..num_classes-1`, at least two classes.
        validation_data: Optional `(x_val, y_val)`.
        validation_split: Fraction split off when `validation_data` is
            `None`. Defaults to `0.2`.
        source_images: Optional raw source images for the similarity.
        plan: Optional `TransferPlan` to apply instead of recommending one.
        weights: Weights of a registry backbone: `"imagenet"`, `None` or a
            file. Defaults to `"imagenet"`.
        epochs: Most epochs per end-to-end phase. Defaults to `30`.
        batch_size: Defaults to `32`.
        patience: Early-stopping patience (epochs). Defaults to `5`.
        learning_rate: The head's learning rate. Defaults to `1e-3`.
        head_epochs: Most epochs of the head on cached features (cheap: no
            backbone pass). Defaults to `200`.
        head_patience: Early-stopping patience of the head. Defaults to
            `20`.
        seed: Seed of the validation split and the probe. Defaults to `0`.
        verbose: Keras verbosity. Defaults to `0`.
        **recommend_kwargs: Passed to `recommend` (`large_threshold`,
            `cosine_threshold`, `distance_threshold`, `head`, `lr_decay`,
            `gradual_unfreeze_every`, `similar`, `large`, ...).

    Returns:
        A `TransferResult`.
    """
    x = _validation.check_images("x", x)
    y = _validation.check_labels("y", y, num_samples=len(x))
    epochs = _validation.check_positive_int("epochs", epochs)
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    patience = _validation.check_non_negative_int("patience", patience)
    head_epochs = _validation.check_positive_int("head_epochs", head_epochs)
    head_patience = _validation.check_non_negative_int("head_patience",
                                                       head_patience)
    learning_rate = _validation.check_positive_float("learning_rate",
                                                     learning_rate)
    if plan is not None and not isinstance(plan, plan_lib.TransferPlan):
        _validation.fail("plan", "a TransferPlan from recommend()", plan)
    if isinstance(backbone, (str, keras.Model)):
        backbone = registry.get_backbone(
            backbone, input_shape=tuple(x.shape[1:]), weights=weights)
    elif not isinstance(backbone, registry.Backbone):
        _validation.fail("backbone", "a Backbone, a registry name or a Keras "
                         "model", backbone)
    if tuple(x.shape[1:]) != backbone.input_shape:
        shape = ", ".join(map(str, backbone.input_shape))
        _validation.fail("x", f"images of shape (n, {shape}) for backbone "
                         f"{backbone.name!r}",
                         f"images of shape {x.shape}")
    x_train, y_train, x_val, y_val = _split(x, y, validation_data,
                                            validation_split, seed)
    if tuple(x_val.shape[1:]) != backbone.input_shape:
        _validation.fail("validation_data", "images of the training shape",
                         f"images of shape {x_val.shape}")
    batch_size = _validation.check_batch_size(batch_size, len(x_train))
    if plan is None:
        plan = plan_lib.recommend(
            backbone, x_train, y_train, source_images=source_images,
            learning_rate=learning_rate, **recommend_kwargs)
    x_train = x_train.astype("float32")
    x_val = x_val.astype("float32")
    history, probe = {}, None
    blocks_lib.freeze_backbone(backbone)
    if plan.strategy == "linear_probe":
        probe = linear_probe.fit_linear_probe(
            backbone, x_train, y_train, x_val, y_val,
            blocks=plan.probe_blocks or None,
            classifier=plan.head if plan.head in linear_probe.CLASSIFIERS
            else "svm", seed=seed)
        model = probe.model
    elif plan.strategy == "linear_head" and plan.head != "dense":
        # A converged, regularized linear classifier on the top features,
        # no early stopping on a handful of validation images needed.
        probe = linear_probe.fit_linear_probe(
            backbone, x_train, y_train, x_val, y_val, blocks=[-1],
            classifier=plan.head, seed=seed, scaling="global")
        model = probe.model
    else:
        cached = feature_cache.fit_cached_head(
            backbone, x_train, y_train, (x_val, y_val), epochs=head_epochs,
            batch_size=batch_size, learning_rate=plan.head_learning_rate,
            patience=head_patience, verbose=verbose)
        model = cached.model
        history["head"] = cached.history
        for phase in plan.phases:
            if phase.cached:
                continue
            blocks_lib.set_trainable_blocks(backbone, phase.trainable_blocks)
            optimizer = keras.optimizers.Adam(phase.learning_rate)
            if plan.lr_decay is not None:
                optimizer = discriminative.discriminative_optimizer(
                    optimizer, plan_lib.block_lr_multipliers(
                        backbone, phase.trainable_blocks, plan.lr_decay))
            feature_cache.compile_classifier(model, optimizer=optimizer)
            gradual = phase.name.startswith("unfreeze-")
            callbacks = [] if gradual or not patience else [
                feature_cache.early_stopping(patience)]
            result = model.fit(
                x_train, y_train, validation_data=(x_val, y_val),
                epochs=plan.gradual_unfreeze_every if gradual else epochs,
                batch_size=batch_size, callbacks=callbacks, verbose=verbose)
            history[phase.name] = dict(result.history)
        feature_cache.compile_classifier(model, plan.head_learning_rate)
    probabilities = model.predict(x_val, batch_size=batch_size, verbose=0)
    val_accuracy = float(np.mean(np.argmax(probabilities, -1) == y_val))
    return TransferResult(model, plan, backbone, history, val_accuracy, probe)
