"""One call that applies the transfer table: `kerascnn.transfer.fit`."""

import dataclasses
import warnings

import keras
import numpy as np

from kerascnn import _validation
from kerascnn.core import data as core_data
from kerascnn.core import distribute
from kerascnn.core import trainer
from kerascnn.core.callbacks import early_stopping
from kerascnn.core.compile import compile_classifier
from kerascnn.core.results import Result
from kerascnn.core.settings import TRANSFER_AUGMENT_OPTIONS
from kerascnn.data.sources import resolve_data
from kerascnn.transfer import blocks as blocks_lib
from kerascnn.transfer import discriminative
from kerascnn.transfer import feature_cache
from kerascnn.transfer import linear_probe
from kerascnn.transfer import plan as plan_lib
from kerascnn.transfer import registry
from kerascnn.transfer import views as views_lib

AUGMENT_OPTIONS = TRANSFER_AUGMENT_OPTIONS
MAX_AUGMENTED_IMAGES = 1500
"""`copies="auto"` keeps `n * (copies + 1 + views)` at or under this."""
AUTO_COPIES = 10
"""Augmented copies per image for small targets with `copies="auto"`."""
SMALL_MAX_IMAGES = 20000
"""Small-target plans hold at most this many raw images in memory."""
VIEW_OPTIONS = ("auto", "none")


@dataclasses.dataclass
class TransferResult(Result):
    """What `fit` returns.

    Attributes:
        model: The end-to-end Keras model (raw pixels -> class
            probabilities), compiled, ready to `save` or export.
        plan: The `TransferPlan` that was applied.
        backbone: The `Backbone` (its flags show what was left trainable).
        history: Dict phase name -> `History.history` dict.
        val_accuracy: Accuracy of `model` on the validation data, or `None`
            when no validation data was used.
        cv_accuracy: Cross-validated accuracy on the training labels of the
            chosen block and `C` (small targets without validation data),
            else `None`.
        probe: The `Probe` of the linear-classifier plans, else `None`.
        augment: The augmentation preset used for the head's features
            (`"none"` when none).
        copies: Augmented copies per training image.
        views: Names of the fixed views (rotations, zooms, mirror) whose
            features the head was also trained on (empty when none).
        averaged_views: Whether `model` averages its probabilities over the
            image and those views (test-time augmentation, kept when the
            cross-validation does not find it worse).
        strategy: One line naming the `tf.distribute` strategy the Keras
            phases (Dense head and fine-tuning) ran under, its workers,
            replicas and batch (`kerascnn.core.distribute.describe_strategy`;
            not `plan.strategy`, the transfer recipe); `None` for the
            small-target plans, which do not distribute.
        replicas: Replicas of that strategy (`1` for the small-target
            plans).
        batch_size: Global batch of the Keras phases (per replica x
            replicas), or `None` for the small-target plans.
    """

    model: object
    plan: object
    backbone: object
    history: dict
    val_accuracy: object = None
    cv_accuracy: object = None
    probe: object = None
    augment: str = "none"
    copies: int = 0
    views: tuple = ()
    averaged_views: bool = False
    strategy: str = None
    replicas: int = 1
    batch_size: int = None

    def summary_lines(self):
        lines = self.plan.summary().splitlines()
        if self.copies:
            lines.append(f"Head trained on the features of the images and "
                         f"{self.copies} augmented copies of each "
                         f"({self.augment!r} preset).")
        if self.views:
            lines.append("Head also trained on the fixed views "
                         f"{', '.join(self.views)} of each image; predictions"
                         + (" averaged over the image and its views."
                            if self.averaged_views else
                            " from the image alone (cross-validated)."))
        if self.probe is not None:
            how = {"validation": "validation accuracy",
                   "cross-validation": "cross-validated accuracy on the "
                   "training labels", "given": "no choice to make"}[
                       self.probe.selection]
            if self.probe.selection != "given":
                scores = ", ".join(f"{k}={v:.3f}"
                                   for k, v in self.probe.scores.items())
                lines.append(f"Linear classifier by block ({how}): {scores}"
                             f" -> {self.probe.best_block}, C="
                             f"{self.probe.C:g}")
        if self.strategy is not None and not self.strategy.startswith(
                "default strategy"):
            lines.append(f"Trained with {self.strategy}.")
        if self.cv_accuracy is not None:
            lines.append(f"Cross-validated accuracy: {self.cv_accuracy:.4f}")
        if self.val_accuracy is not None:
            lines.append(f"Validation accuracy: {self.val_accuracy:.4f}")
        return lines

    def to_dict(self):
        return {"plan": self.plan.to_dict(), "history": self.history,
                "val_accuracy": self.val_accuracy,
                "cv_accuracy": self.cv_accuracy, "augment": self.augment,
                "copies": self.copies, "views": list(self.views),
                "averaged_views": self.averaged_views,
                "best_block": getattr(self.probe, "best_block", None),
                "strategy": self.strategy,
                "replicas": self.replicas, "batch_size": self.batch_size}


