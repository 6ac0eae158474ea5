"""Evidence 8: do LogME and LEEP rank source models as the plan's accuracy does?

Claim (You et al., "LogME", ICML 2021; Nguyen et al., "LEEP", ICML 2020):
a score computed from one forward pass over the labelled target images
ranks pretrained models as their accuracy after transfer does ("a
pre-trained model with a high LogME value is likely to have good transfer
performance"), so `kerascnn.transfer.rank` can choose a source without
training each. Here (issue 11's protocol, `benchmarks/bench_transfer_digits`):
the target is the mnist5k digits 5-9 (relabelled 0-4) with the first 10 (and
optionally 50) labelled images per class of the pool, tested on the 1,000
held-out images. The candidates are source CNNs of the bench's two kinds
(`plain`: no BatchNorm; `bn`: conv-BN-ReLU) pretrained on the digits 0-4
for 0 (random initialisation), 1, 3 and 8 epochs (snapshots of one run,
batch 64, Adam 1e-3), a plain CNN pretrained 8 epochs on the digits 0-1
only, and one on the digits 0-4 with inverted pixels. For each candidate,
on the labelled target images only: LogME of the top block's pooled
features (`rank(..., score="logme")`: the features the similar-small plan's
logistic regression is fitted on), the best LogME over its blocks
(`rank(backbone, blocks=True)`), and LEEP of its own softmax head
(`rank(..., score="leep")`); then the test accuracy after the package's
plan with its defaults, `transfer.fit(source, x, y, source_images=<500 of
the candidate's source images, 100 (250) per class>)` (the bench passes
`x_source[:500]`, which in the digit-sorted mnist5k are all zeros). Reported: Kendall's tau (tau-b, scipy)
of each score against that accuracy over the candidates, per seed (the
seed of the source's initialisation and training) and averaged.

Usage: python -m benchmarks.evidence 08_transferability [--quick]
       [--seeds N] [--per-class 10,50]
"""

import numpy as np

from benchmarks import _common

NAME = "08_transferability"
SCORES = ("logme", "logme_best_block", "leep")
SCORE_LABELS = {"logme": "LogME (top block)",
                "logme_best_block": "LogME (best block)",
                "leep": "LEEP"}
# (kind, source digits, inverted pixels, epochs of pretraining)
CANDIDATES = tuple(
    [("plain", "0-4", False, e) for e in (0, 1, 3, 8)]
    + [("bn", "0-4", False, e) for e in (0, 1, 3, 8)]
    + [("plain", "0-1", False, 8), ("plain", "0-4", True, 8)])
QUICK_CANDIDATES = (("plain", "0-4", False, 0), ("plain", "0-4", False, 1),
                    ("plain", "0-1", False, 1))


def candidate_name(kind, digits, inverted, epochs):
    return (f"{kind} {digits}{' inverted' if inverted else ''} "
            f"{epochs} ep")


def _bench():
    from benchmarks import bench_transfer_digits

    return bench_transfer_digits


def source_images(x_source, y_source, digits, inverted):
    """The images and labels a candidate is pretrained on."""
    last = int(digits.split("-")[1])
    keep = y_source <= last
    x, y = x_source[keep], y_source[keep]
    if inverted:
        x = (255 - x.astype("float32")).astype(x_source.dtype)
    return x, y


def pretrain(kind, x, y, epochs, seed):
    """One source CNN trained `max(epochs)` epochs; a model per snapshot.

    `epochs` may contain 0 (the random initialisation). Snapshots keep
    every weight (BatchNorm's moving statistics included).
    """
    import keras

    builder = _bench().BUILDERS[kind]
    num_classes = int(np.max(y)) + 1
    keras.utils.set_random_seed(seed)
    model = builder(num_classes)
    snapshots = {0: model.get_weights()} if 0 in epochs else {}

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 in epochs:
                snapshots[epoch + 1] = self.model.get_weights()

    if max(epochs) > 0:
        model.fit(x, y, epochs=max(epochs), batch_size=64, verbose=0,
                  callbacks=[Snapshot()])
    models = {}
    for e in epochs:
        models[e] = builder(num_classes)
        models[e].set_weights(snapshots[e])
    return models


def scores_of(model, x, y):
    """LogME (top block, best block) and LEEP on the labelled images."""
    from kerascnn import transfer

    logme = transfer.rank({"source": model}, x, y, score="logme")
    blocks = transfer.rank(transfer.get_backbone(model), x, y,
                           score="logme", blocks=True)
    leep = transfer.rank({"source": model}, x, y, score="leep")
    return {"logme": logme.scores["source"],
            "logme_best_block": blocks.scores[blocks.best],
            "best_logme_block": blocks.best.split("/")[-1],
            "leep": leep.scores["source"]}


