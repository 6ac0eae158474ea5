"""`fit`: one call that trains a CNN with the lectures' best practices.

Keras gives `model.fit`; scikit-learn gives splits and reports. `fit` is a
short recipe over `kerascnn.core`: it checks every argument and the data
first, resolves and splits the data (stratified; folders and `tf.data`
stream), builds `build_cnn` with a normalizer adapted on a sample of the
training split (or takes the user's model), and hands the rest to the core:
imbalance handling, the learning-rate range test, named schedules, early
stopping with the best weights restored, resume after a killed process
(`BackupAndRestore`), the batchwise test report, the loss-curve reading and
the divergence check.
"""

import inspect

import keras

from kerascnn import _validation
from kerascnn.core import data as core_data
from kerascnn.core import distribute
from kerascnn.core import trainer
from kerascnn.core.results import FitResult
from kerascnn.core.settings import BALANCE_OPTIONS
from kerascnn.core.settings import OPTIMIZERS
from kerascnn.core.settings import DataSettings
from kerascnn.core.settings import OutputSettings
from kerascnn.core.settings import TrainSettings
from kerascnn.training import defaults

__all__ = ["BALANCE_OPTIONS", "FitResult", "OPTIMIZERS", "fit"]

# build_cnn arguments that `fit` sets itself.
_FIT_OWNED_MODEL_ARGS = (
    "input_shape", "num_classes", "normalizer", "augmentation", "strategy",
    "batch_size", "num_replicas",
)


