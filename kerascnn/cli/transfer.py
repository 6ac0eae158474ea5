"""`kerascnn transfer`: choose the transfer-table cell, train, export.

Prints the cell it chose and why (size from images per class, similarity
from mean features), runs the plan with `kerascnn.transfer.fit`, reports the
test accuracy and exports a verified SavedModel that takes raw pixels.

The data streams: `--data` is resolved with
`kerascnn.data.sources.resolve_data` (a folder is listed and split on its
file list, never held in memory whole), the plan is measured on a bounded
sample, the splits go to `transfer.fit` as `ImageSource`s and the test split
is evaluated batch by batch. Under `TF_CONFIG` with several workers, every
worker runs the same command (`transfer.fit(strategy="auto")`) and only the
chief checks and writes the export.
"""

import numpy as np

from kerascnn import _validation
from kerascnn.cli import _common

#: Images of the training split (and of --source-data) the plan's
#: similarity is measured on: a bounded sample, whatever the data's size.
PLAN_SAMPLE = 2048

#: `--validation-split` of the fine-tuning plans when not given (a fraction
#: of the images left after the test split), as `transfer.fit`'s "auto".
FINE_TUNE_VALIDATION_SPLIT = 0.2


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
            "is 'mnist5k', 'digits' or a folder of class sub-folders "
            "(streamed: never held in memory whole); --backbone a registry "
            "name (see --list) or a .keras model to transfer from. Under "
            "TF_CONFIG every worker runs the same command and only the "
            "chief writes the export."),
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
    parser.add_argument("--views", default="auto", choices=("auto", "none"),
                        help="fixed views (rotations, zooms, mirror) of the "
                             "augmentation preset for the small-target "
                             "head, averaged at prediction unless "
                             "cross-validation finds it worse")
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


def _resolve(data, args, validation_split=0.0, test_split=0.0, name="data"):
    """`resolve_data` with the command's folder options; streamed splits.

    `validation_split` is a fraction of the images left after the test
    split (as `--validation-split` says), turned into the fraction of all
    images that `resolve_data` takes; the test split does not depend on it.
    """
    from kerascnn.data.sources import resolve_data

    return resolve_data(data, validation_split=validation_split * (
        1.0 - test_split), test_split=test_split, seed=args.seed,
        image_size=args.image_size, color_mode=args.color_mode, name=name)


def _first_images(source, count=8):
    """The first `count` images of `source`, in order (the export sample)."""
    images, _ = next(iter(source.dataset(min(count, source.num_samples))))
    return np.asarray(images, "float32")


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
    from kerascnn.core import data as core_data
    from kerascnn.core import distribute
    from kerascnn.export import export_or_fallback
    from kerascnn.transfer.plan import plan_sample

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
    chief = distribute.is_chief()
    if chief:  # the other workers write nothing under the user's folders
        _common.check_export_target(args.export, args.export_dir,
                                    args.overwrite)
    # Before any other TensorFlow op (MultiWorkerMirroredStrategy needs it).
    strategy = distribute.resolve_strategy("auto")
    # Listed and split, not loaded: the splits are streamed.
    resolved = _resolve(args.data, args, test_split=test_split)
    source = None
    if args.source_data is not None:
        source = _resolve(args.source_data, args,
                          name="source_data").train.sample(
                              PLAN_SAMPLE, seed=args.seed)
    backbone = _backbone(args, tuple(resolved.input_shape))
    for note in backbone.notes:
        print(f"Note: {note}")
    plan_images, plan_labels = plan_sample(
        resolved.train, resolved.num_classes, PLAN_SAMPLE, seed=args.seed)
    plan = transfer.recommend(
        backbone, plan_images, plan_labels, source_images=source,
        large_threshold=args.large_threshold,
        cosine_threshold=args.cosine_threshold,
        distance_threshold=args.distance_threshold,
        learning_rate=args.learning_rate, head=args.head,
        lr_decay=args.lr_decay,
        gradual_unfreeze_every=args.gradual_unfreeze_every)
    print(plan.summary())
    print()
    train, validation = resolved.train, None
    if not plan.linear_classifier:
        # The fine-tuning plans stop early on a validation split of the
        # images left after the test split (the test split stays the same).
        split = (FINE_TUNE_VALIDATION_SPLIT if args.validation_split is None
                 else args.validation_split)
        if split == 0:
            _validation.fail("validation_split", f"> 0 for a {plan.strategy}"
                             " plan (early stopping)", args.validation_split)
        resolved = _resolve(args.data, args, validation_split=split,
                            test_split=test_split)
        train, validation = resolved.train, resolved.validation
    jit = {"auto": "auto", "true": True, "false": False}[args.jit_compile]
    result = transfer.fit(
        backbone, train, plan=plan, validation_data=validation,
        epochs=args.epochs, head_epochs=args.head_epochs,
        batch_size=args.batch_size, patience=args.patience,
        learning_rate=args.learning_rate, augment=args.augment,
        views=args.views,
        precision=args.precision, jit_compile=jit,
        steps_per_execution=args.steps_per_execution, seed=args.seed,
        verbose=args.verbose, strategy=strategy)
    for line in result.summary_lines()[len(plan.summary().splitlines()):]:
        print(line)
    metadata = {"data": str(args.data), "backbone": backbone.name,
                "cell": plan.cell, "strategy": plan.strategy}
    if resolved.test is not None:
        # Batch by batch: the test split is never held in memory whole.
        labels, probabilities = core_data.predict_source(
            result.model, resolved.test, max(64, args.batch_size))
        test_accuracy = float(np.mean(probabilities.argmax(-1) == labels))
        print(f"Test accuracy: {test_accuracy:.4f}")
        metadata["test_accuracy"] = test_accuracy
        sample = _first_images(resolved.test)
    else:
        print("Test accuracy: not measured (--test-split 0)")
        sample = _first_images(resolved.train)
    with distribute.worker_output_dir(args.export_dir) as export_dir:
        path = export_or_fallback(
            result.model, args.export, export_dir, sample=sample,
            overwrite=args.overwrite, metadata=metadata,
            class_names=list(resolved.class_names))
    if chief:
        print(f"Exported to {path}")
    return 0