def kendall(scores, accuracies):
    """Kendall's tau-b and its two-sided p-value (None when undefined)."""
    from scipy import stats

    result = stats.kendalltau(scores, accuracies)
    tau, p = float(result.statistic), float(result.pvalue)
    return {"tau": tau if np.isfinite(tau) else None,
            "p": p if np.isfinite(p) else None}


def _parse_sizes(text):
    from kerascnn import _validation

    sizes = [_common.parse_int("per_class", part)
             for part in str(text).split(",")]
    for size in sizes:
        if size > 250:
            _validation.fail("per_class", "at most 250 labelled images per "
                             "class (the pool holds about 300 of each)",
                             size)
    return sizes


def run(args):
    from kerascnn import transfer

    bench = _bench()
    x_source, y_source, x_pool, y_pool, x_test, y_test = \
        bench.experiment_data()
    candidates, sizes, extra = CANDIDATES, args.per_class, {}
    if args.quick:
        candidates, sizes, extra = QUICK_CANDIDATES, [10], {"copies": 1}
        # mnist5k is sorted by digit: the first 500 are all zeros.
        x_source, y_source = _common.per_class_subset(x_source, y_source,
                                                      100, seed=0)
        x_test, y_test = x_test[:200], y_test[:200]
    start_environment = _common.environment()
    rows, taus = [], []
    for seed in range(args.seeds):
        models = {}
        for kind, digits, inverted in sorted({c[:3] for c in candidates}):
            epochs = sorted({c[3] for c in candidates
                             if c[:3] == (kind, digits, inverted)})
            x_s, y_s = source_images(x_source, y_source, digits, inverted)
            with _common.Stopwatch() as watch:
                trained = pretrain(kind, x_s, y_s, epochs, seed)
            print(f"  seed {seed}: pretrained {kind} on digits {digits}"
                  f"{' (inverted)' if inverted else ''}, {max(epochs)} "
                  f"epochs, {len(y_s)} images ({watch.seconds:.0f} s)",
                  flush=True)
            # 500 source images for the similarity, every class alike.
            sample, _ = _common.per_class_subset(
                x_s, y_s, 500 // (int(np.max(y_s)) + 1), seed=0)
            for e, model in trained.items():
                models[(kind, digits, inverted, e)] = (model, sample)
        for per_class in sizes:
            x, y = bench.labelled(x_pool, y_pool, per_class)
            group = []
            for candidate in candidates:
                model, sample = models[candidate]
                name = candidate_name(*candidate)
                with _common.Stopwatch() as score_watch:
                    row = scores_of(model, x, y)
                with _common.Stopwatch() as fit_watch:
                    result = transfer.fit(model, x, y,
                                          source_images=sample, **extra)
                row.update(
                    seed=seed, labels_per_class=per_class, candidate=name,
                    kind=candidate[0], source_digits=candidate[1],
                    inverted=candidate[2], source_epochs=candidate[3],
                    accuracy=_common.accuracy(result.model, x_test, y_test),
                    cell=result.plan.cell,
                    block=getattr(result.probe, "best_block", None),
                    C=getattr(result.probe, "C", None),
                    cv_accuracy=result.cv_accuracy, copies=result.copies,
                    score_seconds=score_watch.seconds,
                    fit_seconds=fit_watch.seconds)
                group.append(row)
                print(f"  seed {seed} {per_class:>2}/class {name:<24}: "
                      f"LogME {row['logme']:.4f}, best block "
                      f"{row['logme_best_block']:.4f}, LEEP "
                      f"{row['leep']:.4f} -> {row['cell']}, block "
                      f"{row['block']}, test accuracy {row['accuracy']:.4f}"
                      f" ({score_watch.seconds:.0f} + "
                      f"{fit_watch.seconds:.0f} s)", flush=True)
            accuracies = [r["accuracy"] for r in group]
            entry = dict(seed=seed, labels_per_class=per_class)
            for score in SCORES:
                values = [r[score] for r in group]
                entry[score] = kendall(values, accuracies)
                picked = group[int(np.argmax(values))]
                entry[score].update(picked=picked["candidate"],
                                    picked_accuracy=picked["accuracy"])
            entry["best_accuracy"] = max(accuracies)
            entry["best_candidate"] = group[int(np.argmax(accuracies))][
                "candidate"]
            taus.append(entry)
            rows.extend(group)
    mean_tau = {}
    for per_class in sizes:
        group = [t for t in taus if t["labels_per_class"] == per_class]
        mean_tau[str(per_class)] = {
            score: _mean([t[score]["tau"] for t in group])
            for score in SCORES}
    return dict(sizes=list(sizes), candidates=[candidate_name(*c)
                                               for c in candidates],
                rows=rows, kendall=taus, mean_tau=mean_tau,
                test_images=len(y_test), copies=extra.get("copies", "auto"),
                environment_at_start=start_environment)


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _fmt_tau(entry):
    if entry["tau"] is None:
        return "undefined"
    return f"{entry['tau']:+.2f} (p {entry['p']:.3f})"


def table(results):
    headers = (["labels/class", "seed", "candidate"]
               + [SCORE_LABELS[s] for s in SCORES]
               + ["plan cell", "probe block", "test acc"])
    rows = []
    for r in results["rows"]:
        rows.append([r["labels_per_class"], r["seed"], r["candidate"],
                     f"{r['logme']:.4f}",
                     f"{r['logme_best_block']:.4f} ({r['best_logme_block']})",
                     f"{r['leep']:.4f}", r["cell"], r["block"] or "-",
                     f"{r['accuracy']:.4f}"])
    for t in results["kendall"]:
        rows.append([t["labels_per_class"], t["seed"],
                     "Kendall's tau vs test acc"]
                    + [_fmt_tau(t[s]) for s in SCORES] + ["", "", ""])
        rows.append([t["labels_per_class"], t["seed"],
                     "test acc of the top-scored"]
                    + [f"{t[s]['picked_accuracy']:.4f} ({t[s]['picked']})"
                       for s in SCORES]
                    + ["", "best", f"{t['best_accuracy']:.4f}"])
    seeds = sorted({t["seed"] for t in results["kendall"]})
    if len(seeds) > 1:
        for size in results["sizes"]:
            means = results["mean_tau"][str(size)]
            rows.append([size, f"mean of {len(seeds)}",
                         "Kendall's tau vs test acc"]
                        + ["undefined" if means[s] is None
                           else f"{means[s]:+.2f}" for s in SCORES]
                        + ["", "", ""])
    return headers, rows


def plot(results, output_dir):
    plt = _common.pyplot()
    figure, axes = plt.subplots(1, len(SCORES), figsize=(12, 4),
                                sharey=True)
    groups = sorted({(r["labels_per_class"], r["seed"])
                     for r in results["rows"]})
    for axis, score in zip(axes, SCORES):
        for i, (size, seed) in enumerate(groups):
            group = [r for r in results["rows"]
                     if (r["labels_per_class"], r["seed"]) == (size, seed)]
            tau = next(t[score]["tau"] for t in results["kendall"]
                       if (t["labels_per_class"], t["seed"]) == (size, seed))
            label = (f"{size}/class seed {seed}, tau "
                     + ("undefined" if tau is None else f"{tau:+.2f}"))
            axis.scatter([r[score] for r in group],
                         [r["accuracy"] for r in group], color=f"C{i}",
                         marker="os^vD<>"[i % 7], label=label)
            if i == 0:
                for r in group:
                    axis.annotate(r["candidate"], (r[score], r["accuracy"]),
                                  fontsize=6, xytext=(3, 3),
                                  textcoords="offset points")
        axis.set_xlabel(SCORE_LABELS[score] + " on the labelled images")
        axis.legend(fontsize=6, loc="lower right")
    axes[0].set_ylabel("test accuracy after transfer.fit")
    figure.suptitle("Digits 0-4 sources -> digits 5-9: score vs accuracy "
                    "after the plan")
    return _common.save_figure(figure, output_dir, NAME)


def main(argv=None):
    parser = _common.make_parser(NAME, __doc__.splitlines()[0])
    parser.add_argument("--per-class", default="10",
                        help="labelled images per class, comma-separated "
                             "(default 10; --quick: 10)")
    sizes = _parse_sizes(parser.parse_args(argv).per_class)  # before any
    args = _common.parse_args(parser, argv)  # folder is created
    args.per_class = sizes
    _common.banner(NAME, args)
    results = run(args)
    results.update(claim="LogME / LEEP rank source models as their accuracy "
                         "after transfer does (Kendall's tau > 0)",
                   quick=args.quick, seeds=args.seeds)
    return _common.report(NAME, args, results, table, plot,
                          title="Scores on the labelled target images and "
                                "test accuracy after transfer.fit")


if __name__ == "__main__":
    main()
