"""KerasTuner tuners with the fixes a long CNN search needs.

Every tuner here is KerasTuner's own (Hyperband, Bayesian optimisation,
random and grid search, with KerasTuner's oracles, trial files, resume and
chief/worker protocol); they add:

* memory released after every trial (`keras.backend.clear_session()` and
  `gc.collect()` in `on_trial_end`, not only before the next build), so a
  long search does not keep the last model and its graph alive;
* a grid-search oracle that saves its ordering state, so a resumed grid
  search does not crash with `KeyError` in `LinkedList.next`
  (keras-team/keras-tuner#1055, open in 1.4.8);
* a chief that serves KerasTuner's own gRPC `OracleServicer` but polls for
  the end of the search every fraction of a second instead of sleeping 20 s
  (`keras_tuner.src.distribute.oracle_chief.start_server`);
* a record of the trials each tuner process ran (`ran_trials`).

The KerasTuner internals these need (`keras_tuner.src.*`, the grid oracle's
private state) are reached only through `kerascnn._compat`, which checks
them and names the tested KerasTuner version if they are missing.
"""

import collections
import gc
import time

import keras
import keras_tuner

from kerascnn import _compat

TUNERS = ("hyperband", "bayesian", "random", "grid")
"""Names accepted by `kerascnn.tuning.search(tuner=...)`."""


class _KerascnnTunerMixin:
    """Hooks shared by every kerascnn tuner (see the module docstring)."""

    def _kerascnn_init(self):
        self.ran_trials = []

    def on_trial_end(self, trial):
        super().on_trial_end(trial)
        self.ran_trials.append({
            "trial_id": trial.trial_id,
            "status": trial.status,
            "values": dict(trial.hyperparameters.values),
        })
        release_memory()

    def search(self, *fit_args, **fit_kwargs):
        if _compat.is_chief_oracle():
            if "verbose" in fit_kwargs:
                self.oracle.verbose = fit_kwargs["verbose"]
            # KerasTuner's chief: save first (keras-tuner#977), then serve.
            self.save()
            serve_oracle(self.oracle)
            return
        super().search(*fit_args, **fit_kwargs)


def release_memory():
    """Drops Keras' global state and collects garbage between trials."""
    keras.backend.clear_session()
    gc.collect()


class Tuner(_KerascnnTunerMixin, keras_tuner.Tuner):
    """`keras_tuner.Tuner` with kerascnn's hooks; pass any oracle."""

    def __init__(self, oracle, hypermodel=None, **kwargs):
        self._kerascnn_init()
        super().__init__(oracle=oracle, hypermodel=hypermodel, **kwargs)


class Hyperband(_KerascnnTunerMixin, keras_tuner.Hyperband):
    """`keras_tuner.Hyperband` with kerascnn's hooks."""

    def __init__(self, hypermodel=None, **kwargs):
        self._kerascnn_init()
        super().__init__(hypermodel=hypermodel, **kwargs)


class _LinkedList(_compat.grid_linked_list()):
    def __init__(self):
        super().__init__()
        _compat.check_linked_list(self)

    def get_state(self):
        next_index = {str(k): v for k, v in self._next_index.items()}
        return {"memory": list(self._memory), "next_index": next_index,
                "last_index": self._last_index}

    def set_state(self, state):
        self._memory = list(state["memory"])
        self._data_to_index = {data: i for i, data in enumerate(self._memory)}
        self._next_index = collections.defaultdict(lambda: None)
        for key, value in state["next_index"].items():
            self._next_index[None if key == "None" else int(key)] = value
        self._last_index = state["last_index"]


class GridSearchOracle(_compat.grid_oracle_class()):
    """`keras_tuner.oracles.GridSearchOracle` that survives a resume.

    KerasTuner 1.4.8 keeps the grid order (`_ordered_ids`) and the queue of
    trials to expand (`_populate_next`) only in memory; after a reload the
    first completed trial raises `KeyError` (keras-tuner#1055). Both are
    saved here with the rest of the oracle state.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _compat.check_grid_oracle(self)
        self._ordered_ids = _LinkedList()

    def get_state(self):
        state = super().get_state()
        state["kerascnn_ordered_ids"] = self._ordered_ids.get_state()
        state["kerascnn_populate_next"] = list(self._populate_next)
        return state

    def set_state(self, state):
        super().set_state(state)
        if "kerascnn_ordered_ids" in state:
            self._ordered_ids = _LinkedList()
            self._ordered_ids.set_state(state["kerascnn_ordered_ids"])
            self._populate_next = list(state["kerascnn_populate_next"])


def make_tuner(name, hypermodel, objective, max_trials, epochs, seed=None,
               strategy=None, directory=None, project_name=None,
               overwrite=False, executions_per_trial=1,
               max_consecutive_failed_trials=3, hyperband_factor=3):
    """Builds the kerascnn tuner called `name` (one of `TUNERS`).

    Hyperband has no `max_trials` in KerasTuner; its oracle gets the same
    cap (`Oracle.create_trial` stops at `max_trials`), with
    `max_epochs=epochs`.
    """
    common = dict(
        hypermodel=hypermodel, distribution_strategy=strategy,
        directory=directory, project_name=project_name, overwrite=overwrite,
        executions_per_trial=executions_per_trial)
    oracle_args = dict(objective=objective, seed=seed,
                       max_consecutive_failed_trials=max_consecutive_failed_trials)
    if name == "hyperband":
        tuner = Hyperband(max_epochs=max(int(epochs), 1),
                          factor=hyperband_factor, **oracle_args, **common)
        oracle = _compat.local_oracle(tuner.oracle)  # worker: its client
        oracle.max_trials = max_trials
        return tuner
    if name == "bayesian":
        oracle = keras_tuner.oracles.BayesianOptimizationOracle(
            max_trials=max_trials, **oracle_args)
    elif name == "random":
        oracle = keras_tuner.oracles.RandomSearchOracle(
            max_trials=max_trials, **oracle_args)
    else:
        oracle = GridSearchOracle(max_trials=max_trials, **oracle_args)
    return Tuner(oracle, **common)


def serve_oracle(oracle, poll_seconds=0.2):
    """Runs KerasTuner's chief gRPC server until every worker has stopped.

    Same protocol and servicer as `keras_tuner`'s `start_server`
    (`KERASTUNER_ORACLE_IP` / `KERASTUNER_ORACLE_PORT`), but the end of the
    search is checked every `poll_seconds`.
    """
    import os
    from concurrent import futures

    import grpc

    get_service_grpc, servicer_class, exit_chief = (
        _compat.chief_server_parts())

    address = (f"{os.environ['KERASTUNER_ORACLE_IP']}:"
               f"{os.environ['KERASTUNER_ORACLE_PORT']}")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = servicer_class(oracle)
    get_service_grpc().add_OracleServicer_to_server(servicer, server)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"The chief could not listen on {address}.")
    server.start()
    try:
        while not (servicer.stop_triggered
                   and exit_chief(oracle)):
            time.sleep(poll_seconds)
    finally:
        server.stop(grace=1)
