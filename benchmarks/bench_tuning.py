"""Time to a target validation accuracy: kerascnn.tuning vs a naive KerasTuner.

Both searches run in this process, on the same data split and over the same
hyperparameters (the default `SearchSpace`: depth, filter size, stride,
padding, filters, normalization, dropout, log learning rate):

* ours: `kerascnn.tuning.search(tuner="hyperband")`: collapsing stacks never
  drawn, early stopping in every trial;
* naive: `keras_tuner.RandomSearch` with a `build(hp)` that draws filter size,
  stride, padding and depth independently and builds the same network with
  plain Keras layers (no shape constraint, no early stopping, every trial
  trained for all epochs; a collapsing stack fails inside Keras). Its
  `max_consecutive_failed_trials` is raised so that failures do not end it.

The clock starts before each search and stops at the first epoch whose
`val_accuracy` reaches the target; the ratio naive / ours is printed (the
target of the issue is 2 or more).

    python benchmarks/bench_tuning.py            # mnist5k, target 0.97
    python benchmarks/bench_tuning.py --quick    # digits, target 0.90
"""

import argparse
import os
import shutil
import sys
import tempfile
import time


def _clock_callback(target, state):
    import keras
    from keras_tuner import errors

    class Clock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            state["epochs"] += 1
            value = (logs or {}).get("val_accuracy", 0.0)
            state["best"] = max(state["best"], value)
            if value >= target:
                state["seconds"] = time.perf_counter() - state["start"]
                # A FatalError is the one exception KerasTuner re-raises.
                raise errors.FatalError("target reached")

    return Clock()


def _naive_build(input_shape, num_classes, space):
    import keras

    def build(hp):
        depth = hp.Choice("depth", list(space.depths))
        filter_size = hp.Choice("filter_size", list(space.filter_sizes))
        stride = hp.Choice("stride", list(space.strides))
        padding = hp.Choice("padding", [str(p) for p in space.paddings])
        filters = hp.Choice("filters", list(space.filters))
        normalization = hp.Choice("normalization",
                                  list(space.normalizations))
        dropout = hp.Choice("dropout", list(space.dropouts))
        low, high = space.learning_rate
        learning_rate = hp.Float("learning_rate", low, high, sampling="log")
        inputs = keras.Input(input_shape)
        x = keras.layers.Rescaling(1 / 255.0)(inputs)
        for block in range(depth):
            for conv in range(space.convs_per_block):
                mode = padding
                if padding not in ("same", "valid"):
                    x = keras.layers.ZeroPadding2D(int(padding))(x)
                    mode = "valid"
                x = keras.layers.Conv2D(
                    filters * 2 ** block, filter_size,
                    strides=stride if conv == 0 else 1, padding=mode)(x)
                if normalization == "batch":
                    x = keras.layers.BatchNormalization()(x)
                elif normalization == "group":
                    x = keras.layers.GroupNormalization(
                        groups=min(8, filters))(x)
                x = keras.layers.Activation("relu")(x)
            x = keras.layers.MaxPooling2D(2)(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        x = keras.layers.Dense(128, activation="relu")(x)
        x = keras.layers.Dropout(dropout)(x)
        outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                      loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        return model

    return build


def run_ours(splits, target, max_trials, epochs, batch_size, directory):
    from kerascnn import tuning

    state = {"start": time.perf_counter(), "seconds": None, "epochs": 0,
             "best": 0.0}
    try:
        tuning.search(tuple(splits), tuner="hyperband", max_trials=max_trials,
                      epochs=epochs, batch_size=batch_size, patience=2,
                      directory=directory, overwrite=True, strategy=None,
                      callbacks=[_clock_callback(target, state)], verbose=0)
    except Exception as error:  # the FatalError of the clock
        if "target reached" not in str(error):
            raise
    state["wall"] = time.perf_counter() - state["start"]
    return state


def run_naive(splits, target, max_trials, epochs, batch_size, directory):
    import keras_tuner

    from kerascnn.tuning import SearchSpace

    space = SearchSpace()
    x_train, y_train, x_val, y_val = splits[:4]
    tuner = keras_tuner.RandomSearch(
        _naive_build(x_train.shape[1:], int(y_train.max()) + 1, space),
        objective="val_accuracy", max_trials=max_trials, seed=42,
        max_consecutive_failed_trials=max_trials, directory=directory,
        project_name="naive", overwrite=True)
    state = {"start": time.perf_counter(), "seconds": None, "epochs": 0,
             "best": 0.0}
    try:
        tuner.search(x_train.astype("float32"), y_train,
                     validation_data=(x_val.astype("float32"), y_val),
                     epochs=epochs, batch_size=batch_size, verbose=0,
                     callbacks=[_clock_callback(target, state)])
    except Exception as error:
        if "target reached" not in str(error):
            raise
    state["wall"] = time.perf_counter() - state["start"]
    state["failed"] = sum(t.status == "FAILED"
                          for t in tuner.oracle.trials.values())
    state["trials"] = len(tuner.oracle.trials)
    return state


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="digits (8x8), target 0.90, few trials")
    parser.add_argument("--target", type=float, default=None)
    parser.add_argument("--max-trials", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from kerascnn import data, datasets

    if args.quick:
        images, labels = datasets.load_digits()
        target, max_trials, epochs = 0.90, 6, 4
    else:
        images, labels = datasets.load_mnist5k()
        target, max_trials, epochs = 0.97, 30, 8
    target = args.target or target
    max_trials = args.max_trials or max_trials
    epochs = args.epochs or epochs
    splits = data.split_dataset(images, labels, validation_split=0.1,
                                test_split=0.1, seed=42)
    directory = tempfile.mkdtemp(prefix="bench_tuning_")
    try:
        ours = run_ours(splits, target, max_trials, epochs, 64,
                        os.path.join(directory, "ours"))
        naive = run_naive(splits, target, max_trials, epochs, 64,
                          os.path.join(directory, "naive"))
    finally:
        shutil.rmtree(directory, ignore_errors=True)

    def fmt(state):
        if state["seconds"] is None:
            return (f"not reached in {state['wall']:.1f} s (best "
                    f"{state['best']:.4f}, {state['epochs']} epochs)")
        return (f"{state['seconds']:.1f} s ({state['epochs']} epochs, "
                f"val_accuracy {state['best']:.4f})")

    print(f"target val_accuracy {target}, max_trials {max_trials}, epochs "
          f"{epochs}, {len(splits.x_train)} training images")
    print(f"kerascnn.tuning (hyperband, valid stacks, early stopping): "
          f"{fmt(ours)}")
    print(f"naive KerasTuner RandomSearch: {fmt(naive)}; "
          f"{naive['failed']} of {naive['trials']} trials failed on "
          "collapsing stacks")
    ours_time = ours["seconds"] or ours["wall"]
    naive_time = naive["seconds"] or naive["wall"]
    ratio = naive_time / ours_time
    qualifier = "" if naive["seconds"] is not None else ">= "
    print(f"time-to-target ratio naive / ours: {qualifier}{ratio:.2f}")
    return 0 if ours["seconds"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