def _is_stream_kind(x):
    """A folder / dataset name, a `tf.data.Dataset`, a `PyDataset` or an
    `ImageSource` (what `resolve_data` takes beyond arrays)."""
    import os

    if isinstance(x, (str, bytes, os.PathLike)):
        return True
    if hasattr(x, "dataset") and hasattr(x, "image_shape"):
        return True
    if isinstance(x, keras.utils.PyDataset):
        return True
    return feature_cache._is_dataset(x)


def _resolve(x, y, validation_data, image_size, seed):
    """Arrays stay arrays; every other kind goes through `resolve_data`."""
    if not _is_stream_kind(x):
        if y is None:
            _validation.fail("y", "the labels of the images `x`", y)
        x = _validation.check_images("x", x)
        y = _validation.check_labels("y", y, num_samples=len(x))
        source, num_classes = None, None
    else:
        if y is not None:
            _validation.fail("y", "None when `x` is a folder, a dataset "
                             "name or a stream (the labels come with it)", y)
        if hasattr(x, "dataset") and hasattr(x, "image_shape"):
            source = x  # an ImageSource (the CLI's splits)
            labels = source.labels
            if labels is None:
                _validation.fail("x", "an ImageSource whose labels are known",
                                 x)
            num_classes = int(np.max(labels)) + 1
        else:
            resolved = resolve_data(x, validation_data=validation_data,
                                    validation_split=0.0, test_split=0.0,
                                    seed=seed, image_size=image_size,
                                    name="x")
            source, num_classes = resolved.train, resolved.num_classes
            validation_data = resolved.validation
        x = None
    val_source = None
    if validation_data is not None and not hasattr(validation_data,
                                                   "dataset"):
        if isinstance(validation_data, (tuple, list)) and len(
                validation_data) == 2 and isinstance(
                    validation_data[0], np.ndarray):
            x_val = _validation.check_images("validation_data",
                                             validation_data[0])
            y_val = _validation.check_labels(
                "validation_data", validation_data[1],
                num_samples=len(x_val), samples_name="validation_data")
            validation_data = (x_val, y_val)
        else:
            validation_data = resolve_data(
                validation_data, validation_split=0.0, test_split=0.0,
                seed=seed, image_size=image_size,
                name="validation_data").train
    if hasattr(validation_data, "dataset"):
        val_source, validation_data = validation_data, None
    return x, y, source, num_classes, validation_data, val_source


def _small_arrays(source):
    x, y = source.to_numpy(max_images=SMALL_MAX_IMAGES)
    return np.asarray(x, "float32"), np.asarray(y, "int64")


def _split(x, y, validation_split, seed):
    """A stratified validation split (for the plans that need one)."""
    from sklearn.model_selection import train_test_split

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


def _augmentation(augment, channels, seed):
    from kerascnn.data.augmentation import augmentation

    if augment == "none":
        return "none", None
    if augment == "auto":
        # One channel: digits, characters, scans, medical slices: small
        # shifts, rotations and zooms, never flips. Colour photographs:
        # the "natural" preset (flips included).
        augment = "digits" if channels == 1 else "natural"
    return augment, augmentation(augment, seed=seed)


