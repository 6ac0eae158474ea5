"""Data for every workflow: `resolve_data` plus explicit splits and pipelines.

`resolve(data, ...)` is `kerascnn.data.sources.resolve_data` with the two
forms of already-split data the workflows accepted before the core existed: a
`kerascnn.data.Splits` and a 6-tuple `(x_train, y_train, x_val, y_val,
x_test, y_test)` (the test arrays may be empty); both become `data` plus
`validation_data` / `test_data`. `pipelines(...)` turns a `ResolvedData`
into the `tf.data` pipelines `model.fit` / `evaluate` / `predict` read, with
the auto-shard policy a multi-worker run needs.
"""

import dataclasses

import numpy as np

from kerascnn import _validation


def _is_splits(value):
    return all(hasattr(value, name) for name in (
        "x_train", "y_train", "x_val", "y_val", "x_test", "y_test"))


def explicit_splits(data):
    """`(train, validation, test)` of a `Splits` / 6-tuple, else `None`."""
    if _is_splits(data):
        parts = [getattr(data, name) for name in (
            "x_train", "y_train", "x_val", "y_val", "x_test", "y_test")]
    elif isinstance(data, tuple) and len(data) == 6:
        parts = list(data)
    else:
        return None
    x_test, y_test = parts[4], parts[5]
    test = None
    if x_test is not None and np.asarray(x_test).size:
        test = (x_test, y_test)
    return (parts[0], parts[1]), (parts[2], parts[3]), test


def resolve(data, settings, *, validation_data=None, test_data=None,
            require_validation=True, require_test=False):
    """Resolves `data` (any kind `resolve_data` takes, or explicit splits).

    Args:
        data: What the user passed as `data`.
        settings: A `kerascnn.core.settings.DataSettings`.
        validation_data: Optional explicit validation split (same kinds).
        test_data: Optional explicit test split (same kinds).
        require_validation: Refuse a run without a validation split.
        require_test: Refuse a run without a test split.

    Returns:
        A `kerascnn.data.sources.ResolvedData`.
    """
    from kerascnn.data.sources import resolve_data

    kwargs = settings.resolve_kwargs()
    split = explicit_splits(data)
    if split is not None:
        if validation_data is not None or test_data is not None:
            _validation.fail("validation_data", "None when `data` is already "
                             "split (a Splits or a 6-tuple)", validation_data)
        data, validation_data, test_data = split
        if test_data is None:
            kwargs["test_split"] = 0
    resolved = resolve_data(data, validation_data=validation_data,
                            test_data=test_data, **kwargs)
    if require_validation and resolved.validation is None:
        _validation.fail("validation_split", "a fraction in (0, 1), or "
                         "`validation_data`: the run needs validation data",
                         settings.validation_split)
    if require_test and resolved.test is None:
        _validation.fail("test_split", "a fraction in (0, 1), or "
                         "`test_data`: the run is evaluated on a test split",
                         settings.test_split)
    return resolved


def split_sizes(resolved):
    """`{"train", "validation", "test"}` sample counts (None when unknown)."""
    return {name: 0 if source is None else source.num_samples
            for name, source in (("train", resolved.train),
                             ("validation", resolved.validation),
                             ("test", resolved.test))}


def shard(dataset, policy="DATA"):
    """`dataset` with `experimental_distribute.auto_shard_policy` set.

    `"DATA"`: every worker of a `MultiWorkerMirroredStrategy` reads every
    element and keeps its share, so in-memory pipelines and user streams
    (whose source is not a set of files TensorFlow can split) give each
    worker different batches. `"OFF"`: every worker sees everything
    (evaluation on every worker of the whole test split), or its pipeline is
    already its own share (a folder's training files, sharded by file in
    `ImageSource.dataset(shard=True)`).
    """
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = getattr(
        tf.data.experimental.AutoShardPolicy, policy)
    return dataset.with_options(options)


