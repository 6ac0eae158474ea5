"""Evidence 7: tuning: the best configuration vs the defaults; Hyperband vs random.

Claims: (a) a search over the lectures' CNN hyperparameters (filter size,
stride, padding, depth, filters, normalization, dropout, learning rate)
finds a configuration at least as good as the builder's defaults; (b)
Hyperband (Li et al., JMLR 2018) spends a given budget of epochs better than
random search, because it stops poor configurations early. Here:
`kerascnn.tuning.search` on mnist5k with Hyperband (`max_epochs` E), the
epochs it actually trained counted; then random search with as many
full-length trials as fit in the same number of epochs; and
`kerascnn.models.build_cnn` with its default arguments (Adam 1e-3) trained
for up to E epochs with the same early stopping. All three are scored on the
same held-out test split.

Usage: python -m benchmarks.evidence 07_tuning [--quick] [--seeds N]
"""

import os
import shutil
import tempfile

import keras
import numpy as np

from benchmarks import _common

NAME = "07_tuning"


class EpochCounter(keras.callbacks.Callback):
    """Counts trained epochs over all trials (KerasTuner deep-copies the
    callback, so the count lives on the class)."""

    epochs = 0

    def on_epoch_end(self, epoch, logs=None):
        type(self).epochs += 1


def _space(quick):
    from kerascnn import tuning

    if quick:
        return tuning.SearchSpace(depths=(1,), filter_sizes=(3,), strides=(1,),
                                  paddings=("same",), filters=(4,),
                                  normalizations=("batch", "none"),
                                  dropouts=(0.0, 0.25))
    # The default space without the widest filters, to fit 2 CPU cores.
    return tuning.SearchSpace(filters=(8, 16, 32), filter_sizes=(3, 5),
                              paddings=("same", "valid"))


def _search(tuner, splits, space, max_trials, epochs, batch, patience, seed,
            directory):
    from kerascnn import tuning

    EpochCounter.epochs = 0
    with _common.Stopwatch() as watch:
        result = tuning.search(
            tuple(splits), tuner=tuner, space=space, max_trials=max_trials,
            epochs=epochs, batch_size=batch, patience=patience, seed=seed,
            directory=directory, project_name=tuner, overwrite=True,
            callbacks=[EpochCounter()], strategy=None, verbose=0)
    return dict(tuner=tuner, best_hyperparameters=result.best_hyperparameters,
                best_val_accuracy=result.best_score,
                test_accuracy=result.test_metrics.get("accuracy"),
                trials=len(result.trials), epochs_trained=EpochCounter.epochs,
                seconds=watch.seconds)


def _defaults(splits, epochs, batch, patience, seed):
    from kerascnn import callbacks, models

    keras.utils.set_random_seed(seed)
    model = models.build_cnn(splits.x_train.shape[1:], 10,
                             normalizer=splits.x_train, verbose=False)
    _common.compile_classifier(model)
    with _common.Stopwatch() as watch:
        history = model.fit(
            splits.x_train, splits.y_train, batch_size=batch, epochs=epochs,
            validation_data=(splits.x_val, splits.y_val), verbose=0,
            callbacks=[callbacks.EarlyStopping(monitor="val_accuracy",
                                               mode="max",
                                               patience=patience)])
    return dict(tuner="build_cnn defaults",
                best_hyperparameters=dict(
                    {k: model.kerascnn_config[k] for k in (
                        "depth", "filters", "filter_size", "stride", "padding",
                        "pooling", "normalization_resolved", "dropout")},
                    learning_rate=1e-3),
                best_val_accuracy=float(max(history.history["val_accuracy"])),
                test_accuracy=_common.accuracy(model, splits.x_test,
                                               splits.y_test),
                trials=1, epochs_trained=len(history.history["loss"]),
                seconds=watch.seconds)


def run(args):
    if args.quick:
        per_class, epochs, max_trials, batch, patience = 10, 1, 2, 16, 1
    else:
        per_class, epochs, max_trials, batch, patience = None, 6, 12, 64, 2
    space = _space(args.quick)
    runs = []
    directory = tempfile.mkdtemp(prefix="kerascnn_evidence_tuning_")
    try:
        for seed in range(args.seeds):
            splits = _common.mnist5k_splits(seed=seed, per_class=per_class)
            hyperband = _search("hyperband", splits, space, max_trials, epochs,
                                batch, patience, seed, directory)
            budget = hyperband["epochs_trained"]
            random_trials = max(1, int(round(budget / epochs)))
            random = _search("random", splits, space, random_trials, epochs,
                             batch, patience, seed, directory)
            defaults = _defaults(splits, epochs, batch, patience, seed)
            for r in (hyperband, random, defaults):
                r["seed"] = seed
                print(f"  seed {seed} {r['tuner']:<18}: {r['trials']} trial(s),"
                      f" {r['epochs_trained']} epochs, best val acc "
                      f"{r['best_val_accuracy']:.4f}, test acc "
                      f"{r['test_accuracy']:.4f} ({r['seconds']:.0f} s)",
                      flush=True)
            runs.append(dict(seed=seed, hyperband=hyperband, random=random,
                             defaults=defaults, epoch_budget=budget))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return dict(runs=runs,
                work_directory_removed=not os.path.exists(directory),
                max_epochs=epochs, hyperband_max_trials=max_trials,
                batch_size=batch, patience=patience,
                search_space=space.get_config(),
                train_images=len(splits.y_train),
                test_images=len(splits.y_test))


def table(results):
    headers = ["seed", "method", "trials", "epochs trained", "best val acc",
               "test acc", "seconds", "expected"]
    expected = {"hyperband": "best at equal budget (Li et al. 2018)",
                "random": "", "defaults": "tuned config >= defaults"}
    rows = []
    for r in results["runs"]:
        for key in ("hyperband", "random", "defaults"):
            m = r[key]
            rows.append([r["seed"], m["tuner"], m["trials"],
                         m["epochs_trained"], f"{m['best_val_accuracy']:.4f}",
                         f"{m['test_accuracy']:.4f}", f"{m['seconds']:.0f}",
                         expected[key]])
    return headers, rows


def plot(results, output_dir):
    plt = _common.pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    keys = ("hyperband", "random", "defaults")
    labels = ("Hyperband", "random search\n(same epochs)", "build_cnn\ndefaults")
    for i, key in enumerate(keys):
        values = [r[key]["test_accuracy"] for r in results["runs"]]
        axis.bar(i, np.mean(values), color=f"C{i}")
        axis.scatter(np.full(len(values), i), values, color="k", s=12,
                     zorder=3)
        epochs = np.mean([r[key]["epochs_trained"] for r in results["runs"]])
        axis.annotate(f"{epochs:.0f} epochs", (i, np.mean(values)),
                      ha="center", va="bottom", fontsize=8)
    axis.set_xticks(range(len(keys)), labels)
    low = min(r[k]["test_accuracy"] for r in results["runs"] for k in keys)
    axis.set_ylim(max(0.0, low - 0.05), 1.0)
    axis.set_ylabel("test accuracy")
    axis.set_title("Tuning on mnist5k")
    return _common.save_figure(figure, output_dir, NAME)


def main(argv=None):
    parser = _common.make_parser(NAME, __doc__.splitlines()[0])
    args = _common.parse_args(parser, argv)
    _common.banner(NAME, args)
    results = run(args)
    results.update(claim="tuned >= defaults; Hyperband >= random search at "
                         "the same epoch budget",
                   quick=args.quick, seeds=args.seeds)
    return _common.report(NAME, args, results, table, plot,
                          title="Tuning results")


if __name__ == "__main__":
    main()
