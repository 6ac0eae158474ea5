"""`kerascnn transfer`: choose the transfer-table cell, train, export.

Prints the cell it chose and why (size from images per class, similarity
from mean features), runs the plan with `kerascnn.transfer.fit`, reports the
test accuracy and exports a verified SavedModel that takes raw pixels.
"""

import os

import numpy as np

from kerascnn import _validation
from kerascnn.cli import _common


def register(subparsers):
    parser = _common.add_parser(
        subparsers, "transfer",
        help_text="transfer a pretrained backbone by the similarity/size "
                  "table and export it",
        description=(
            "Decide what to freeze from two facts about the data (small or "
            "large: images per class against --large-threshold; similar or "
            "dissimilar: mean features against the source's, from a source "
            "sample or the backbone's BatchNorm statistics), print the cell "
            "and the reasons, train the plan (frozen head on cached "
            "features, linear probe over stages, or fine-tuning the top "
            "blocks at 1/10 learning rate) and export a SavedModel. --data "
            "is 'mnist5k', 'digits' or a folder of class sub-folders; "
            "--backbone a registry name (see --list) or a .keras model to "
            "transfer from."),
        example="kerascnn transfer --data photos/ --backbone mobilenetv2 "
                "--image-size 96 --export photos_mnv2")
    parser.add_argument("--data", default=None,
                        help="'mnist5k', 'digits' or a folder of class "
                             "sub-folders")
    parser.add_argument("--backbone", default=None,
                        help="registry name (e.g. resnet50) or a .keras "
                             "model file")
    parser.add_argument("--weights", default="imagenet",
                        help="'imagenet', 'none' or a weights file of the "
                             "backbone")
    parser.add_argument("--list", action="store_true",
                        help="list the registered backbones and exit")
    parser.add_argument("--source-data", default=None,
                        help="optional source data (same forms as --data) "
                             "for the similarity")
    parser.add_argument("--image-size", type=_common.positive_int,
                        default=None,
                        help="resize folder images to this size")
    parser.add_argument("--color-mode", default="rgb",
                        choices=("rgb", "grayscale"),
                        help="colour mode of folder images")
    parser.add_argument("--test-split", type=float, default=0.1,
                        help="fraction held out for the final test (0: no "
                             "test evaluation)")
    parser.add_argument("--validation-split", type=float, default=None,
                        help="fraction of the rest for early stopping of "
                             "the fine-tuning plans (default: 0.2 for them; "
                             "none for small targets, whose block and "
                             "regularization are cross-validated on the "
                             "training labels)")
    parser.add_argument("--epochs", type=_common.positive_int, default=30,
                        help="most epochs per fine-tuning phase")
    parser.add_argument("--head-epochs", type=_common.positive_int,
                        default=200,
                        help="most epochs of the head on cached features")
    parser.add_argument("--batch-size", type=_common.positive_int,
                        default=32)
    parser.add_argument("--patience", type=int, default=5,
                        help="early-stopping patience")
    parser.add_argument("--learning-rate", type=float, default=1e-3,
                        help="the head's learning rate (fine-tuning: x0.1)")
    parser.add_argument("--large-threshold", type=_common.positive_int,
                        default=1000,
                        help="images per class from which the data is large")
    parser.add_argument("--cosine-threshold", type=float, default=0.975)
    parser.add_argument("--distance-threshold", type=float, default=0.25)
    parser.add_argument("--augment", default="auto",
                        choices=_augment_options(),
                        help="augmentation of the small-target head's "
                             "features (auto: digits preset for grayscale, "
                             "natural for RGB)")
    parser.add_argument("--precision", default=None,
                        choices=_precision_options(),
                        help="dtype policy of the fine-tuning phases")
    parser.add_argument("--jit-compile", default="auto",
                        choices=("auto", "true", "false"),
                        help="XLA compilation (Keras' jit_compile)")
    parser.add_argument("--steps-per-execution", type=_common.positive_int,
                        default=1, help="batches per compiled call")
    parser.add_argument("--verbose", type=int, default=0, choices=(0, 1, 2),
                        help="Keras verbosity; 1 shows a progress bar on "
                             "feature extraction")
    parser.add_argument("--head", default="auto",
                        choices=("auto", "dense", "svm", "logistic"))
    parser.add_argument("--lr-decay", type=float, default=None,
                        help="discriminative learning rates: factor per "
                             "block going down")
    parser.add_argument("--gradual-unfreeze-every", type=_common.positive_int,
                        default=None,
                        help="unfreeze one more block every N epochs")
    parser.add_argument("--seed", type=int, default=42)
    _common.add_export_arguments(parser, name_default="transfer_model")
    parser.set_defaults(func=run)
    return parser


