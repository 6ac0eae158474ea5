"""Every private Keras / KerasTuner / TensorFlow API kerascnn uses, in one
place.

kerascnn is tested with the versions in `TESTED`. A few things it needs have
no public API there (a functional model's node graph, an optimizer's
variable index, KerasTuner's chief server). Each such use is a shim here
that detects the feature: it tries the private path and, if a release
removed or renamed it, falls back to a public equivalent or raises
`CompatibilityError` naming the installed and the tested versions -- never an
`AttributeError` deep inside training. `tests/test_compat.py` has one test
per shim, for both paths.

The rest of the package calls these functions instead of touching private
attributes (`grep -rn "\\._[a-z]" kerascnn/` lists only kerascnn's own).
"""

import importlib
import os
import types

#: The versions `setup.py` pins and CI runs (minor versions).
TESTED = {"keras": "3.15", "keras_tuner": "1.4", "tensorflow": "2.21"}


class CompatibilityError(RuntimeError):
    """A private API kerascnn relies on is missing in an installed version."""


def _version(package):
    try:
        module = importlib.import_module(package)
    except ImportError:
        return "not installed"
    return getattr(module, "__version__", "unknown")


def _missing(package, what, hint=""):
    raise CompatibilityError(
        f"kerascnn needs {what} from {package} {_version(package)}, which "
        f"does not have it; kerascnn is tested with {package} "
        f"{TESTED[package]}.x (`pip install \"{package.replace('_', '-')}=="
        f"{TESTED[package]}.*\"`){hint}.")


# -- Keras: layers and graphs -------------------------------------------------


def flatten_layers(model, include_self=True):
    """Every layer of `model`, nested ones included (`model` first if asked).

    Keras' `Layer._flatten_layers` also finds sub-layers held as attributes
    of custom layers; without it, `model.layers` is walked recursively.
    """
    method = getattr(model, "_flatten_layers", None)
    if callable(method):
        try:
            return list(method(include_self=include_self))
        except TypeError:  # a different signature
            pass
    found, seen = [], set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        found.append(layer)
        for child in getattr(layer, "layers", None) or []:
            visit(child)

    if include_self:
        visit(model)
    else:
        seen.add(id(model))
        for child in getattr(model, "layers", None) or []:
            visit(child)
    return found


def functional_graph(model):
    """The functional graph of a functional or Sequential model, or None.

    A Sequential model keeps it as `model._functional` (built with a known
    input shape); a functional model is its own graph.
    """
    import keras

    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    return model


def nodes_by_depth(graph):
    """`{depth: [node, ...]}` of a functional graph, or None if it has none.

    Each node has `.operation` (the layer) and `.outputs` (its output
    tensors). Keras keeps this as `Functional._nodes_by_depth`; without it,
    one pseudo-node per layer of `graph.layers` is built from the public
    `layer.output`, deepest layer first (depth 0 is the last layer).
    """
    nodes = getattr(graph, "_nodes_by_depth", None)
    if isinstance(nodes, dict):
        return nodes
    layers = getattr(graph, "layers", None)
    if not layers or not hasattr(graph, "inputs"):
        return None
    result = {}
    for depth, layer in enumerate(reversed(layers)):
        try:
            output = layer.output
        except (AttributeError, ValueError):
            return None
        outputs = list(output) if isinstance(output, (list, tuple)) else [
            output]
        result[depth] = [types.SimpleNamespace(operation=layer,
                                               outputs=outputs)]
    return result


def has_node_graph(graph):
    """True if `nodes_by_depth(graph)` can describe `graph`."""
    return graph is not None and nodes_by_depth(graph) is not None


def inbound_nodes(layer):
    """The nodes where `layer` was called (`Layer._inbound_nodes`)."""
    nodes = getattr(layer, "_inbound_nodes", None)
    if nodes is None:
        import keras

        if isinstance(layer, keras.layers.Layer):
            _missing("keras", "`Layer._inbound_nodes` (the layer graph)")
        return []
    return list(nodes)


def keras_history(tensor):
    """`(layer, node_index, tensor_index)` that produced a symbolic tensor.

    Keras' `KerasTensor._keras_history`; None for a tensor without one.
    """
    return getattr(tensor, "_keras_history", None)


# -- Keras: optimizers --------------------------------------------------------


def learning_rate_object(optimizer):
    """What the optimizer was given as learning rate: a variable or schedule.

    Keras keeps it as `optimizer._learning_rate`; the public
    `optimizer.learning_rate` gives the same variable for a float learning
    rate (and the current value, not the schedule, for a schedule).
    """
    value = getattr(optimizer, "_learning_rate", None)
    if value is not None:
        return value
    try:
        return optimizer.learning_rate
    except AttributeError:
        _missing("keras", "an optimizer with a `learning_rate`")


def variable_index(optimizer, variable):
    """Index of `variable` in the optimizer's trainable variables.

    Keras 3's `BaseOptimizer._get_variable_index`.
    """
    method = getattr(optimizer, "_get_variable_index", None)
    if callable(method):
        return method(variable)
    _missing("keras", "`BaseOptimizer._get_variable_index` (used by "
             "kerascnn.transfer's per-layer learning rates)")


