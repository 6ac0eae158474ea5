"""Evidence 5: the transfer-learning table, every plan measured.

Claim (the course tutorials and CS231n's transfer table): with a small
target similar to the source, freeze the pretrained network and train a
linear classifier on top; with more target labels, fine-tune (the top
layers first); with small dissimilar data, try a linear SVM on lower-level
features; with large dissimilar data, train from scratch (or fine-tune
everything). Here: a source CNN (kerascnn `build_cnn`) is pretrained on the
mnist5k digits 0-4; the target task is the digits 5-9 with 10, 50 or 400
labelled images per class (20% of them held out for validation / early
stopping) and a separate test set of 100 images per class. Every plan of the
table is run with `kerascnn.transfer.fit` (the plan forced through
`similar` / `large`), plus training the same architecture from scratch, and
the plan that `kerascnn.transfer.recommend` picks for the data (measured
similarity to the source images, size from images per class) is marked.

Usage: python -m benchmarks.evidence 05_transfer_table [--quick] [--seeds N]
"""

import numpy as np

from benchmarks import _common

NAME = "05_transfer_table"
PLANS = ("freeze + linear head", "fine-tune top", "low-level SVM",
         "from scratch")
# The plan each strategy of `recommend` corresponds to.
STRATEGY_TO_PLAN = {"linear_head": "freeze + linear head",
                    "fine_tune_top": "fine-tune top",
                    "linear_probe": "low-level SVM",
                    "fine_tune_all": "fine-tune all (not a column)"}
FORCED = {"freeze + linear head": dict(similar=True, large=False),
          "fine-tune top": dict(similar=True, large=True),
          "low-level SVM": dict(similar=False, large=False)}
LECTURE_RULE = {("similar", "small"): "freeze + linear head",
                ("similar", "large"): "fine-tune top",
                ("dissimilar", "small"): "low-level SVM",
                ("dissimilar", "large"): "from scratch"}


def _architecture(quick):
    return dict(depth=1 if quick else 2, filters=4 if quick else 16,
                convs_per_block=1, dense_units=16 if quick else 64,
                normalization="batch", dropout=0.25, head="flatten",
                verbose=False)


def pretrain_source(x, y, quick, seed, epochs, batch):
    import keras

    from kerascnn import models

    keras.utils.set_random_seed(seed)
    model = models.build_cnn(x.shape[1:], 5, normalizer=x,
                             name="source_digits_0_4", **_architecture(quick))
    _common.compile_classifier(model)
    model.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
    return model


def from_scratch(x, y, quick, seed, epochs, batch, patience):
    import keras

    from kerascnn import callbacks, data, models

    splits = data.split_dataset(x, y, validation_split=0.2, test_split=0.0,
                                seed=seed)
    keras.utils.set_random_seed(seed)
    model = models.build_cnn(x.shape[1:], 5, normalizer=splits.x_train,
                             **_architecture(quick))
    _common.compile_classifier(model)
    model.fit(splits.x_train, splits.y_train,
              validation_data=(splits.x_val, splits.y_val),
              batch_size=min(batch, len(splits.y_train)), epochs=epochs,
              verbose=0, callbacks=[callbacks.EarlyStopping(
                  monitor="val_loss", patience=patience)])
    return model


