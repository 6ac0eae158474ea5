"""Evidence 3: the ordering of regularizers (L2, max-norm, dropout + each).

Claim (Srivastava et al., "Dropout", JMLR 2014, Table 9, MNIST, the same
network with different regularizers): L2 1.62% test error, max-norm 1.35%,
dropout + L2 1.25%, dropout + max-norm 1.05%. Here the four settings are
`kerascnn.models.build_cnn` arguments on one CNN (two conv blocks, no
normalization layer so that only the regularizer differs, flatten -> 256
hidden units) trained on mnist5k with Adam for the same number of epochs,
over several seeds (different splits and initial weights); the table gives
the mean and spread of the test error.

Usage: python -m benchmarks.evidence 03_regularization [--quick] [--seeds N]
"""

import numpy as np

from benchmarks import _common

NAME = "03_regularization"
L2 = 1e-4
MAX_NORM = 3.0
DROPOUT = 0.5
SETTINGS = {
    "L2": dict(l2=L2, dropout=0.0),
    "max-norm": dict(max_norm=MAX_NORM, dropout=0.0),
    "dropout + L2": dict(l2=L2, dropout=DROPOUT, block_dropout=0.2),
    "dropout + max-norm": dict(max_norm=MAX_NORM, dropout=DROPOUT,
                               block_dropout=0.2),
}
PAPER_ERROR = {"L2": 1.62, "max-norm": 1.35, "dropout + L2": 1.25,
               "dropout + max-norm": 1.05}


def run(args):
    import keras

    from kerascnn import models

    if args.quick:
        epochs, batch, per_class, filters, units = 1, 16, 10, 4, 16
    else:
        epochs, batch, per_class, filters, units = 10, 64, None, 16, 256
    errors = {name: [] for name in SETTINGS}
    train_loss = {name: [] for name in SETTINGS}
    for seed in range(args.seeds):
        splits = _common.mnist5k_splits(seed=seed, per_class=per_class)
        for name, kwargs in SETTINGS.items():
            keras.utils.set_random_seed(seed)
            model = models.build_cnn(
                splits.x_train.shape[1:], 10, depth=2, filters=filters,
                convs_per_block=1, normalization="none", head="flatten",
                dense_units=units, normalizer=splits.x_train, verbose=False,
                **kwargs)
            _common.compile_classifier(model)
            history = model.fit(splits.x_train, splits.y_train,
                                batch_size=batch, epochs=epochs, verbose=0)
            error = 1.0 - _common.accuracy(model, splits.x_test, splits.y_test)
            errors[name].append(error)
            train_loss[name].append(history.history["loss"][-1])
            print(f"  seed {seed} {name:<20}: test error {100 * error:.2f}%",
                  flush=True)
    return dict(settings={k: dict(v) for k, v in SETTINGS.items()},
                epochs=epochs, batch_size=batch, optimizer="adam 1e-3",
                test_error=errors, final_train_loss=train_loss,
                train_images=len(splits.y_train),
                test_images=len(splits.y_test))


def table(results):
    headers = ["setting", "our test error % (mean ± sd)", "rank (ours)",
               "paper error % (MNIST)", "rank (paper)"]
    means = {k: np.mean(v) for k, v in results["test_error"].items()}
    ours = sorted(means, key=means.get)
    paper = sorted(PAPER_ERROR, key=PAPER_ERROR.get)
    rows = [[name, _common.fmt_mean_std(results["test_error"][name], 100.0),
             ours.index(name) + 1, PAPER_ERROR[name], paper.index(name) + 1]
            for name in SETTINGS]
    return headers, rows


def plot(results, output_dir):
    plt = _common.pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    names = list(SETTINGS)
    positions = np.arange(len(names))
    for i, name in enumerate(names):
        values = 100 * np.asarray(results["test_error"][name])
        axis.scatter(np.full(len(values), i - 0.12), values, color="C0",
                     s=14, label="kerascnn (each seed)" if i == 0 else None)
        axis.errorbar(i - 0.12, values.mean(),
                      yerr=values.std(ddof=1) if len(values) > 1 else 0,
                      color="C0", marker="_", markersize=18, capsize=4)
    axis.scatter(positions + 0.12, [PAPER_ERROR[n] for n in names],
                 color="C3", marker="s", label="Srivastava et al. 2014 (MNIST)")
    axis.set_xticks(positions, names)
    axis.set_ylabel("test error (%)")
    axis.set_title(f"Regularization on mnist5k ({results['epochs']} epochs)")
    axis.legend()
    return _common.save_figure(figure, output_dir, NAME)


def main(argv=None):
    parser = _common.make_parser(NAME, __doc__.splitlines()[0],
                                 default_seeds=3)
    args = _common.parse_args(parser, argv)
    _common.banner(NAME, args)
    results = run(args)
    results.update(claim="error: L2 > max-norm > dropout+L2 > dropout+max-norm"
                         " (Srivastava et al. 2014)",
                   paper_error=PAPER_ERROR, quick=args.quick,
                   seeds=args.seeds)
    return _common.report(NAME, args, results, table, plot,
                          title="Test error by regularizer")


if __name__ == "__main__":
    main()
