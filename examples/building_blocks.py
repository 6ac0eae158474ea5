"""kerascnn building blocks in a plain Keras `model.fit`, on mnist5k.

Every block is an ordinary Keras object, so this is the usual Keras code
with kerascnn pieces dropped in:

- `GroupNormalization(groups="auto")` after each convolution (batch-size
  independent, the tfa layer's replacement);
- `DropConnectConv2D` / `DropConnectDense` (dropped weights) and
  `InvertedDropout` (dropped activations) as regularizers;
- `MaxNorm(3.0)` on every kernel (per-filter axes picked automatically);
- a `Triangular2CyclicalLearningRate` schedule for SGD with momentum;
- kerascnn `EarlyStopping` (best weights restored);

then the model is saved as `.keras`, reloaded, exported as a SavedModel and
served, all three giving the same predictions, and `mc_predict` estimates
the uncertainty of the test predictions (Monte-Carlo dropout).

Run:  python examples/building_blocks.py [--quick] [--epochs N]
          [--output-dir DIR]
"""

import argparse
import os
import sys

import numpy as np


def build_model(num_classes=10, filters=16, dense_units=64):
    """A small CNN made of kerascnn blocks (28x28x1 uint8 input)."""
    import keras

    from kerascnn.constraints import MaxNorm
    from kerascnn.layers import (DropConnectConv2D, DropConnectDense,
                                 GroupNormalization, InvertedDropout)

    def cap():
        return MaxNorm(3.0)  # axis="auto": per Dense unit / per conv filter

    return keras.Sequential([
        keras.Input((28, 28, 1)),
        keras.layers.Rescaling(1 / 255.0),
        # No bias before a normalization with a learned offset.
        keras.layers.Conv2D(filters, 3, padding="same", use_bias=False,
                            kernel_constraint=cap()),
        GroupNormalization(groups="auto"),
        keras.layers.ReLU(),
        keras.layers.MaxPooling2D(),
        DropConnectConv2D(2 * filters, 3, rate=0.1, padding="same",
                          use_bias=False, kernel_constraint=cap()),
        GroupNormalization(groups="auto"),
        keras.layers.ReLU(),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        DropConnectDense(dense_units, rate=0.3, activation="relu",
                         kernel_constraint=cap()),
        InvertedDropout(0.3),
        keras.layers.Dense(num_classes, kernel_constraint=cap()),
    ], name="building_blocks")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="tiny run (600 images, 2 epochs): a smoke test")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--output-dir",
                        default="kerascnn_runs/building_blocks")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"Argument `epochs` must be a positive integer. "
                     f"Received: epochs={args.epochs}")

    import keras
    import tensorflow as tf

    from kerascnn import callbacks, data, datasets, schedules
    from kerascnn.layers import mc_predict

    keras.utils.set_random_seed(42)
    images, labels = datasets.load_mnist5k()
    if args.quick:
        rng = np.random.default_rng(0)
        keep = np.sort(np.concatenate([
            rng.choice(np.flatnonzero(labels == c), 60, replace=False)
            for c in range(10)]))
        images, labels = images[keep], labels[keep]
    splits = data.split_dataset(images, labels, validation_split=0.1,
                                test_split=0.1, seed=42)
    print(f"train {len(splits.y_train)}, validation {len(splits.y_val)}, "
          f"test {len(splits.y_test)}")

    epochs = 2 if args.quick else args.epochs
    batch_size = 32
    steps_per_epoch = int(np.ceil(len(splits.y_train) / batch_size))
    model = build_model(filters=8 if args.quick else 16,
                        dense_units=32 if args.quick else 64)
    # Triangular2 CLR (Smith 2017): a half cycle of 2 epochs, amplitude
    # halved every cycle.
    schedule = schedules.Triangular2CyclicalLearningRate(
        initial_learning_rate=0.005, maximal_learning_rate=0.05,
        step_size=2 * steps_per_epoch)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=schedule, momentum=0.9),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"])
    history = model.fit(
        splits.x_train, splits.y_train, epochs=epochs, batch_size=batch_size,
        validation_data=(splits.x_val, splits.y_val),
        callbacks=[callbacks.EarlyStopping(monitor="val_loss", patience=3)],
        verbose=2)
    print(f"trained {len(history.history['loss'])} epochs")

    loss, accuracy = model.evaluate(splits.x_test, splits.y_test, verbose=0)
    print(f"test accuracy {accuracy:.4f} (loss {loss:.4f})")

    # .keras round trip: every block is registered under "kerascnn>".
    os.makedirs(args.output_dir, exist_ok=True)
    keras_path = os.path.join(args.output_dir, "building_blocks.keras")
    model.save(keras_path)
    reloaded = keras.saving.load_model(keras_path)
    x_test = splits.x_test.astype("float32")
    logits = model.predict(x_test, verbose=0)
    reload_diff = float(np.abs(reloaded.predict(x_test, verbose=0)
                               - logits).max())
    print(f"reloaded {keras_path}: max |difference| {reload_diff:.2e}")

    # SavedModel export, served without the Python classes.
    export_path = os.path.join(args.output_dir, "saved_model")
    model.export(export_path, verbose=False)
    served_model = tf.saved_model.load(export_path)
    served = np.asarray(served_model.serve(x_test))
    served_accuracy = float(np.mean(served.argmax(axis=1) == splits.y_test))
    export_diff = float(np.abs(served - logits).max())
    print(f"exported {export_path}: max |difference| {export_diff:.2e}, "
          f"served test accuracy {served_accuracy:.4f}")

    # Monte-Carlo dropout: predictions the model is unsure about vary more.
    probabilities = keras.Sequential([model, keras.layers.Softmax()])
    mean, std = mc_predict(probabilities, x_test,
                           samples=10 if args.quick else 30)
    predicted = mean.argmax(axis=1)
    spread = std[np.arange(len(predicted)), predicted]
    correct = predicted == splits.y_test
    wrong = spread[~correct].mean() if (~correct).any() else float("nan")
    print(f"MC dropout: std of the predicted class "
          f"{spread[correct].mean():.4f} when right, {wrong:.4f} when wrong")
    return 0


if __name__ == "__main__":
    sys.exit(main())