def run(args):
    import keras

    from kerascnn import datasets, transfer

    if args.quick:
        sizes, source_per_class, test_per_class = (10,), 20, 10
        source_epochs, epochs, head_epochs, patience, batch = 1, 1, 2, 1, 16
    else:
        sizes, source_per_class, test_per_class = (10, 50, 400), None, 100
        source_epochs, epochs, head_epochs, patience, batch = 4, 15, 100, 4, 32
    x_all, y_all = datasets.load_mnist5k()
    rows = []
    for seed in range(args.seeds):
        source = y_all < 5
        x_source, y_source = x_all[source], y_all[source]
        if source_per_class:
            x_source, y_source = _common.per_class_subset(
                x_source, y_source, source_per_class, seed)
        source_model = pretrain_source(x_source, y_source, args.quick, seed,
                                       source_epochs, batch)
        x_target, y_target = x_all[~source], y_all[~source] - 5
        rng = np.random.default_rng(seed)
        order = rng.permutation(len(y_target))
        test_index = np.concatenate([order[y_target[order] == c][:test_per_class]
                                     for c in range(5)])
        pool = np.setdiff1d(order, test_index)
        pool = pool[rng.permutation(len(pool))]
        x_test, y_test = x_target[test_index], y_target[test_index]
        for per_class in sizes:
            labelled = np.concatenate([pool[y_target[pool] == c][:per_class]
                                       for c in range(5)])
            x, y = x_target[labelled], y_target[labelled]
            row = dict(seed=seed, labels_per_class=per_class, accuracy={},
                       seconds={})
            backbone = transfer.get_backbone(source_model)
            plan = transfer.recommend(backbone, x, y, source_images=x_source)
            row.update(recommended=STRATEGY_TO_PLAN[plan.strategy],
                       recommended_cell=plan.cell,
                       cosine=float(plan.similarity.cosine),
                       distance=float(plan.similarity.distance),
                       lecture_rule=LECTURE_RULE[tuple(plan.cell.split("-"))])
            for name in PLANS:
                keras.utils.set_random_seed(seed)
                with _common.Stopwatch() as watch:
                    if name == "from scratch":
                        model = from_scratch(x, y, args.quick, seed, 3 * epochs,
                                             batch, patience)
                    else:
                        model = transfer.fit(
                            source_model, x, y, epochs=epochs,
                            batch_size=batch, patience=patience,
                            head_epochs=head_epochs,
                            head_patience=max(patience, 10), seed=seed,
                            **FORCED[name]).model
                row["accuracy"][name] = _common.accuracy(model, x_test, y_test)
                row["seconds"][name] = watch.seconds
                print(f"  seed {seed} {per_class:>3}/class {name:<22}: test "
                      f"accuracy {row['accuracy'][name]:.4f} "
                      f"({watch.seconds:.0f} s)", flush=True)
            top = max(row["accuracy"].values())
            best = " = ".join(p for p in PLANS if row["accuracy"][p] == top)
            row["best"] = best
            print(f"  recommend -> {plan.cell} ({row['recommended']}); "
                  f"cosine {row['cosine']:.3f}, distance {row['distance']:.3f};"
                  f" best measured: {best}", flush=True)
            rows.append(row)
    return dict(sizes=list(sizes), plans=list(PLANS), rows=rows,
                source_images=len(y_source), test_images=len(y_test),
                epochs=epochs, head_epochs=head_epochs, patience=patience,
                source_epochs=source_epochs)


def table(results):
    headers = (["labels/class", "seed"] + [f"{p} acc" for p in PLANS]
               + ["recommend picks", "lecture rule (cell)", "best measured"])
    rows = []
    for r in results["rows"]:
        cells = []
        for p in PLANS:
            mark = " *" if p == r["recommended"] else ""
            cells.append(f"{r['accuracy'][p]:.4f}{mark}")
        rows.append([r["labels_per_class"], r["seed"]] + cells
                    + [r["recommended"],
                       f"{r['lecture_rule']} ({r['recommended_cell']})",
                       r["best"]])
    seeds = sorted({r["seed"] for r in results["rows"]})
    if len(seeds) > 1:
        for size in results["sizes"]:
            group = [r for r in results["rows"]
                     if r["labels_per_class"] == size]
            means = {p: float(np.mean([r["accuracy"][p] for r in group]))
                     for p in PLANS}
            picks = sorted({r["recommended"] for r in group})
            top = max(means.values())
            rows.append([size, f"mean of {len(group)}"]
                        + [_common.fmt_mean_std(
                            [r["accuracy"][p] for r in group], digits=4)
                           + (" *" if p in picks else "") for p in PLANS]
                        + [" / ".join(picks), "",
                           " = ".join(p for p in PLANS if means[p] == top)])
    return headers, rows


def plot(results, output_dir):
    plt = _common.pyplot()
    figure, axis = plt.subplots(figsize=(7, 4))
    sizes = results["sizes"]
    for i, plan in enumerate(PLANS):
        means = [np.mean([r["accuracy"][plan] for r in results["rows"]
                          if r["labels_per_class"] == s]) for s in sizes]
        axis.plot(sizes, means, marker="o", color=f"C{i}", label=plan)
        for s, m in zip(sizes, means):
            picked = any(r["recommended"] == plan for r in results["rows"]
                         if r["labels_per_class"] == s)
            if picked:
                axis.scatter([s], [m], s=160, facecolors="none",
                             edgecolors="k", zorder=5)
    axis.scatter([], [], s=160, facecolors="none", edgecolors="k",
                 label="picked by recommend")
    axis.set_xscale("log")
    axis.set_xticks(sizes, [str(s) for s in sizes])
    axis.set_xlabel("target labels per class (digits 5-9)")
    axis.set_ylabel("test accuracy")
    axis.set_title("Transfer from digits 0-4: every plan of the table")
    axis.legend(fontsize=8)
    return _common.save_figure(figure, output_dir, NAME)


def main(argv=None):
    parser = _common.make_parser(NAME, __doc__.splitlines()[0])
    args = _common.parse_args(parser, argv)
    _common.banner(NAME, args)
    results = run(args)
    results.update(claim="small similar target: freeze + linear head; more "
                         "labels: fine-tune (transfer table)",
                   quick=args.quick, seeds=args.seeds)
    return _common.report(NAME, args, results, table, plot,
                          title="Target test accuracy "
                                "(* = the plan recommend picks)")


if __name__ == "__main__":
    main()