def fit(
    data,
    model=None,
    *,
    validation_data=None,
    test_data=None,
    validation_split=defaults.VALIDATION_SPLIT,
    test_split=defaults.TEST_SPLIT,
    seed=defaults.SEED,
    epochs=defaults.EPOCHS,
    batch_size=defaults.BATCH_SIZE,
    optimizer=defaults.OPTIMIZER,
    learning_rate=defaults.LEARNING_RATE,
    schedule=defaults.SCHEDULE,
    early_stopping=defaults.EARLY_STOPPING,
    balance="auto",
    augment=defaults.AUGMENT,
    model_kwargs=None,
    strategy="auto",
    precision="float32",
    jit_compile="auto",
    steps_per_execution=1,
    image_size=None,
    color_mode=None,
    on_error="raise",
    cache=None,
    backup_dir=None,
    tensorboard_dir=None,
    plot_dir=None,
    verbose=1,
    callbacks=None,
):
    """Trains and evaluates an image classifier with good defaults.

    Over `model.fit`, this adds: every argument and the data checked before
    anything is built (NaN pixels, labels out of range, one class, mismatched
    counts, an input too small for the conv stack, a batch larger than the
    training split, unknown option names); a stratified train / validation /
    test split; a normalizer adapted on the training split only; imbalance
    detection and handling; the learning-rate range test; named schedules
    sized to the run; early stopping with the best weights restored; resume
    after a crash; a per-class report and a reading of the loss curves.

    The data streams: a folder is listed, split on the file list and
    decoded batch by batch (never held in memory whole); the normalizer is
    adapted on a bounded sample of the training split, the imbalance rules
    read the class counts, and the test report is computed batchwise. The
    plumbing is `kerascnn.core`'s, shared with `tuning.search` and
    `transfer.fit`.

    Args:
        data: Anything `kerascnn.data.sources.resolve_data` accepts:
            `"mnist5k"`, `"digits"`, a folder with one sub-folder per class,
            an `(images, labels)` tuple, a `tf.data.Dataset` of `(image,
            label)` elements (batched or not) or a `keras.utils.PyDataset`;
            or a `kerascnn.data.Splits` (used as given; the split arguments
            are then ignored).
        model: `None` (build one with `kerascnn.models.build_cnn`) or a
            `keras.Model` whose input matches the images and whose output has
            one unit per class. A compiled model keeps its optimizer, loss
            and metrics (a `schedule` or `learning_rate="find"` is then
            refused); `optimizer`, `learning_rate` and `schedule` are used
            to compile an uncompiled one. Defaults to `None`.
        validation_data: Optional explicit validation split, of the same
            kinds as `data`; `validation_split` then does not apply.
            Defaults to `None`.
        test_data: Optional explicit test split, of the same kinds as
            `data`; `test_split` then does not apply. Defaults to `None`.
        validation_split: Fraction in (0, 1) held out for early stopping.
            Defaults to `0.1`.
        test_split: Fraction in (0, 1) held out for the final evaluation.
            Defaults to `0.1`.
        seed: Integer, seeds the split, sampling, augmentation and weights
            (`keras.utils.set_random_seed`). Defaults to `42`.
        epochs: Integer >= 1, the maximum number of epochs. Defaults to
            `defaults.EPOCHS` (16).
        batch_size: Integer >= 1, batch size per replica. Defaults to `64`.
        optimizer: An optimizer name (`"adam"`, `"adamw"`, `"nadam"`,
            `"rmsprop"`, `"sgd"` (Nesterov momentum 0.9), `"adagrad"`,
            `"adamax"`) or a `keras.optimizers.Optimizer`, whose class and
            settings are kept and whose learning rate is set from
            `learning_rate` / `schedule`. Defaults to `"adam"`.
        learning_rate: Float > 0, or `"find"` to run
            `kerascnn.callbacks.find_learning_rate` on the training split
            first and use its suggestion: the suggested `(low, high)` bounds
            for a cyclical schedule, the high bound for a decaying one, their
            geometric mean for a constant rate. Defaults to
            `defaults.LEARNING_RATE` (4e-3, the peak of the one cycle).
        schedule: `None` (constant), `"cyclic"`, `"triangular2"`,
            `"exp_range"`, `"step"`, `"exponential"`, `"inverse_time"`,
            `"one_cycle"` (see
            `kerascnn.training._schedules` for how each is sized) or a
            `keras.optimizers.schedules.LearningRateSchedule`, used as is.
            Cyclical schedules cycle between `learning_rate / 4` and
            `learning_rate` unless `learning_rate="find"`. Defaults to
            `defaults.SCHEDULE` (`"one_cycle"`).
        early_stopping: `True` (stop when `val_loss` has not improved for
            5 epochs and restore the best weights,
            `kerascnn.callbacks.EarlyStopping`), `False`, or `"auto"`: off
            under the `"one_cycle"` schedule, which anneals to 0 over its
            fixed budget so that the last epoch is the one to keep, on
            otherwise (and for a compiled `model`). Defaults to
            `defaults.EARLY_STOPPING` (`"auto"`).
        balance: `"auto"` (when the train split's largest/smallest class
            ratio exceeds the `kerascnn.data` threshold, print a note and use
            balanced class weights), `None`, `"class_weight"`,
            `"effective_number"` (class weights), `"oversample"`,
            `"undersample"` or `"balanced"` (resampling in
            `kerascnn.data.make_dataset`). Defaults to `"auto"`.
        augment: `None`, `"auto"`, a `kerascnn.data.augmentation` preset
            name, or a dict of its arguments (`{"preset": "digits",
            "rotation": 0.05, "translation": 0.08, "zoom": 0.08}`); the
            augmentation runs inside the built model (training only). `"auto"`:
            the preset measured to help on a built-in dataset
            (`kerascnn.datasets.SUITED_AUGMENTATION`: `"digits"` on
            `"mnist5k"`, none on `"digits"`), none for folders, arrays and
            other data, and none with a given `model` (which brings its own).
            Other values only with `model=None`. Defaults to
            `defaults.AUGMENT` (`"auto"`).
        model_kwargs: Dict of further `build_cnn` arguments (`depth`,
            `filters`, `dropout`, ...), over `kerascnn.training.defaults.MODEL`
            (the measured choices fit makes where they differ from
            `build_cnn`'s own defaults). Only with `model=None`. Defaults to
            `None`.
        strategy: `"auto"` (`MultiWorkerMirroredStrategy` when `TF_CONFIG`
            names several workers, `MirroredStrategy` over several GPUs,
            else the strategy in scope), `None` (the strategy in scope) or a
            `tf.distribute.Strategy` (`kerascnn.core.distribute`); the model
            is built and compiled in its scope and the global batch is
            `batch_size x replicas`. A given `model` is cloned into the
            scope. Under several workers each gets different batches (data
            sharding) and only the chief writes plots. Defaults to `"auto"`.
        precision: `"float32"`, `"mixed_float16"`, `"mixed_bfloat16"` or
            `"auto"` (mixed_float16 on GPUs of compute capability >= 7.0,
            else float32): the Keras dtype policy the model is built under
            (the output softmax stays float32; Keras scales the loss for
            float16). A given `model` must already use it. Defaults to
            `"float32"`.
        jit_compile: `"auto"`, `True` or `False`: XLA, as in
            `keras.Model.compile`. Defaults to `"auto"`.
        steps_per_execution: Integer >= 1, batches per compiled call.
            Defaults to `1`.
        image_size: `None` or `(height, width)` a folder's images are
            resized to (`None`: they must share one size). Defaults to
            `None`.
        color_mode: `None` (inferred), `"rgb"`, `"grayscale"` or `"rgba"`
            for a folder. Defaults to `None`.
        on_error: `"raise"` (an unreadable file in a folder is named before
            training) or `"skip"` (left out, with a warning). Defaults to
            `"raise"`.
        cache: `None`, `"memory"` or a file path: where a folder's decoded
            images are cached after the first epoch. Defaults to `None`.
        backup_dir: Optional folder for `keras.callbacks.BackupAndRestore`:
            a killed run started again with the same arguments resumes after
            its last finished epoch. A backup written for another model or
            other data is refused before training. Defaults to `None`.
        tensorboard_dir: Optional folder for `keras.callbacks.TensorBoard`.
            Defaults to `None`.
        plot_dir: Optional folder for `loss_curves.png`,
            `confusion_matrix.png` (and `lr_finder.png`, `top_losses.png`).
            Every output folder is checked writable before training.
            Defaults to `None`.
        verbose: 0 (silent), 1 (progress bar and notes) or 2 (one line per
            epoch). Defaults to `1`.
        callbacks: Optional list of extra `keras.callbacks.Callback`s.

    Returns:
        A `FitResult`; `FitResult.diverged` tells a run whose loss became
        non-finite or exploded.

    Raises:
        ValueError: (`kerascnn.ArgumentError`) for an invalid argument or
            invalid data, before any model is built or epoch run.

    Example:

    >>> result = fit("digits", epochs=2, model_kwargs={"depth": 1})
    >>> result.test_metrics["accuracy"]  # doctest: +SKIP
    """
    data_settings = DataSettings(
        validation_split=validation_split, test_split=test_split, seed=seed,
        image_size=image_size, color_mode=color_mode, on_error=on_error,
        cache=cache)
    settings = TrainSettings(
        epochs=epochs, batch_size=batch_size, optimizer=optimizer,
        learning_rate=learning_rate, schedule=schedule,
        early_stopping=early_stopping,
        patience=defaults.EARLY_STOPPING_PATIENCE, balance=balance,
        augment=augment, seed=seed, verbose=verbose, precision=precision,
        jit_compile=jit_compile, steps_per_execution=steps_per_execution
    ).resolve_auto(data, model=model if isinstance(model, keras.Model)
                   else None)
    outputs = OutputSettings(backup_dir=backup_dir,
                             tensorboard_dir=tensorboard_dir,
                             plot_dir=plot_dir)
    callbacks = _check_callbacks(callbacks)
    _check_model_source(model, settings, model_kwargs)
    model_kwargs = _check_model_kwargs(model_kwargs)
    strategy = distribute.resolve_strategy(strategy)

    resolved = core_data.resolve(data, data_settings,
                                 validation_data=validation_data,
                                 test_data=test_data, require_test=True)
    plan = trainer.setup_strategy(strategy, settings.batch_size,
                                  resolved.train.num_samples,
                                  verbose=settings.verbose)
    input_shape = tuple(resolved.input_shape)
    policy = distribute.resolve_precision(settings.precision)
    if model is None:
        from kerascnn import models

        shape_args = {
            k: v for k, v in model_kwargs.items()
            if k in inspect.signature(models.cnn_output_shapes).parameters}
        models.cnn_output_shapes(input_shape, **shape_args)
    else:
        _check_user_model(model, input_shape, resolved.num_classes)
        if model.dtype_policy.name != policy:
            _validation.fail("precision", f"the given model's dtype policy "
                             f"{model.dtype_policy.name!r} (build the model "
                             "under that policy)", settings.precision)
    trainer.check_outputs(outputs.folders())
    return _run(model, model_kwargs, resolved, settings, outputs, plan,
                policy, callbacks)


