"""Distribution strategies: one meaning of `None` and `"auto"` everywhere.

- `None`: the strategy currently in scope (`tf.distribute.get_strategy()`),
  so a caller's `with strategy.scope():` is honoured.
- `"auto"`: `MultiWorkerMirroredStrategy` when `TF_CONFIG` names more than
  one worker; else `MirroredStrategy` over all visible GPUs when there are
  several; else the strategy in scope.
- a `tf.distribute.Strategy`: used as given.

Also here, for every workflow: which process writes (`is_chief`,
`worker_output_dir`, `backup_and_restore`: only the chief writes under the
user's folders), `multi_worker_mirrored_strategy` (the strategy `"auto"`
gives under `TF_CONFIG`, which Keras 3's `fit` accepts),
`describe_strategy` (the line printed on start), and the precision and XLA
switches (`resolve_precision`, `precision_scope`, `check_jit_compile`,
`check_steps_per_execution`). See docs/scaling.md.
"""

import contextlib
import json
import os
import shutil
import tempfile

import numpy as np

from kerascnn import _compat, _validation

STRATEGY_OPTIONS = ("auto",)
"""String values `strategy` arguments accept."""


def tf_config():
    """The parsed `TF_CONFIG` environment variable, or `{}`."""
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return {}
    try:
        config = json.loads(text)
    except ValueError:
        _validation.fail("TF_CONFIG", "a JSON object (environment variable)",
                         text)
    if not isinstance(config, dict):
        _validation.fail("TF_CONFIG", "a JSON object (environment variable)",
                         text)
    return config


def num_workers():
    """Workers (chief included) that `TF_CONFIG` names; 1 without it."""
    cluster = tf_config().get("cluster", {})
    return max(1, sum(len(cluster.get(kind, ()))
                      for kind in ("chief", "worker")))


def resolve_strategy(value):
    """Returns the `tf.distribute.Strategy` for a `strategy` argument."""
    import tensorflow as tf

    if value is None:
        return tf.distribute.get_strategy()
    if isinstance(value, tf.distribute.Strategy):
        return value
    if isinstance(value, str):
        _validation.check_option("strategy", value, STRATEGY_OPTIONS)
        if num_workers() > 1:
            return multi_worker_mirrored_strategy()
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy([g.name for g in gpus])
        return tf.distribute.get_strategy()
    _validation.fail("strategy", 'None, "auto" or a tf.distribute.Strategy',
                     value)


def multi_worker_mirrored_strategy(**kwargs):
    """A `tf.distribute.MultiWorkerMirroredStrategy` that `model.fit` accepts.

    Keras 3 (3.15 included) calls `strategy.reduce` on a nest of per-replica
    batches before the first step, and `strategy.reduce("MEAN", v, axis=0)`
    on every scalar metric after each step; TensorFlow's
    `CollectiveAllReduceStrategy` rejects both ("Attempt to convert a value
    (PerReplica...)", "Invalid reduction dimension 0 for input with 0
    dimensions"), so a plain `MultiWorkerMirroredStrategy` fails in the first
    `fit` (keras-team/keras#20585). The strategy returned here reduces each
    leaf of a nest separately and a scalar across replicas (`axis=None`);
    everything else is TensorFlow's. Create it before any other TensorFlow
    op in the process (a TensorFlow requirement); `kwargs` go to
    `tf.distribute.MultiWorkerMirroredStrategy`.
    """
    return _multi_worker_class()(**kwargs)


_MULTI_WORKER_CLASS = []


def _multi_worker_class():
    if _MULTI_WORKER_CLASS:
        return _MULTI_WORKER_CLASS[0]
    import tensorflow as tf

    class MultiWorkerMirroredStrategy(tf.distribute.MultiWorkerMirroredStrategy):
        """`tf.distribute.MultiWorkerMirroredStrategy` reducing as Keras 3 asks."""

        def reduce(self, reduce_op, value, axis):
            parent = super()

            def one(leaf):
                leaf_axis = axis
                if leaf_axis is not None:
                    rank = self.experimental_local_results(leaf)[0].shape.rank
                    if rank == 0:
                        leaf_axis = None
                return parent.reduce(reduce_op, leaf, leaf_axis)

            return tf.nest.map_structure(one, value)

    _MULTI_WORKER_CLASS.append(MultiWorkerMirroredStrategy)
    return MultiWorkerMirroredStrategy


def num_replicas(strategy):
    """Replicas a strategy trains on (1 for the default strategy)."""
    return int(getattr(strategy, "num_replicas_in_sync", 1))


# -- Which process writes ------------------------------------------------------


def task():
    """`(task_type, task_index)` from `TF_CONFIG`, or `(None, None)`."""
    entry = tf_config().get("task") or {}
    if not isinstance(entry, dict):
        _validation.fail("TF_CONFIG", 'a JSON object whose "task" is an object '
                         '{"type": ..., "index": ...}', entry)
    kind = entry.get("type")
    index = entry.get("index", 0)
    if kind is None:
        return None, None
    if not isinstance(kind, str) or isinstance(index, bool) or not isinstance(
            index, int) or index < 0:
        _validation.fail("TF_CONFIG", 'a "task" with a string "type" and an '
                         'integer "index" >= 0', entry)
    return kind, index