def _copies(copies, n, num_views=0):
    """Random augmented copies per image: `"auto"` keeps the rows of the
    images, the copies and the `num_views` views within
    `MAX_AUGMENTED_IMAGES` (at most `AUTO_COPIES` copies)."""
    if copies == "auto":
        return int(max(0, min(AUTO_COPIES,
                              MAX_AUGMENTED_IMAGES // n - 1 - num_views)))
    return _validation.check_non_negative_int("copies", copies)


def _views(views, preset, input_shape, n):
    """The preset's fixed views when `views="auto"` and their rows fit in
    `MAX_AUGMENTED_IMAGES` (`n * (1 + views)`), else `None`."""
    if views == "none" or preset == "none":
        return None
    chosen = views_lib.preset_views(preset, input_shape)
    if not chosen.transforms or n * (1 + len(
            chosen.transforms)) > MAX_AUGMENTED_IMAGES:
        return None
    return chosen


def fit(backbone, x, y=None, validation_data=None, validation_split="auto",
        source_images=None, plan=None, weights="imagenet", epochs=30,
        batch_size=32, patience=5, learning_rate=1e-3, head_epochs=200,
        head_patience=20, augment="auto", copies="auto", views="auto",
        callbacks=None,
        precision=None, jit_compile="auto", steps_per_execution=1,
        image_size=None, seed=0, verbose=0, strategy="auto",
        **recommend_kwargs):
    """Chooses the transfer plan for the data, runs it, returns the model.

    Steps: check the data; `recommend` the cell and plan from all the
    labelled images (size from images per class, similarity from pooled
    spatial features); run its phases. Small targets (the linear head, or
    the linear probe over stages) spend no labels on a validation split:
    the block and the regularization `C` are chosen by cross-validation on
    the training labels, then the classifier is refitted on all of them,
    on the features of the images, of augmented copies of each and of
    fixed views of each (rotations and zooms at the ends of the
    augmentation's ranges); the cross-validation also decides whether the
    model averages its predictions over the image and its views.
    Fine-tuning plans (large targets) split off validation data for early
    stopping (unless given), train a head on cached frozen features, then
    fine-tune the top blocks at a tenth of the head's learning rate
    (BatchNorm frozen, optionally gradual unfreezing and discriminative
    learning rates). Returns one Keras model that takes raw pixels and
    saves / exports.

    What it adds to Keras: the decision of what to freeze, the choice of
    block and regularization without a validation split, and the whole
    multi-phase fine-tuning recipe of the Keras guide in one call, on one
    device, several GPUs or several machines (`strategy`).

    Args:
        backbone: A `Backbone`, a registry name (built for the images'
            shape with `weights`) or a Keras model to transfer from.
        x: Raw training images `(n, height, width, channels)`, 0-255; or a
            class folder, a dataset name, a `tf.data.Dataset` of
            `(image, label)` or a `keras.utils.PyDataset` (the kinds of
            `kerascnn.data.resolve_data`; streamed, features cached batch
            by batch).
        y: Integer labels `0..num_classes-1` for arrays; `None` for the
            other kinds.
        validation_data: Optional `(x_val, y_val)` or the same kinds as
            `x`. Small targets use it to choose the block and `C` instead
            of cross-validation.
        validation_split: Fraction split off for the fine-tuning plans when
            `validation_data` is `None`, or `"auto"` (`0.2` for those plans;
            none for the small-target plans, which cross-validate).
            Defaults to `"auto"`.
        source_images: Optional raw source images for the similarity.
        plan: Optional `TransferPlan` to apply instead of recommending one.
        weights: Weights of a registry backbone: `"imagenet"`, `None` or a
            file. Defaults to `"imagenet"`.
        epochs: Most epochs per end-to-end phase. Defaults to `30`.
        batch_size: Batch size per replica of the Keras phases (the global
            batch is `batch_size x replicas`), capped so that the global
            batch fits the training images. Defaults to `32`.
        patience: Early-stopping patience (epochs). Defaults to `5`.
        learning_rate: The head's learning rate. Defaults to `1e-3`.
        head_epochs: Most epochs of the Dense head on cached features
            (cheap: no backbone pass). Defaults to `200`.
        head_patience: Early-stopping patience of the head. Defaults to
            `20`.
        augment: Augmentation of the small-target head's training features:
            `"auto"` (`"digits"` for one-channel images: small shifts,
            rotations and zooms, never flips; `"natural"` for RGB),
            `"digits"`, `"natural"` or `"none"`. Defaults to `"auto"`.
        copies: Augmented copies per training image, or `"auto"` (10, fewer
            when that would exceed 1,500 feature rows with the images and
            views, none above 750 images: the cross-validated logistic
            regression stays a matter of seconds). Defaults to `"auto"`.
        views: `"auto"` (the augmentation preset's fixed views, see
            `kerascnn.transfer.views.preset_views`: for `"digits"` rotations
            by +-10.8 degrees and zooms by 0.9 and 1.1, in training and,
            unless cross-validation finds it worse, averaged at prediction;
            used when the images and views make at most 1,500 feature rows,
            the random copies then filling the rest) or `"none"`. Small
            targets only. Defaults to `"auto"`.
        callbacks: Optional Keras callbacks for every Keras training phase
            (the Dense head and fine-tuning).
        precision: `None` (the global policy), `"float32"`,
            `"mixed_float16"`, `"mixed_bfloat16"` or `"auto"`, for the
            fine-tuning phases. Defaults to `None`.
        jit_compile: `"auto"`, `True` or `False` (XLA). Defaults to
            `"auto"`.
        steps_per_execution: Batches per compiled call while fine-tuning.
            Defaults to `1`.
        image_size: Resize size for a folder `x`. Defaults to `None`.
        seed: Seed of the split, the folds and the augmentation. Defaults
            to `0`.
        verbose: Keras verbosity; `1` also shows a progress bar on feature
            extraction and prints the strategy line. Defaults to `0`.
        strategy: `"auto"` (`MultiWorkerMirroredStrategy` when `TF_CONFIG`
            names several workers, `MirroredStrategy` over several GPUs,
            else the strategy in scope), `None` (the strategy in scope) or a
            `tf.distribute.Strategy`, as in `kerascnn.training.fit`
            (`kerascnn.core.distribute`). The fine-tuning plans create
            every variable in its scope: a registry name or a Keras model
            is built there (after `recommend` when no `plan` is given:
            once outside to measure the data, once in the scope), a given
            `Backbone` is cloned into it (blocks, names and weights kept)
            when the strategy is not the one in scope; the head and the
            end-to-end model are built and compiled there, with the global
            batch. The cached-feature pass reads every training image on
            every worker; the head's and fine-tuning batches are sharded,
            each worker training on different ones (a folder by file, each
            worker decoding only its own files; arrays and streams by
            data). The small-target plans (linear probe, linear head) fit a
            scikit-learn classifier on one pass of features and do not
            distribute: every worker computes the same result. Defaults to
            `"auto"`.
        **recommend_kwargs: Passed to `recommend` (`large_threshold`,
            `cosine_threshold`, `distance_threshold`, `head`, `lr_decay`,
            `gradual_unfreeze_every`, `similar`, `large`, ...).

    Returns:
        A `TransferResult`.
    """
    epochs = _validation.check_positive_int("epochs", epochs)
    batch_size = _validation.check_positive_int("batch_size", batch_size)
    patience = _validation.check_non_negative_int("patience", patience)
    head_epochs = _validation.check_positive_int("head_epochs", head_epochs)
    head_patience = _validation.check_non_negative_int("head_patience",
                                                       head_patience)
    learning_rate = _validation.check_positive_float("learning_rate",
                                                     learning_rate)
    if validation_split != "auto":
        validation_split = _validation.check_fraction("validation_split",
                                                      validation_split)
    augment = _validation.check_option("augment", augment, AUGMENT_OPTIONS)
    if copies != "auto":
        copies = _validation.check_non_negative_int("copies", copies)
    views = _validation.check_option("views", views, VIEW_OPTIONS)
    if callbacks is not None and not (isinstance(callbacks, (list, tuple))
                                      and all(isinstance(
                                          c, keras.callbacks.Callback)
                                          for c in callbacks)):
        _validation.fail("callbacks", "a list of keras.callbacks.Callback",
                         callbacks)
    callbacks = list(callbacks or [])
    verbose = _validation.check_int("verbose", verbose, 0, 2)
    # Before any other TensorFlow op (MultiWorkerMirroredStrategy needs it).
    strategy = distribute.resolve_strategy(strategy)
    policy = distribute.resolve_precision(precision)
    jit_compile = distribute.check_jit_compile(jit_compile)
    steps_per_execution = distribute.check_steps_per_execution(
        steps_per_execution)
    if plan is not None and not isinstance(plan, plan_lib.TransferPlan):
        _validation.fail("plan", "a TransferPlan from recommend()", plan)
    if not isinstance(backbone, (str, keras.Model, registry.Backbone)):
        _validation.fail("backbone", "a Backbone, a registry name or a Keras "
                         "model", backbone)
    x, y, source, num_classes, validation_data, val_source = _resolve(
        x, y, validation_data, image_size, seed)
    input_shape = tuple(x.shape[1:]) if source is None else tuple(
        source.image_shape)
    import tensorflow as tf

    # Variables of the Keras phases must be created in the strategy's scope.
    clone = strategy is not tf.distribute.get_strategy()
    given = backbone if isinstance(backbone, (str, keras.Model)) else None
    in_scope = not clone
    if given is not None:
        if clone and plan is not None and not plan.linear_classifier:
            with strategy.scope():
                backbone = registry.get_backbone(
                    given, input_shape=input_shape, weights=weights)
            in_scope = True
        else:
            backbone = registry.get_backbone(given, input_shape=input_shape,
                                             weights=weights)
    if input_shape != backbone.input_shape:
        shape = ", ".join(map(str, backbone.input_shape))
        _validation.fail("x", f"images of shape (n, {shape}) for backbone "
                         f"{backbone.name!r}",
                         "images of shape ("
                         + ", ".join(map(str, ((len(x) if source is None else
                                                source.num_samples or "n"),)
                                         + input_shape)) + ")")
    if validation_data is not None and tuple(
            validation_data[0].shape[1:]) != backbone.input_shape:
        _validation.fail("validation_data", "images of the training shape",
                         f"images of shape {validation_data[0].shape}")
    if plan is None:
        if source is None:
            plan_images, plan_labels = x, y
        else:
            plan_images, plan_labels = plan_lib.plan_sample(
                source, num_classes, 512, seed=seed)
        plan = plan_lib.recommend(
            backbone, plan_images, plan_labels, source_images=source_images,
            learning_rate=learning_rate, **recommend_kwargs)
    small = plan.linear_classifier
    if not small and not in_scope:
        backbone = _backbone_in_scope(strategy, backbone, given, input_shape,
                                      weights)
    history, probe, cv_accuracy, val_accuracy = {}, None, None, None
    preset, count, run, fixed_views = "none", 0, None, None
    blocks_lib.freeze_backbone(backbone)
    if small:
        if verbose and (distribute.num_replicas(strategy) > 1
                        or distribute.num_workers() > 1):
            print(f"transfer.fit: the {plan.strategy} plan fits a linear "
                  "classifier on one pass of features and does not "
                  "distribute; every worker computes the same result.")
        if source is not None:
            x, y = _small_arrays(source)
        if val_source is not None:
            validation_data = _small_arrays(val_source)
        preset, layer = _augmentation(augment, backbone.input_shape[-1],
                                      seed)
        fixed_views = _views(views, preset, backbone.input_shape, len(x))
        count = _copies(copies, len(x), 0 if fixed_views is None else len(
            fixed_views.transforms)) if layer is not None else 0
        x_val, y_val = (validation_data if validation_data is not None
                        else (None, None))
        keras.utils.set_random_seed(seed)
        probe = linear_probe.fit_linear_probe(
            backbone, x, y, x_val, y_val,
            blocks=(plan.probe_blocks or None)
            if plan.strategy == "linear_probe" else [-1],
            classifier=plan.head if plan.head in linear_probe.CLASSIFIERS
            else "svm", C="auto", seed=seed, scaling="global",
            augment=layer if count else None, copies=count,
            views=fixed_views, batch_size=64, verbose=verbose)
        model = probe.model
        if probe.selection == "cross-validation":
            cv_accuracy = probe.scores[probe.best_block]
        if x_val is not None:
            val_accuracy = _accuracy(model, x_val, y_val)
        if not count and fixed_views is None:
            preset = "none"
    else:
        model, history, val_accuracy, run = _fine_tune(
            backbone, plan, x, y, source, validation_data, val_source,
            validation_split, seed, epochs, batch_size, patience,
            head_epochs, head_patience, callbacks, policy, jit_compile,
            steps_per_execution, verbose, strategy)
    return TransferResult(model=model, plan=plan, backbone=backbone,
                          history=history, val_accuracy=val_accuracy,
                          cv_accuracy=cv_accuracy, probe=probe,
                          augment=preset, copies=count,
                          views=() if fixed_views is None
                          else fixed_views.names,
                          averaged_views=probe is not None
                          and probe.views is not None,
                          strategy=None if run is None else run.description,
                          replicas=1 if run is None else run.replicas,
                          batch_size=None if run is None
                          else run.global_batch_size)


def _backbone_in_scope(strategy, backbone, given, input_shape, weights):
    """`backbone` again, its variables created in `strategy`'s scope.

    A registry name or a Keras model (`given`) is built again there; a
    `Backbone` is cloned: the same layers (names, so its blocks and the
    discriminative learning rates still apply), weights and trainable
    flags, and a fresh preprocessing layer.
    """
    with strategy.scope(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # notes said once
        if given is not None:
            return registry.get_backbone(given, input_shape=input_shape,
                                         weights=weights)
        base = keras.models.clone_model(backbone.base)
        base.set_weights(backbone.base.get_weights())
        base.trainable = backbone.base.trainable
        for layer, copy in zip(blocks_lib._iter_layers(backbone.base),
                               blocks_lib._iter_layers(base)):
            copy.trainable = layer.trainable
        preprocessing = type(backbone.preprocessing).from_config(
            backbone.preprocessing.get_config())
        clone = registry.Backbone(backbone.name, base, preprocessing,
                                  backbone.input_shape, backbone.blocks,
                                  spec=backbone.spec, notes=backbone.notes)
    for block in clone.blocks:
        for name in block.layers:
            base.get_layer(name)  # a block naming a lost layer fails here
    return clone


def _accuracy(model, x, y, batch_size=256):
    probabilities = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(probabilities, -1) == y))


def _fine_tune(backbone, plan, x, y, source, validation_data, val_source,
               validation_split, seed, epochs, batch_size, patience,
               head_epochs, head_patience, callbacks, policy, jit_compile,
               steps_per_execution, verbose, strategy):
    """The Dense head on cached features, then fine-tuning phases.

    Returns `(model, history, val_accuracy, StrategyPlan)`.
    """
    split = 0.2 if validation_split == "auto" else validation_split
    if source is None:
        if validation_data is None and val_source is None:
            if split == 0:
                _validation.fail("validation_split", "> 0 for a "
                                 f"{plan.strategy} plan (early stopping), or "
                                 "pass validation_data", validation_split)
            x, y, x_val, y_val = _split(x, y, split, seed)
            validation_data = (x_val, y_val)
        train = _ArraySource(x, y)
    else:
        if validation_data is None and val_source is None:
            _validation.fail("validation_data", "given for a stream (a "
                             f"{plan.strategy} plan stops early on it)",
                             None)
        train = source
    val = val_source if val_source is not None else _ArraySource(
        *validation_data)
    num_train = train.num_samples
    replicas = distribute.num_replicas(strategy)
    # Capped so that the global batch fits the training images.
    per_replica = min(batch_size, max(1, (num_train or batch_size
                                          * replicas) // replicas))
    run = trainer.setup_strategy(strategy, per_replica, num_train,
                                 verbose=verbose)
    global_batch = run.global_batch_size
    val_batch = core_data.eval_batch_size(val.num_samples, global_batch,
                                          run.replicas)
    history = {}
    # One row per image on every worker (not sharded): the features of the
    # whole training split, computed once.
    pooled = feature_cache.pooled_feature_model(backbone)
    train_features, y_train = feature_cache.extract_features(
        pooled, _stream(train), verbose=verbose, return_labels=True)
    val_features, y_val = feature_cache.extract_features(
        pooled, _stream(val), verbose=verbose, return_labels=True)
    num_classes = int(max(y_train.max(), y_val.max())) + 1
    # The same shuffles on every worker, so that data sharding partitions.
    keras.utils.set_random_seed(seed)
    # The head's steps are tiny: a whole epoch per call, on one replica.
    # (Keras 3.15 fails several steps per call under a MirroredStrategy:
    # "You must feed a value for placeholder tensor".)
    head_steps = max(1, -(-len(train_features) // global_batch))
    if run.replicas > 1 or distribute.num_workers() > 1:
        head_steps = 1
    with strategy.scope():
        head = feature_cache.build_head(train_features.shape[-1],
                                        num_classes)
        compile_classifier(head, learning_rate=plan.head_learning_rate,
                           jit_compile=jit_compile,
                           steps_per_execution=head_steps)
    head_callbacks = list(callbacks)
    if head_patience:
        head_callbacks.append(early_stopping(head_patience))
    # Every worker holds all rows; data sharding gives each its share.
    result = head.fit(
        core_data.shard(feature_cache.feature_dataset(
            train_features, y_train, global_batch, shuffle=True, seed=seed)),
        validation_data=core_data.shard(feature_cache.feature_dataset(
            val_features, y_val, val_batch)),
        epochs=head_epochs, callbacks=head_callbacks, verbose=verbose,
        shuffle=False)
    history["head"] = dict(result.history)
    with strategy.scope(), distribute.precision_scope(policy):
        model = feature_cache.assemble(backbone, head)
    # This worker's batches: a folder sharded by file, arrays by data.
    train_ds = train.dataset(global_batch, shuffle=True, seed=seed,
                             shard=True)
    val_ds = core_data.shard(val.dataset(val_batch), "DATA")
    for phase in plan.phases:
        if phase.cached:
            continue
        blocks_lib.set_trainable_blocks(backbone, phase.trainable_blocks)
        with strategy.scope():
            optimizer = keras.optimizers.Adam(phase.learning_rate)
            if plan.lr_decay is not None:
                optimizer = discriminative.discriminative_optimizer(
                    optimizer, plan_lib.block_lr_multipliers(
                        backbone, phase.trainable_blocks, plan.lr_decay))
            compile_classifier(model, optimizer=optimizer,
                               jit_compile=jit_compile,
                               steps_per_execution=steps_per_execution)
        gradual = phase.name.startswith("unfreeze-")
        phase_callbacks = list(callbacks)
        if not gradual and patience:
            phase_callbacks.append(early_stopping(patience))
        result = model.fit(
            train_ds, validation_data=val_ds,
            epochs=plan.gradual_unfreeze_every if gradual else epochs,
            callbacks=phase_callbacks, verbose=verbose,
            shuffle=False)  # the stream is shuffled already
        history[phase.name] = dict(result.history)
    with strategy.scope():
        compile_classifier(model, learning_rate=plan.head_learning_rate)
    labels, probabilities = core_data.predict_source(model, val,
                                                     global_batch)
    val_accuracy = float(np.mean(probabilities.argmax(-1) == labels))
    return model, history, val_accuracy, run


class _ArraySource:
    """Arrays with the part of the `ImageSource` interface used here."""

    def __init__(self, x, y):
        self.x, self.y = np.asarray(x, "float32"), np.asarray(y, "int64")
        self.num_samples = len(self.y)
        self.labels = self.y

    def dataset(self, batch_size, shuffle=False, seed=None, shard=False):
        from kerascnn.data.pipeline import make_dataset

        dataset = make_dataset(self.x, self.y, batch_size=batch_size,
                               shuffle=shuffle, seed=seed)
        # In memory: every worker keeps its share of each global batch.
        return core_data.shard(dataset, "DATA") if shard else dataset


def _stream(source, batch_size=64):
    return source.dataset(min(batch_size, source.num_samples or batch_size))
