"""`kerascnn quickstart`: the main job, from embedded data to a verified
export.

Trains the package's default CNN on the embedded `mnist5k` (5,000 MNIST
digits) with `kerascnn.training.fit`, writes the loss-curve plot, its
diagnosis and the confusion matrix, exports a verified SavedModel, reloads it
with `tf.saved_model.load(...).serve` and reports the reloaded model's test
accuracy. Nothing is downloaded.
"""

import argparse
import os
import time

import numpy as np

from kerascnn.cli import _common

DEFAULT_NAME = "mnist5k_cnn"
DEFAULT_OUTPUT_DIR = os.path.join("kerascnn_runs", "quickstart")

# The recipe is `fit`'s defaults (kerascnn.training.defaults, chosen by the
# measured runs in docs/training.md, "Defaults"): on "mnist5k" they mean the
# "digits" augmentation and no early stopping under the one-cycle schedule.
# `benchmarks/bench_quickstart.py` measures it against the 20-line plain-Keras
# script of issue 13 in the same run.


# --quick: a tiny smoke run (no accuracy claim).
QUICK_SAMPLES = 600
QUICK_MODEL_KWARGS = {"depth": 1, "filters": 8, "convs_per_block": 1,
                      "dense_units": 16}


def register(subparsers):
    parser = _common.add_parser(
        subparsers, "quickstart",
        help_text="train, diagnose and export a CNN on the embedded MNIST "
                  "subset (the main job)",
        description=(
            "Train the default kerascnn CNN on mnist5k (5,000 embedded MNIST "
            "digits: 80% train, 10% validation, 10% test), print the "
            "loss-curve diagnosis and per-class report, write the plots, "
            "export a verified SavedModel and check the reloaded export on "
            "the test split. Takes a few minutes on a 2-core CPU; nothing is "
            "downloaded."),
        example="kerascnn quickstart --output-dir runs/qs --name mnist5k_cnn")
    parser.add_argument("--epochs", type=_common.positive_int,
                        default=argparse.SUPPRESS,
                        help="epochs of the one-cycle schedule (no early "
                             "stopping) "
                             "(default: fit's, kerascnn.training.defaults."
                             "EPOCHS; 1 with --quick)")
    parser.add_argument("--seed", type=_seed, default=42,
                        help="seeds the split, the weights and the "
                             "augmentation")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR,
                        help="folder for the loss-curve and confusion-matrix "
                             "plots")
    _common.add_export_arguments(parser, name_default=DEFAULT_NAME)
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny smoke run ({QUICK_SAMPLES} images, one "
                             "small block, 1 epoch unless --epochs): checks "
                             "the installation, no accuracy claim")
    parser.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                        help="0 silent, 1 progress bar, 2 one line per epoch")
    parser.set_defaults(func=run)
    return parser


def run(args):
    from kerascnn import datasets
    from kerascnn.export import predict_export
    from kerascnn.training import fit

    # Refuse an existing export before any training.
    destination = _common.check_export_target(args.export, args.export_dir,
                                              args.overwrite)
    started = time.time()
    seed = getattr(args, "seed", 42)
    if args.quick:
        images, labels = datasets.load_mnist5k()
        data = _stratified_subset(images, labels, QUICK_SAMPLES, seed=42)
        recipe = dict(epochs=getattr(args, "epochs", 1), batch_size=32)
        model_kwargs = dict(QUICK_MODEL_KWARGS)
    else:
        data = "mnist5k"
        recipe = {"epochs": args.epochs} if hasattr(args, "epochs") else {}
        model_kwargs = None
    result = fit(data, model_kwargs=model_kwargs, plot_dir=args.output_dir,
                 verbose=args.verbose, seed=seed, **recipe)
    path = _common.export_result(result, args.export, args.export_dir,
                                 args.overwrite, data_name="mnist5k")
    x_test, y_test = result.test_data
    # The reloaded SavedModel (tf.saved_model.load(...).serve), not Keras.
    probabilities = predict_export(path, x_test)
    export_accuracy = float(np.mean(probabilities.argmax(axis=1) == y_test))
    plots = dict(result.plots)
    if "top_losses" not in plots:
        from kerascnn.data.metrics import plot_top_losses

        os.makedirs(args.output_dir, exist_ok=True)
        plots["top_losses"] = plot_top_losses(
            x_test, y_test, probabilities, list(result.class_names),
            os.path.join(args.output_dir, "top_losses.png"))
    minutes = (time.time() - started) / 60
    print()
    print(result.report.summary())
    print()
    print(result.summary())
    print(f"Exported SavedModel: {destination} (saved_model/, model.keras, "
          "metadata.json)")
    print(f"Reloaded export test accuracy: {export_accuracy:.4f} on "
          f"{len(y_test)} held-out images"
          + (" (--quick run: no accuracy claim)" if args.quick else ""))
    for label, plot in plots.items():
        print(f"Plot ({label.replace('_', ' ')}): {plot}")
    print(f"Done in {minutes:.1f} min. Try: kerascnn predict --model "
          f"{destination} IMAGE.png")
    return 0


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(
            f"must be an integer >= 0, received {text!r}")
    return value


def _stratified_subset(images, labels, size, seed):
    """`size` images, every class in proportion (for --quick)."""
    rng = np.random.default_rng(seed)
    keep = []
    for label in np.unique(labels):
        index = np.flatnonzero(labels == label)
        count = max(2, int(round(size * len(index) / len(labels))))
        keep.append(rng.choice(index, size=count, replace=False))
    keep = np.sort(np.concatenate(keep))
    return images[keep], labels[keep]