def worker_index():
    """This process's index among the workers that train, `0 .. num_workers() - 1`.

    TensorFlow's numbering of the input pipelines of a
    `MultiWorkerMirroredStrategy` (`multi_worker_util.id_in_cluster`): the
    `"chief"` task is 0 and `"worker"` `i` is `i + 1` when the cluster names
    a chief, else `i`. `0` without `TF_CONFIG` or with a single worker. The
    training data is sharded by this index (`ImageSource.dataset(shard=True)`).
    """
    if num_workers() <= 1:
        return 0
    kind, index = task()
    cluster = tf_config().get("cluster", {})
    chiefs = len(cluster.get("chief", ()))
    if kind is None or kind == "chief":
        return 0
    if kind != "worker" or index >= len(cluster.get("worker", ())):
        _validation.fail("TF_CONFIG", 'a "task" naming a "chief" or one of '
                         'the cluster\'s "worker" entries to read its share '
                         "of the training data", tf_config().get("task"))
    return index + chiefs


def batch_predictor(model):
    """A function `batch -> model outputs` (NumPy) correct under any strategy.

    `model.predict_on_batch` for a model on the default strategy. A model
    built in a `MirroredStrategy` scope would run the whole batch on every
    replica and concatenate the copies in `predict_on_batch` (and, under
    several workers, gather every worker's copy); for such a model, and for
    any model in a multi-worker process, the model is called in inference
    mode in a `tf.function` on this process's device, reading the mirrored
    variables' values, with no collective step.
    """
    strategy = getattr(model, "distribute_strategy", None)
    if num_workers() <= 1 and (strategy is None
                               or num_replicas(strategy) <= 1):
        return model.predict_on_batch
    import tensorflow as tf

    step = tf.function(lambda x: model(x, training=False),
                       reduce_retracing=True)

    def predict(batch):
        import keras

        return keras.tree.map_structure(np.asarray, step(batch))

    return predict


def is_chief():
    """True for the one process that writes exports, plots and reports.

    That is every single process (no `TF_CONFIG`, or one that names a single
    worker), the `"chief"` task when the cluster has one, and worker 0 when it
    has none (TensorFlow's convention). Workers, evaluators and parameter
    servers otherwise return False.
    """
    if num_workers() <= 1:
        return True
    kind, index = task()
    if kind is None or kind == "chief":
        return True
    cluster = tf_config().get("cluster", {})
    return kind == "worker" and index == 0 and not cluster.get("chief")


@contextlib.contextmanager
def worker_output_dir(path):
    """The folder this process should write `path`'s files to.

    On the chief, `path` itself. On any other worker, a fresh temporary
    folder outside the user's folders (`<tmp>/kerascnn-worker-N-XXXX/<name>`,
    not created), removed with everything in it when the block ends, so that
    the collective steps of a save still run on every worker (as Keras'
    multi-worker guide requires) while only the chief's copy remains.
    `path=None` gives `None` everywhere.

    Example:

    ```python
    with worker_output_dir("saved_models") as directory:
        export_model(model, "digits_cnn", directory=directory)
    ```
    """
    if path is None or is_chief():
        yield path
        return
    _, index = task()
    scratch = tempfile.mkdtemp(prefix=f"kerascnn-worker-{index}-")
    name = os.path.basename(os.path.normpath(os.fspath(path))) or "output"
    try:
        yield os.path.join(scratch, name)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def backup_and_restore(backup_dir, **kwargs):
    """`keras.callbacks.BackupAndRestore` that several workers can share.

    Every worker restores from `backup_dir` (a folder all workers see, e.g.
    on a shared file system), so a worker that was killed and restarted, and
    the workers restarted with it, resume after the last finished epoch. Only
    the chief writes and, at the end, deletes the backup there: Keras'
    callback would have every worker write the same files (h5py refuses:
    "unable to lock file") and the first to finish delete them under the
    others. Other workers save to a private temporary folder, removed at the
    end of training, so that any collective step of the save still runs on
    every worker. In a single process this is Keras' callback unchanged.
    `kwargs` go to `keras.callbacks.BackupAndRestore`.
    """
    return _backup_class()(backup_dir, **kwargs)


_BACKUP_CLASS = []


