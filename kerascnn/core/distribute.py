"""Distribution strategies: one meaning of `None` and `"auto"` everywhere.

- `None`: the strategy currently in scope (`tf.distribute.get_strategy()`),
  so a caller's `with strategy.scope():` is honoured.
- `"auto"`: `MultiWorkerMirroredStrategy` when `TF_CONFIG` names more than
  one worker; else `MirroredStrategy` over all visible GPUs when there are
  several; else the strategy in scope.
- a `tf.distribute.Strategy`: used as given.
"""

import json
import os

from kerascnn import _validation

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
            return tf.distribute.MultiWorkerMirroredStrategy()
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy([g.name for g in gpus])
        return tf.distribute.get_strategy()
    _validation.fail("strategy", 'None, "auto" or a tf.distribute.Strategy',
                     value)


def num_replicas(strategy):
    """Replicas a strategy trains on (1 for the default strategy)."""
    return int(getattr(strategy, "num_replicas_in_sync", 1))