def _run(model, model_kwargs, resolved, settings, outputs, plan, policy,
         callbacks):
    say = trainer.say_for(settings.verbose)
    keras.utils.set_random_seed(settings.seed)
    balance = trainer.plan_balance(resolved.train, resolved.num_classes,
                                   settings.balance, settings.verbose)
    pipes = core_data.pipelines(resolved, plan.global_batch_size,
                                sampling=balance.sampling, seed=settings.seed,
                                replicas=plan.replicas)
    import tensorflow as tf

    clone = plan.strategy is not tf.distribute.get_strategy()
    with plan.strategy.scope():
        # Statistics kept in float32 whatever the policy of the layers.
        norm = trainer.normalizer(resolved.train, settings.seed) if (
            model is None) else None
        with distribute.precision_scope(policy):
            # build_cnn checks its own arguments before it builds a layer.
            model = _make_model(model, model_kwargs, resolved, settings,
                                plan, clone, norm)
        compiled = trainer.compile_model(model, settings,
                                         pipes.steps_per_epoch, pipes.train)
    outcome = trainer.train(model, pipes, settings, outputs,
                            num_classes=resolved.num_classes,
                            class_weight=balance.class_weight,
                            fingerprint=resolved.fingerprint,
                            extra_callbacks=callbacks)
    say(outcome.diagnosis.summary())
    evaluation = trainer.evaluate(model, resolved.test,
                                  plan.global_batch_size,
                                  resolved.class_names)
    test_metrics = evaluation.metrics
    say(f"Test accuracy: {test_metrics['accuracy']:.4f} "
        f"({len(evaluation.y_true)} images); test loss: "
        f"{test_metrics['loss']:.4f}")
    reason = trainer.divergence(outcome.history, resolved.num_classes,
                                test_metrics["loss"])
    if reason:
        say(f"fit: the run diverged ({reason}); lower the learning rate.")
    plots = trainer.write_plots(
        outputs.plot_dir, diagnosis=outcome.diagnosis,
        report=evaluation.report, lr_finder=compiled.lr_finder,
        evaluation=evaluation, source=resolved.test,
        class_names=resolved.class_names,
        batch_size=plan.global_batch_size)
    if plots:
        say("Plots: " + ", ".join(plots.values()))
    return FitResult(
        model=model, history=outcome.history, test_metrics=test_metrics,
        report=evaluation.report, diagnosis=outcome.diagnosis,
        class_names=list(resolved.class_names),
        splits=core_data.split_sizes(resolved),
        normalization=_normalization_of(model),
        learning_rate=compiled.learning_rate,
        learning_rate_bounds=compiled.bounds,
        schedule=compiled.schedule_name, balance=balance.balance,
        class_weight=balance.class_weight, imbalance_ratio=balance.ratio,
        lr_finder=compiled.lr_finder, initial_epoch=outcome.initial_epoch,
        epochs_run=outcome.epochs_run, stopped_early=outcome.stopped_early,
        stop_reason=outcome.stop_reason, best_epoch=outcome.best_epoch,
        batch_size=plan.global_batch_size, replicas=plan.replicas,
        strategy=plan.description, precision=policy,
        diverged=reason is not None, divergence=reason, plots=plots,
        fingerprint=resolved.fingerprint, test_source=resolved.test)


