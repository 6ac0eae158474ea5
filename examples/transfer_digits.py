"""Transfer by the table: digits 0-4 -> digits 5-9, on the embedded mnist5k.

The classic Keras transfer example, with the decision made for you:

1. pretrain a small CNN on the digits 0-4 (the source);
2. take digits 5-9 with 10 and with 50 labels per class (the target);
3. `kerascnn.transfer.recommend` measures the target's size (images per
   class) and its similarity to the source (mean features against the
   BatchNorm statistics the source model kept), picks the cell of the table
   and prints the plan and the reasons;
4. `kerascnn.transfer.fit` runs the plan (here: the frozen backbone's
   features computed once, for the images, augmented copies and fixed
   rotated / zoomed views of each, a linear head trained on them, its
   predictions averaged over each image's views when cross-validation
   agrees);
5. the same architecture is trained from scratch on the same labels with the
   same validation split and early stopping, and both are scored on the
   held-out digits 5-9.

Run:  python examples/transfer_digits.py [--quick] [--export-dir DIR]
"""

import argparse

import numpy as np


def source_cnn(num_classes):
    """The small CNN of the example: two conv-BN-ReLU-pool blocks, dense."""
    import keras

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    for filters in (16, 32):
        x = keras.layers.Conv2D(filters, 3, padding="same",
                                use_bias=False)(x)
        # Momentum 0.9: a short pretraining still leaves settled statistics
        # (they are what the similarity reads without a source sample).
        x = keras.layers.BatchNormalization(momentum=0.9)(x)
        x = keras.layers.ReLU()(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    x = keras.layers.Dropout(0.3)(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 source epoch, 10 labels/class only")
    parser.add_argument("--source-epochs", type=int, default=3)
    parser.add_argument("--export-dir", default=None,
                        help="export the 10-label model here (optional)")
    args = parser.parse_args(argv)

    import keras
    from sklearn.model_selection import train_test_split

    from kerascnn import datasets, transfer

    keras.utils.set_random_seed(1234)
    images, labels = datasets.load_mnist5k()
    is_source = labels < 5
    x_target, y_target = images[~is_source], labels[~is_source] - 5

    # 1. The source model, pretrained on digits 0-4.
    source = source_cnn(5)
    source.fit(images[is_source], labels[is_source],
               epochs=1 if args.quick else args.source_epochs,
               batch_size=32, verbose=0)
    backbone = transfer.get_backbone(source)
    print(f"Backbone from the source model: {len(backbone.blocks)} blocks: "
          + "; ".join(f"{b.name} = {', '.join(b.layers)}"
                      for b in backbone.blocks))

    results = {}
    for per_class in (10,) if args.quick else (10, 50):
        train = np.concatenate([np.where(y_target == c)[0][:per_class]
                                for c in range(5)])
        test = np.setdiff1d(np.arange(len(y_target)), train)
        x, y = x_target[train], y_target[train]
        print(f"\n=== Target: digits 5-9, {per_class} labels per class ===")
        # 2-4. The table decides; fit runs the plan.
        result = transfer.fit(backbone if per_class == 10 else source, x, y,
                              epochs=30, patience=5)
        print(result.summary())
        accuracy = float(np.mean(
            result.model.predict(x_target[test], verbose=0).argmax(-1)
            == y_target[test]))
        # 5. The same architecture from scratch, same labels, same protocol.
        x_train, x_val, y_train, y_val = train_test_split(
            x, y, test_size=max(5, round(0.2 * len(y))), stratify=y,
            random_state=0)
        keras.utils.set_random_seed(1234)
        scratch = source_cnn(5)
        scratch.fit(x_train, y_train, validation_data=(x_val, y_val),
                    epochs=30, batch_size=32, verbose=0, callbacks=[
                        keras.callbacks.EarlyStopping(
                            patience=5, restore_best_weights=True)])
        scratch_accuracy = float(np.mean(
            scratch.predict(x_target[test], verbose=0).argmax(-1)
            == y_target[test]))
        print(f"Test accuracy on {len(test)} held-out digits 5-9: "
              f"transfer ({result.plan.cell}) {accuracy:.4f}, "
              f"from scratch {scratch_accuracy:.4f}")
        results[per_class] = (result.plan.cell, accuracy, scratch_accuracy)
        if args.export_dir and per_class == 10:
            from kerascnn.export import export_model

            path = export_model(result.model, "digits_5_9_transfer",
                                args.export_dir,
                                sample=x_target[test][:8].astype("float32"),
                                overwrite=True)
            print(f"Exported to {path}")
    return results


if __name__ == "__main__":
    main()