@dataclasses.dataclass
class Pipelines:
    """The `tf.data` pipelines of one run and the optimizer steps per epoch."""

    train: object
    validation: object
    test: object
    steps_per_epoch: int


def eval_batch_size(num_samples, global_batch, replicas=1,
                    name="validation_data"):
    """The batch of a validation / test pipeline: at most the global batch
    and the split's images, and a multiple of `replicas`.

    Keras 3 reduces the first batch of every `fit` / `evaluate` across the
    replicas (`_maybe_symbolic_build`); a first batch that does not split
    evenly (5 images on 2 replicas) fails there with a shape mismatch.
    """
    batch = max(1, min(global_batch, num_samples or global_batch))
    if replicas > 1:
        if batch < replicas:
            _validation.fail(name, f"at least {replicas} images (one per "
                             "replica)", f"{batch} image(s)")
        batch -= batch % replicas
    return batch


def pipelines(resolved, global_batch, *, sampling=None, seed=None,
              replicas=1):
    """Training (shuffled, resampled), validation and test pipelines.

    The training pipeline is this worker's (`ImageSource.dataset(...,
    shard=True)`): under several workers a folder is sharded by file, each
    worker decoding only its own files (auto-shard policy `OFF`); arrays and
    streams are data-sharded (`DATA`). `steps_per_epoch` is the optimizer
    steps per epoch, the same on every worker. Validation is data-sharded;
    the test split is read whole by every worker (`OFF`). Their batches
    split evenly over `replicas` (`eval_batch_size`).
    """
    train = resolved.train.dataset(global_batch, shuffle=True, seed=seed,
                                   sampling=sampling, shard=True)
    steps = resolved.train.steps(global_batch, sampling=sampling, shard=True)

    def _eval(source, policy, name):
        if source is None:
            return None
        batch = eval_batch_size(source.num_samples, global_batch, replicas,
                                name)
        return shard(source.dataset(batch, shuffle=False), policy)

    return Pipelines(train=train,
                     validation=_eval(resolved.validation, "DATA",
                                      "validation_data"),
                     test=_eval(resolved.test, "OFF", "test_data"),
                     steps_per_epoch=steps)


def predict_source(model, source, batch_size):
    """`(y_true, y_prob)` of `model` on every image of `source`, batchwise.

    Labels known without decoding (arrays, file lists) are paired with one
    `predict` pass in order; otherwise (a user's stream, whose order may
    change between passes) each batch is predicted as it is read.
    """
    import tensorflow as tf

    from kerascnn.core import distribute

    size = source.num_samples
    batch = batch_size if not size else max(1, min(batch_size, size))
    dataset = shard(source.dataset(batch, shuffle=False), "OFF")
    # Multi-worker: Keras' predict gathers every worker's results (each row
    # once per worker); each worker predicts all images itself. A model of
    # a MirroredStrategy predicts a stream's batches without repeating them
    # on every replica (`distribute.batch_predictor`).
    predict_batch = distribute.batch_predictor(model)
    if distribute.num_workers() <= 1 and source.labels is not None:
        probs = model.predict(dataset.map(lambda x, y: x), verbose=0)
        return np.asarray(source.labels, np.int64), np.asarray(probs)
    labels, probs = [], []
    for x, y in dataset:
        probs.append(np.asarray(predict_batch(x)))
        labels.append(np.asarray(tf.reshape(y, [-1]), np.int64))
    if not labels:
        _validation.fail("test_data", "a non-empty dataset", "no batches")
    return np.concatenate(labels), np.concatenate(probs)


def sparse_cross_entropy(y_true, y_prob):
    """Mean sparse categorical cross-entropy of probabilities, as Keras."""
    epsilon = 1e-7
    y_prob = np.asarray(y_prob, np.float64)
    y_prob = y_prob / np.sum(y_prob, axis=-1, keepdims=True)
    picked = np.clip(y_prob[np.arange(len(y_true)), y_true], epsilon,
                     1 - epsilon)
    return float(np.mean(-np.log(picked)))
