"""The kerascnn workflow with the Python API, step by step, on mnist5k.

The same job as `kerascnn quickstart`, written out so that each best practice
is one visible call:

1. load the embedded data (no download) and check the labels for imbalance;
2. split it (stratified train / validation / test) and look at the split;
3. build the CNN with `build_cnn` (shapes checked first, normalizer adapted
   on the training split only, augmentation inside the model);
4. train it with `fit` (early stopping with the best weights restored, a
   learning-rate schedule, a loss-curve diagnosis);
5. read the per-class report on the test split;
6. export a verified SavedModel and serve it.

Run:  python examples/workflow_mnist5k.py [--quick] [--export-dir DIR]
"""

import argparse
import sys

import numpy as np


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny run (600 images, 1 epoch): a smoke test")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--export-dir", default="saved_models")
    parser.add_argument("--name", default="mnist5k_workflow")
    parser.add_argument("--plot-dir", default="kerascnn_runs/workflow")
    parser.add_argument("--overwrite", action="store_true")
    args = parser.parse_args(argv)

    from kerascnn import data, datasets, export, models, training

    # 1. Data, and the imbalance check the lectures ask for before training.
    images, labels = datasets.load_mnist5k()
    if args.quick:
        rng = np.random.default_rng(0)
        keep = np.sort(np.concatenate([
            rng.choice(np.flatnonzero(labels == c), 60, replace=False)
            for c in range(10)]))
        images, labels = images[keep], labels[keep]
    print(f"{len(labels)} images {images.shape[1:]}, imbalance ratio "
          f"{data.imbalance_ratio(labels):.2f}")
    data.detect_imbalance(labels)  # prints a note and a remedy if needed

    # 2. A stratified, seeded split; fit uses it as given.
    splits = data.split_dataset(images, labels, validation_split=0.1,
                                test_split=0.1, seed=42)
    print(f"train {len(splits.y_train)}, validation {len(splits.y_val)}, "
          f"test {len(splits.y_test)}")

    # 3. The model: the normalizer is adapted on the training split only.
    batch_size = 32 if args.quick else 64
    model = models.build_cnn(
        splits.x_train.shape[1:], 10,
        depth=1 if args.quick else 2, filters=8 if args.quick else 32,
        batch_size=batch_size,
        normalizer=data.normalization_layer(splits.x_train),
        augmentation=data.augmentation("digits", seed=42))
    model.summary()

    # 4. Training: fit checks everything first, then compiles and trains.
    result = training.fit(
        splits, model, epochs=1 if args.quick else args.epochs,
        batch_size=batch_size, learning_rate=2e-3, schedule="exponential",
        plot_dir=args.plot_dir, verbose=2)

    # 5. The per-class report on the held-out test split.
    print(result.report.summary())
    print("Most confused (true, predicted, count):",
          result.report.most_confused(3))

    # 6. A verified export, served without Keras.
    path = export.export_model(
        result.model, args.name, directory=args.export_dir,
        overwrite=args.overwrite, class_names=result.class_names,
        metadata={"metrics": {"test_accuracy":
                              result.test_metrics["accuracy"]}})
    x_test, y_test = result.test_data
    served = export.predict_export(path, x_test)
    accuracy = float(np.mean(served.argmax(axis=1) == y_test))
    print(f"Exported to {path}; served test accuracy {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