# -- Checks that are fit's own (the model it builds or is given) -------------


def _check_callbacks(value):
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(
            isinstance(c, keras.callbacks.Callback) for c in value):
        _validation.fail("callbacks", "None or a list of "
                         "keras.callbacks.Callback", value)
    return list(value)


def _check_model_source(model, settings, model_kwargs):
    if model is None:
        return
    if not isinstance(model, keras.Model):
        _validation.fail("model", "None or a keras.Model", model)
    if settings.augment is not None:
        _validation.fail("augment", "None when `model` is given (build "
                         "the augmentation into your model)",
                         settings.augment)
    if model_kwargs is not None:
        _validation.fail("model_kwargs", "None when `model` is given",
                         model_kwargs)
    if model.compiled and settings.learning_rate == "find":
        _validation.fail("learning_rate", "a number when `model` is "
                         "already compiled (its optimizer is kept)", "find")
    # The default schedule applies only to a model fit compiles itself.
    if model.compiled and settings.schedule not in (None,
                                                    defaults.SCHEDULE):
        _validation.fail("schedule", "None when `model` is already "
                         "compiled (its optimizer is kept)", settings.schedule)


def _check_model_kwargs(value):
    if value is None:
        return dict(defaults.MODEL)
    if not isinstance(value, dict):
        _validation.fail("model_kwargs", "None or a dict of build_cnn "
                         "arguments", value)
    from kerascnn import models

    allowed = [name for name in inspect.signature(models.build_cnn).parameters
               if name not in _FIT_OWNED_MODEL_ARGS]
    for key in value:
        if key not in allowed:
            _validation.fail(
                "model_kwargs", "a dict of build_cnn arguments ("
                + ", ".join(allowed) + ")", {key: value[key]})
    # fit's own choices of build_cnn arguments, under the user's.
    return {**defaults.MODEL, **value}


