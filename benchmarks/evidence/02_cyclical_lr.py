"""Evidence 2: cyclical learning rate (range-test bounds) vs a fixed rate.

Claim (Smith, "Cyclical Learning Rates for Training Neural Networks", WACV
2017, Table 1): on CIFAR-10, the triangular2 policy reached the fixed
learning rate's final accuracy (81.4%) in 25,000 instead of 70,000
iterations (2.8x fewer). Here: the same CNN (kerascnn `build_cnn`,
BatchNorm, flatten head) on mnist5k with SGD + momentum 0.9, from the
same initial weights, trained (a) at Keras' default fixed SGD rate 0.01
and (b) with `Triangular2CyclicalLearningRate` whose bounds come from
`kerascnn.callbacks.find_learning_rate` (the LR range test, run on the
training split) and whose half cycle is 2 epochs (Smith: 2-10 x the
iterations per epoch). Measured: test accuracy after every epoch and the
first epoch at which the cyclical run reaches the fixed run's final accuracy.

Usage: python -m benchmarks.evidence 02_cyclical_lr [--quick] [--seeds N]
"""

import numpy as np

from benchmarks import _common

NAME = "02_cyclical_lr"
PAPER = {"fixed_iterations": 70000, "clr_iterations": 25000,
         "accuracy": 0.814, "speedup": 70000 / 25000}
FIXED_LR = 0.01  # keras.optimizers.SGD's default learning rate


def _model(splits, quick, seed):
    import keras

    from kerascnn import models

    keras.utils.set_random_seed(seed)
    return models.build_cnn(
        splits.x_train.shape[1:], 10, depth=1 if quick else 2,
        filters=4 if quick else 16, convs_per_block=1,
        normalization="batch", dropout=0.25, dense_units=16 if quick else 64,
        head="flatten", normalizer=splits.x_train, verbose=False)


def first_epoch_reaching(curve, target):
    """1-based epoch at which `curve` first reaches `target`, else None."""
    hits = np.flatnonzero(np.asarray(curve) >= target - 1e-12)
    return int(hits[0]) + 1 if hits.size else None


def run(args):
    import keras

    from kerascnn import callbacks, schedules

    if args.quick:
        epochs, batch, per_class, finder_steps = 2, 16, 12, 8
    else:
        epochs, batch, per_class, finder_steps = 12, 64, None, 100
    runs = []
    for seed in range(args.seeds):
        splits = _common.mnist5k_splits(seed=seed, per_class=per_class)
        steps_per_epoch = int(np.ceil(len(splits.y_train) / batch))
        curves = {}
        # Fixed learning rate.
        model = _model(splits, args.quick, seed)
        _common.compile_classifier(model, optimizer=keras.optimizers.SGD(
            learning_rate=FIXED_LR, momentum=0.9))
        history = model.fit(splits.x_train, splits.y_train, batch_size=batch,
                            epochs=epochs, verbose=0,
                            validation_data=(splits.x_test, splits.y_test))
        curves["fixed"] = history.history["val_accuracy"]
        # Range test on the same initial weights, then triangular2.
        model = _model(splits, args.quick, seed)
        _common.compile_classifier(model, optimizer=keras.optimizers.SGD(
            learning_rate=FIXED_LR, momentum=0.9))
        finder = callbacks.find_learning_rate(
            model, (splits.x_train, splits.y_train), min_lr=1e-5, max_lr=10.0,
            num_steps=finder_steps, batch_size=batch, seed=seed)
        if finder.suggested is None:
            low, high, source = FIXED_LR / 4, FIXED_LR, "fallback (no suggestion)"
        else:
            (low, high), source = finder.suggested, "range test"
        schedule = schedules.Triangular2CyclicalLearningRate(
            initial_learning_rate=low, maximal_learning_rate=high,
            step_size=2 * steps_per_epoch)
        _common.compile_classifier(model, optimizer=keras.optimizers.SGD(
            learning_rate=schedule, momentum=0.9))
        history = model.fit(splits.x_train, splits.y_train, batch_size=batch,
                            epochs=epochs, verbose=0,
                            validation_data=(splits.x_test, splits.y_test))
        curves["triangular2"] = history.history["val_accuracy"]
        target = curves["fixed"][-1]
        reached = first_epoch_reaching(curves["triangular2"], target)
        runs.append(dict(seed=seed, bounds=[low, high], bounds_source=source,
                         curves=curves, fixed_final=target,
                         clr_final=curves["triangular2"][-1],
                         clr_epochs_to_fixed_final=reached,
                         fixed_epochs=epochs,
                         steps_per_epoch=steps_per_epoch,
                         finder=finder.to_dict() if seed == 0 else None))
        print(f"  seed {seed}: bounds {low:.3g}..{high:.3g} ({source}); "
              f"fixed final {target:.4f}; triangular2 reaches it at epoch "
              f"{reached} of {epochs}, final {curves['triangular2'][-1]:.4f}",
              flush=True)
    return dict(epochs=epochs, batch_size=batch, fixed_learning_rate=FIXED_LR,
                optimizer="SGD momentum 0.9", runs=runs,
                train_images=len(splits.y_train),
                test_images=len(splits.y_test))


def table(results):
    headers = ["seed", "CLR bounds", "fixed final acc", "CLR final acc",
               "CLR epochs to fixed final", "speed-up", "paper speed-up"]
    rows = []
    for r in results["runs"]:
        reached = r["clr_epochs_to_fixed_final"]
        rows.append([
            r["seed"], f"{r['bounds'][0]:.3g}..{r['bounds'][1]:.3g}",
            f"{r['fixed_final']:.4f}", f"{r['clr_final']:.4f}",
            f"{reached} / {r['fixed_epochs']}" if reached else
            f"not reached in {r['fixed_epochs']}",
            f"{r['fixed_epochs'] / reached:.2f}x" if reached else "< 1x",
            f"{PAPER['speedup']:.1f}x (25k vs 70k it.)"])
    return headers, rows


def plot(results, output_dir):
    plt = _common.pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for r in results["runs"]:
        epochs = np.arange(1, len(r["curves"]["fixed"]) + 1)
        axis.plot(epochs, r["curves"]["fixed"], color="C0", alpha=0.8,
                  label="fixed lr 0.01" if r["seed"] == 0 else None)
        axis.plot(epochs, r["curves"]["triangular2"], color="C3", alpha=0.8,
                  label="triangular2 (range-test bounds)"
                  if r["seed"] == 0 else None)
        axis.axhline(r["fixed_final"], color="C0", linestyle=":", alpha=0.5)
    axis.set_xlabel("epoch")
    axis.set_ylabel("test accuracy")
    axis.set_title("Cyclical vs fixed learning rate (mnist5k, SGD+momentum)")
    axis.legend(loc="lower right")
    return _common.save_figure(figure, output_dir, NAME)


def main(argv=None):
    parser = _common.make_parser(NAME, __doc__.splitlines()[0],
                                 default_seeds=2)
    args = _common.parse_args(parser, argv)
    _common.banner(NAME, args)
    results = run(args)
    results.update(claim="triangular2 reaches the fixed rate's final "
                         "accuracy in ~2.8x fewer iterations (Smith 2017)",
                   paper=PAPER, quick=args.quick, seeds=args.seeds)
    return _common.report(NAME, args, results, table, plot,
                          title="Epochs to reach the fixed rate's final "
                                "test accuracy")


if __name__ == "__main__":
    main()