def _backup_class():
    if _BACKUP_CLASS:
        return _BACKUP_CLASS[0]
    import keras

    class BackupAndRestore(keras.callbacks.BackupAndRestore):
        """Keras' `BackupAndRestore`; only the chief writes `backup_dir`."""

        _PATHS = ("backup_dir", "_weights_path", "_training_metadata_path",
                  "_prev_weights_path", "_prev_training_metadata_path")

        def __init__(self, backup_dir, **kwargs):
            super().__init__(backup_dir, **kwargs)
            _compat.check_backup_and_restore(self)
            self.writes_backup = is_chief()
            self._scratch = None

        def _save_model(self):
            if self.writes_backup:
                return super()._save_model()
            if self._scratch is None:
                _, index = task()
                self._scratch = tempfile.mkdtemp(
                    prefix=f"kerascnn-worker-{index}-backup-")
            shared = {name: getattr(self, name) for name in self._PATHS}
            private = os.path.join(self._scratch, "backup")
            for name, value in shared.items():
                setattr(self, name, value.replace(shared["backup_dir"],
                                                  private, 1))
            try:
                return super()._save_model()
            finally:
                for name, value in shared.items():
                    setattr(self, name, value)

        def on_train_end(self, logs=None):
            if self.writes_backup:
                return super().on_train_end(logs)
            if self._scratch is not None:
                shutil.rmtree(self._scratch, ignore_errors=True)
                self._scratch = None

    _BACKUP_CLASS.append(BackupAndRestore)
    return BackupAndRestore


def describe_strategy(strategy, batch_size=None):
    """One line naming the strategy, its workers and replicas.

    For example ``"MultiWorkerMirroredStrategy: 2 workers, 2 replicas"``;
    with `batch_size` (per replica) the global batch is added:
    ``"MirroredStrategy: 1 worker, 2 replicas, global batch 128 (64 per
    replica)"``.
    """
    import tensorflow as tf

    replicas = num_replicas(strategy)
    if not isinstance(strategy, tf.distribute.Strategy):
        _validation.fail("strategy", "a tf.distribute.Strategy", strategy)
    name = type(strategy).__name__
    if name.startswith("_Default"):
        name = "default strategy"
    elif isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        name = "MultiWorkerMirroredStrategy"  # TensorFlow's class name differs
    workers = _compat.strategy_num_workers(strategy)
    if workers is None:
        workers = num_workers() if "MultiWorker" in name else 1
    text = (f"{name}: {workers} worker{'s' if workers != 1 else ''}, "
            f"{replicas} replica{'s' if replicas != 1 else ''}")
    if batch_size is not None:
        batch_size = _validation.check_positive_int("batch_size", batch_size)
        text += (f", global batch {batch_size * replicas} ({batch_size} per "
                 "replica)")
    return text


# -- Mixed precision and XLA -----------------------------------------------------

PRECISION_OPTIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
"""Values `precision` arguments accept (`None`: the Keras global policy)."""

JIT_COMPILE_OPTIONS = ("auto", True, False)
"""Values `jit_compile` arguments accept, as in `keras.Model.compile`."""


def _gpus_compute_capability():
    """Compute capabilities `(major, minor)` of the visible GPUs."""
    import tensorflow as tf

    found = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(gpu)
        except Exception:  # noqa: BLE001 - no details: treat as old
            details = {}
        found.append(tuple(details.get("compute_capability") or (0, 0)))
    return found


def resolve_precision(value):
    """Returns the Keras dtype policy name for a `precision` argument.

    Args:
        value: `"float32"`, `"mixed_float16"`, `"mixed_bfloat16"`, `"auto"`
            or `None`. `"auto"` is `"mixed_float16"` when every visible GPU
            has compute capability >= 7.0 (Volta and later, where float16
            runs on Tensor Cores), else `"float32"` (CPU, older GPUs).
            `None` is the current `keras.mixed_precision` global policy.

    Returns:
        The policy name, for `keras.mixed_precision.set_global_policy` or
        `precision_scope`.
    """
    if value is None:
        import keras

        return keras.mixed_precision.global_policy().name
    if not isinstance(value, str):
        _validation.fail("precision", "one of " + ", ".join(
            repr(o) for o in PRECISION_OPTIONS), value)
    value = _validation.check_option("precision", value, PRECISION_OPTIONS)
    if value == "auto":
        capabilities = _gpus_compute_capability()
        if capabilities and all(c >= (7, 0) for c in capabilities):
            return "mixed_float16"
        return "float32"
    return value


@contextlib.contextmanager
def precision_scope(value):
    """Sets the Keras global dtype policy for a block, then restores it.

    Build the model inside the block: its layers compute in the policy's
    dtype (float16/bfloat16 with float32 variables for the mixed policies).
    Keras wraps the optimizer in a `LossScaleOptimizer` itself for
    `mixed_float16`. Keep the output softmax in float32
    (`dtype="float32"` on the last layer). Yields the policy name.
    """
    import keras

    name = resolve_precision(value)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield name
    finally:
        keras.mixed_precision.set_global_policy(previous)


def check_jit_compile(value):
    """Checks `jit_compile`: `"auto"`, `True` or `False` (Keras' meanings).

    `"auto"` lets Keras decide: XLA when the model supports it, on an
    accelerator and outside `tf.distribute`; never on a CPU-only machine.
    """
    if isinstance(value, str):
        return _validation.check_option("jit_compile", value, ("auto",))
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    _validation.fail("jit_compile", '"auto", True or False', value)


def check_steps_per_execution(value):
    """Checks `steps_per_execution`: an integer >= 1 (batches per call)."""
    return _validation.check_positive_int("steps_per_execution", value)