# -- Keras: EarlyStopping state -----------------------------------------------

#: Attributes of `keras.callbacks.EarlyStopping` that kerascnn's subclass
#: reads.
EARLY_STOPPING_STATE = ("wait", "best", "best_weights", "stopped_epoch",
                        "monitor_op")


def check_early_stopping_state(callback):
    """Checks that Keras' `EarlyStopping` keeps the state kerascnn reads.

    Call after `super().on_train_begin`; returns `callback`.
    """
    missing = [name for name in EARLY_STOPPING_STATE
               if not hasattr(callback, name)]
    if missing:
        _missing("keras", "`keras.callbacks.EarlyStopping` state "
                 f"({', '.join(missing)})")
    return callback


# -- KerasTuner ---------------------------------------------------------------


def is_chief_oracle():
    """True in the chief process of a distributed KerasTuner search.

    KerasTuner's `keras_tuner.src.distribute.utils.is_chief_oracle`, or the
    same test on its documented environment variables.
    """
    try:
        from keras_tuner.src.distribute import utils
    except ImportError:
        utils = None
    if utils is not None and hasattr(utils, "is_chief_oracle"):
        return utils.is_chief_oracle()
    if "KERASTUNER_ORACLE_IP" not in os.environ:
        return False
    return "chief" in os.environ.get("KERASTUNER_TUNER_ID", "")


def grid_linked_list():
    """KerasTuner's `LinkedList` class of the grid-search oracle."""
    try:
        from keras_tuner.src.tuners import gridsearch
    except ImportError:
        gridsearch = None
    cls = getattr(gridsearch, "LinkedList", None)
    if cls is None:
        _missing("keras_tuner", "`keras_tuner.src.tuners.gridsearch."
                 "LinkedList` (the resumable grid search)")
    return cls


#: Private state of KerasTuner's grid `LinkedList` that kerascnn saves.
LINKED_LIST_STATE = ("_memory", "_data_to_index", "_next_index",
                     "_last_index")


def check_linked_list(linked_list):
    """Checks that a grid `LinkedList` keeps the state kerascnn saves."""
    missing = [name for name in LINKED_LIST_STATE
               if not hasattr(linked_list, name)]
    if missing:
        _missing("keras_tuner", "the grid `LinkedList` state "
                 f"({', '.join(missing)})")
    return linked_list


def grid_oracle_class():
    """`keras_tuner.oracles.GridSearchOracle` (public)."""
    import keras_tuner

    return keras_tuner.oracles.GridSearchOracle


#: Private state of KerasTuner's `GridSearchOracle` that kerascnn saves.
GRID_STATE = ("_ordered_ids", "_populate_next")


def check_grid_oracle(oracle):
    """Checks that a grid oracle keeps the state kerascnn saves on resume."""
    missing = [name for name in GRID_STATE if not hasattr(oracle, name)]
    if missing:
        _missing("keras_tuner", "`GridSearchOracle` state "
                 f"({', '.join(missing)})")
    return oracle


def local_oracle(oracle):
    """The oracle itself, not the gRPC client a worker wraps around it."""
    return getattr(oracle, "_oracle", oracle)


def chief_server_parts():
    """`(get_service_grpc, OracleServicer, exit_chief)` of KerasTuner's chief.

    From `keras_tuner.src.protos` and
    `keras_tuner.src.distribute.oracle_chief`; the chief serves KerasTuner's
    own gRPC protocol, so workers of the same KerasTuner version talk to it.
    """
    try:
        from keras_tuner.src import protos
        from keras_tuner.src.distribute import oracle_chief
    except ImportError:
        _missing("keras_tuner", "`keras_tuner.src.protos` and "
                 "`keras_tuner.src.distribute.oracle_chief` (the chief "
                 "oracle server)", "; or run the search without "
                 "distributed=True")
    parts = (getattr(protos, "get_service_grpc", None),
             getattr(oracle_chief, "OracleServicer", None),
             getattr(oracle_chief, "exit_chief", None))
    if any(part is None for part in parts):
        _missing("keras_tuner", "`get_service_grpc`, `OracleServicer` and "
                 "`exit_chief` (the chief oracle server)")
    return parts


# -- TensorFlow / Keras: distribution -----------------------------------------


def strategy_num_workers(strategy):
    """Workers of a strategy (`strategy.extended._num_workers`), or None.

    None when the strategy does not say (the caller then counts the workers
    of `TF_CONFIG`).
    """
    workers = getattr(getattr(strategy, "extended", None), "_num_workers",
                      None)
    return workers if isinstance(workers, int) and workers >= 1 else None


#: Private members of `keras.callbacks.BackupAndRestore` that kerascnn's
#: worker-aware subclass redirects (only the chief writes `backup_dir`).
BACKUP_STATE = ("_save_model", "_weights_path", "_training_metadata_path",
                "_prev_weights_path", "_prev_training_metadata_path")


def check_backup_and_restore(callback):
    """Checks that Keras' `BackupAndRestore` has the members kerascnn uses."""
    missing = [name for name in BACKUP_STATE if not hasattr(callback, name)]
    if missing:
        _missing("keras", "`keras.callbacks.BackupAndRestore` internals "
                 f"({', '.join(missing)})")
    return callback