def _augment_options():
    from kerascnn.core.settings import TRANSFER_AUGMENT_OPTIONS

    return TRANSFER_AUGMENT_OPTIONS


def _precision_options():
    from kerascnn.core.distribute import PRECISION_OPTIONS

    return PRECISION_OPTIONS


def _load(source, args):
    from kerascnn import datasets

    if isinstance(source, str) and os.path.isdir(source):
        kwargs = {"color_mode": args.color_mode}
        if args.image_size:
            kwargs["image_size"] = args.image_size
        return datasets.load(source, **kwargs)
    return datasets.load(source)


def _backbone(args, input_shape):
    from kerascnn import transfer

    weights = None if args.weights.lower() == "none" else args.weights
    name = args.backbone
    if name.endswith(".keras"):
        import keras

        _validation.check_existing_path("backbone", name, "file")
        return transfer.get_backbone(keras.saving.load_model(name))
    return transfer.get_backbone(name, input_shape=input_shape,
                                 weights=weights)


def run(args):
    from kerascnn import transfer
    from kerascnn.data import split_dataset
    from kerascnn.export import export_or_fallback

    if args.list:
        print("\n".join(transfer.list_backbones()))
        return 0
    for flag in ("data", "backbone"):
        if getattr(args, flag) is None:
            _validation.fail(flag, "given (or use --list)", None)
    test_split = _validation.check_float("test_split", args.test_split, 0.0,
                                         1.0, max_open=True)
    if args.validation_split is not None:
        _validation.check_float("validation_split", args.validation_split,
                                0.0, 1.0, max_open=True)
    _common.check_export_target(args.export, args.export_dir, args.overwrite)
    images, labels, class_names = _load(args.data, args)
    source = None
    if args.source_data is not None:
        source = _load(args.source_data, args)[0]
    splits = split_dataset(images, labels, validation_split=0.0,
                           test_split=test_split, seed=args.seed)
    backbone = _backbone(args, tuple(images.shape[1:]))
    for note in backbone.notes:
        print(f"Note: {note}")
    x_train, y_train = splits.x_train, splits.y_train
    plan = transfer.recommend(
        backbone, x_train, y_train, source_images=source,
        large_threshold=args.large_threshold,
        cosine_threshold=args.cosine_threshold,
        distance_threshold=args.distance_threshold,
        learning_rate=args.learning_rate, head=args.head,
        lr_decay=args.lr_decay,
        gradual_unfreeze_every=args.gradual_unfreeze_every)
    print(plan.summary())
    print()
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    result = transfer.fit(
        backbone, x_train, y_train, plan=plan,
        validation_split=("auto" if args.validation_split is None
                          else args.validation_split),
        epochs=args.epochs, head_epochs=args.head_epochs,
        batch_size=args.batch_size, patience=args.patience,
        learning_rate=args.learning_rate, augment=args.augment,
        precision=args.precision, jit_compile=jit,
        steps_per_execution=args.steps_per_execution, seed=args.seed,
        verbose=args.verbose)
    for line in result.summary_lines()[len(plan.summary().splitlines()):]:
        print(line)
    metadata = {"data": str(args.data), "backbone": backbone.name,
                "cell": plan.cell, "strategy": plan.strategy}
    if len(splits.y_test):
        probabilities = result.model.predict(
            splits.x_test.astype("float32"), verbose=0)
        test_accuracy = float(np.mean(
            probabilities.argmax(-1) == splits.y_test))
        print(f"Test accuracy: {test_accuracy:.4f}")
        metadata["test_accuracy"] = test_accuracy
        sample = splits.x_test[:8]
    else:
        print("Test accuracy: not measured (--test-split 0)")
        sample = x_train[:8]
    path = export_or_fallback(
        result.model, args.export, args.export_dir,
        sample=sample.astype("float32"), overwrite=args.overwrite,
        metadata=metadata, class_names=list(class_names))
    print(f"Exported to {path}")
    return 0
