"""Tune a CNN on the embedded MNIST subset and export the best model.

Runs `kerascnn.tuning.search` (Hyperband over filter size, stride, padding,
depth, filters, normalization, dropout and learning rate, with collapsing
conv stacks removed from the space), prints the best configuration and its
test metrics, and exports the best model as a verified SavedModel whose
accuracy is checked again after reloading.

    python examples/tune_mnist5k.py            # a few CPU minutes
    python examples/tune_mnist5k.py --quick    # smoke test, seconds
"""

import argparse
import sys

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny search on a 600-image subset")
    parser.add_argument("--tuner", default="hyperband")
    parser.add_argument("--directory", default="kerascnn_tuning")
    parser.add_argument("--export-dir", default="saved_models")
    parser.add_argument("--name", default="mnist5k_tuned")
    args = parser.parse_args(argv)

    from kerascnn import datasets, export, tuning

    images, labels = datasets.load_mnist5k()
    if args.quick:
        images, labels = images[:600], labels[:600]
        space = {"depths": (1, 2), "filter_sizes": (3, 5), "filters": (8,),
                 "normalizations": ("batch",), "dropouts": (0.25,),
                 "learning_rate": (1e-3, 1e-2)}
        settings = dict(max_trials=2, epochs=1)
    else:
        space = {"depths": (2, 3), "filter_sizes": (3, 5), "strides": (1,),
                 "filters": (16, 32), "normalizations": ("batch",),
                 "dropouts": (0.25, 0.5), "learning_rate": (3e-4, 3e-3)}
        settings = dict(max_trials=8, epochs=8)

    result = tuning.search(
        (images, labels), tuner=args.tuner, space=space, batch_size=64,
        patience=2, directory=args.directory,
        project_name=f"{args.tuner}_quick" if args.quick else None,
        overwrite=args.quick, **settings)
    print(result.summary())

    splits = result.splits
    path = export.export_model(
        result.best_model, args.name, directory=args.export_dir,
        sample=splits.x_test[:8].astype("float32"), overwrite=True,
        class_names=result.class_names,
        metadata={"metrics": result.test_metrics,
                  "hyperparameters": result.best_hyperparameters})
    served = export.load_export(path).serve(splits.x_test.astype("float32"))
    accuracy = float(np.mean(served.argmax(axis=1) == splits.y_test))
    print(f"Exported {path}; the reloaded SavedModel's test accuracy is "
          f"{accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