def _check_user_model(model, input_shape, num_classes):
    try:
        model_input = tuple(model.input_shape[1:])
        model_output = model.output_shape
    except (AttributeError, ValueError):
        _validation.fail("model", "a built keras.Model (with a known input "
                         "shape)", model)
    if isinstance(model_output, list) or isinstance(
            model.input_shape, list):
        _validation.fail("model", "a model with one input and one output",
                         model)
    if any(m is not None and m != d for m, d in zip(model_input, input_shape)
           ) or len(model_input) != len(input_shape):
        raise _validation.ArgumentError(
            "Argument `model` must take the images' shape "
            f"{input_shape}. Received: model with input shape "
            f"{model_input}")
    if model_output[-1] != num_classes:
        raise _validation.ArgumentError(
            f"Argument `model` must output {num_classes} class scores. "
            f"Received: model with output shape {tuple(model_output)}")



def _make_model(model, model_kwargs, resolved, settings, plan, clone,
                norm):
    if model is None:
        from kerascnn import data as kdata
        from kerascnn import models

        kwargs = dict(model_kwargs)
        kwargs.setdefault("verbose", bool(settings.verbose))
        augment = settings.augment
        if isinstance(augment, str):
            augment = {"preset": augment}
        augmentation = (kdata.augmentation(**augment, seed=settings.seed)
                        if augment is not None else None)
        return models.build_cnn(
            tuple(resolved.input_shape), resolved.num_classes,
            normalizer=norm,
            augmentation=augmentation, batch_size=plan.global_batch_size,
            num_replicas=plan.replicas, **kwargs)
    if not clone:
        return model
    # Variables must be created in the strategy's scope: copy the model.
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    if model.compiled:
        clone.compile(optimizer=model.optimizer.__class__.from_config(
            model.optimizer.get_config()), loss=model.loss,
            metrics=["accuracy"])
    return clone


def _normalization_of(model):
    config = getattr(model, "kerascnn_config", None)
    if isinstance(config, dict) and "normalization_resolved" in config:
        return config["normalization_resolved"]
    names = set()
    for layer in _all_layers(model):
        cls = type(layer).__name__
        if cls == "BatchNormalization":
            names.add("batch")
        elif cls == "GroupNormalization":
            names.add("group")
        elif cls == "LayerNormalization":
            names.add("layer")
    return "+".join(sorted(names)) if names else "none"


def _all_layers(model):
    for layer in getattr(model, "layers", []):
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)
