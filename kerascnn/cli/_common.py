"""Helpers shared by the `kerascnn` subcommands.

Argument groups that mirror `build_cnn` and `fit`, argparse types that raise
the package's one-line messages, and the export-target check that runs before
any training.
"""

import argparse
import os
import textwrap

from kerascnn import _validation

DEFAULT_EXPORT_DIR = "saved_models"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter,
                    argparse.RawDescriptionHelpFormatter):
    """Shows defaults (not for on/off flags) and keeps the epilog's lines."""

    def _get_help_string(self, action):
        if action.nargs == 0:  # store_true / store_false flags
            return action.help
        return super()._get_help_string(action)


def add_parser(subparsers, name, help_text, description, example):
    """Adds a subcommand parser with the shared formatter and an example."""
    return subparsers.add_parser(
        name, help=help_text, description=textwrap.fill(description, 79),
        epilog=f"example:\n  {example}", formatter_class=HelpFormatter)


# -- argparse types: invalid values become one-line usage errors -------------


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer, received {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer, received {text!r}")
    return value


def non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be a number >= 0, received {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(
            f"must be a number >= 0, received {text!r}")
    return value


def learning_rate(text):
    """A float > 0 or the word `find`."""
    if text.lower() == "find":
        return "find"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'must be a number > 0 or "find", received {text!r}') from None
    if not value > 0:
        raise argparse.ArgumentTypeError(
            f'must be a number > 0 or "find", received {text!r}')
    return value


def padding(text):
    """`same`, `valid` or an integer number of zeros per side."""
    if text.lower() in ("same", "valid"):
        return text.lower()
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f'must be "same", "valid" or an integer >= 0, received {text!r}'
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(
            f'must be "same", "valid" or an integer >= 0, received {text!r}')
    return value


def optional_choice(text):
    """Maps `none` to `None`."""
    return None if text.lower() == "none" else text.lower()


# -- argument groups ---------------------------------------------------------


def add_model_arguments(parser):
    """`build_cnn` options (their defaults are fit's: build_cnn's, under
    `kerascnn.training.defaults.MODEL`)."""
    from kerascnn.training import defaults

    group = parser.add_argument_group(
        "model (kerascnn.models.build_cnn)")
    group.add_argument("--depth", type=depth,
                       default=defaults.MODEL.get("depth", 2),
                       help="number of conv blocks (filters double per "
                            "block), or auto: blocks until the feature map "
                            "is about 4x4, 2 to 3 (default: %(default)s)")
    group.add_argument("--filters", type=positive_int, default=32,
                       help="filters of the first block")
    group.add_argument("--filter-size", type=positive_int, default=3,
                       help="square conv window F")
    group.add_argument("--stride", type=positive_int, default=1,
                       help="stride S of each block's first conv")
    group.add_argument("--padding", type=padding, default="same",
                       help='"same", "valid" or zeros P per side')
    from kerascnn.core.settings import NORMALIZATIONS, POOLINGS

    group.add_argument("--pooling", type=optional_choice,
                       default=defaults.MODEL.get("pooling", "max2"),
                       choices=list(POOLINGS),
                       help='pooling after each block ("strided": the '
                            'last conv strides 2; "none" for none)')
    group.add_argument("--normalization", default="auto",
                       choices=list(NORMALIZATIONS),
                       help="normalization after each conv; auto = "
                            "GroupNorm below 16 images per replica, else "
                            "BatchNorm")
    group.add_argument("--dropout", type=float, default=0.5,
                       help="dropout rate after the hidden dense layer")
    group.add_argument("--dropconnect", type=float, default=0.0,
                       help="DropConnect rate of the hidden dense layer")
    group.add_argument("--max-norm", type=float, default=None,
                       help="max-norm constraint on every kernel (e.g. 3)")
    group.add_argument("--l2", type=non_negative_float, default=0.0,
                       help="L2 weight penalty")
    return group


def depth(text):
    """argparse type: an integer >= 1 or `auto`."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"must be a positive integer or auto, received {text!r}"
        ) from None


def image_size(text):
    """`64` or `64x48` (height x width)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) not in (1, 2) or min(values) < 1:
        raise argparse.ArgumentTypeError(
            f"must be SIZE or HEIGHTxWIDTH (integers >= 1), received {text!r}")
    return tuple(values * 2) if len(values) == 1 else tuple(values)


def jit_compile(text):
    """`auto`, `true` or `false`."""
    value = text.lower()
    if value in ("auto", "true", "false"):
        return {"auto": "auto", "true": True, "false": False}[value]
    raise argparse.ArgumentTypeError(
        f'must be "auto", "true" or "false", received {text!r}')


def add_data_arguments(parser):
    """`resolve_data` options for a folder (size, colour, bad files, cache)."""
    from kerascnn.core.settings import COLOR_MODES, ON_ERROR_OPTIONS

    group = parser.add_argument_group("data (kerascnn.data.resolve_data)")
    group.add_argument("--image-size", type=image_size, default=None,
                       metavar="SIZE|HxW",
                       help="resize a folder's images (default: they must "
                            "share one size)")
    group.add_argument("--color-mode", default=None,
                       choices=list(COLOR_MODES),
                       help="colour mode of a folder's images (default: "
                            "inferred)")
    group.add_argument("--on-error", default="raise",
                       choices=list(ON_ERROR_OPTIONS),
                       help="unreadable files in a folder: stop before "
                            "training, or skip them with a warning")
    group.add_argument("--cache", default=None, metavar="memory|PATH",
                       help="cache a folder's decoded images in memory or "
                            "in a file")
    return group


def add_accelerator_arguments(group):
    """`--precision`, `--jit-compile`, `--steps-per-execution` on `group`."""
    from kerascnn.core.settings import PRECISIONS

    group.add_argument("--precision", default="float32",
                       choices=list(PRECISIONS),
                       help="dtype policy (auto: mixed_float16 on GPUs of "
                            "compute capability >= 7.0, else float32)")
    group.add_argument("--jit-compile", type=jit_compile, default="auto",
                       metavar="auto|true|false", help="XLA compilation")
    group.add_argument("--steps-per-execution", type=positive_int, default=1,
                       help="batches per compiled call")


def add_fit_arguments(parser, epochs=None):
    """`fit` options (defaults from `kerascnn.training.defaults`)."""
    from kerascnn.core.settings import BALANCE_OPTIONS, schedules
    from kerascnn.training import defaults

    group = parser.add_argument_group("training (kerascnn.training.fit)")
    group.add_argument("--epochs", type=positive_int,
                       default=defaults.EPOCHS if epochs is None else epochs,
                       help="maximum epochs (early stopping may end sooner)")
    group.add_argument("--batch-size", type=positive_int,
                       default=defaults.BATCH_SIZE,
                       help="batch size per replica")
    group.add_argument("--learning-rate", type=learning_rate,
                       default=defaults.LEARNING_RATE,
                       help='learning rate, or "find" for the range test')
    group.add_argument("--schedule", type=optional_choice,
                       default=defaults.SCHEDULE,
                       choices=list(schedules()) + [None],
                       help="learning-rate schedule")
    group.add_argument("--balance", type=optional_choice, default="auto",
                       choices=list(BALANCE_OPTIONS) + [None],
                       help="label-imbalance handling (auto: class weights "
                            "when imbalanced)")
    group.add_argument("--augment", type=optional_choice,
                       default=defaults.AUGMENT,
                       help='augmentation preset ("digits", "natural", '
                            '"none") or "auto": the preset measured to help '
                            'on a built-in dataset ("digits" on mnist5k), '
                            "none for a folder")
    stopping = group.add_mutually_exclusive_group()
    stopping.add_argument("--early-stopping", dest="early_stopping",
                          action="store_const", const=True,
                          default=defaults.EARLY_STOPPING,
                          help="stop after "
                               f"{defaults.EARLY_STOPPING_PATIENCE} epochs "
                               "without val_loss improvement, keep the best "
                               "(default: on, except under the one_cycle "
                               "schedule, which anneals over its fixed "
                               "budget)")
    stopping.add_argument("--no-early-stopping", dest="early_stopping",
                          action="store_const", const=False,
                          help="train all epochs")
    group.add_argument("--seed", type=int, default=defaults.SEED,
                       help="seed of the split, sampling and weights")
    group.add_argument("--backup-dir", default=None,
                       help="folder to resume an interrupted run from")
    add_accelerator_arguments(group)
    group.add_argument("--verbose", type=int, default=1, choices=[0, 1, 2],
                       help="0 silent, 1 progress bar, 2 one line per epoch")
    return group


def add_export_arguments(parser, name_default=None):
    group = parser.add_argument_group("export (kerascnn.export)")
    if name_default is None:
        group.add_argument("--export", required=True, metavar="NAME",
                           default=argparse.SUPPRESS,
                           help="name of the export folder")
    else:
        group.add_argument("--name", "--export", dest="export",
                           default=name_default, metavar="NAME",
                           help="name of the export folder")
    group.add_argument("--export-dir", default=DEFAULT_EXPORT_DIR,
                       help="folder that holds exports")
    group.add_argument("--overwrite", action="store_true",
                       help="replace an existing export of the same name")
    return group


def model_kwargs_from_args(args):
    """build_cnn keyword arguments from `add_model_arguments` options."""
    return {
        "depth": args.depth, "filters": args.filters,
        "filter_size": args.filter_size, "stride": args.stride,
        "padding": args.padding, "pooling": args.pooling,
        "normalization": args.normalization, "dropout": args.dropout,
        "dropconnect": args.dropconnect, "max_norm": args.max_norm,
        "l2": args.l2,
    }


def fit_kwargs_from_args(args):
    """fit keyword arguments from `add_fit_arguments` options."""
    return {
        "epochs": args.epochs, "batch_size": args.batch_size,
        "learning_rate": args.learning_rate, "schedule": args.schedule,
        "balance": args.balance, "augment": args.augment,
        "early_stopping": args.early_stopping, "seed": args.seed,
        "backup_dir": args.backup_dir, "verbose": args.verbose,
        **accelerator_kwargs_from_args(args),
    }


def accelerator_kwargs_from_args(args):
    """`precision`, `jit_compile`, `steps_per_execution` from the options."""
    return {"precision": getattr(args, "precision", "float32"),
            "jit_compile": getattr(args, "jit_compile", "auto"),
            "steps_per_execution": getattr(args, "steps_per_execution", 1)}


def data_kwargs_from_args(args):
    """`resolve_data` keyword arguments from `add_data_arguments` options."""
    return {"image_size": getattr(args, "image_size", None),
            "color_mode": getattr(args, "color_mode", None),
            "on_error": getattr(args, "on_error", "raise"),
            "cache": getattr(args, "cache", None)}


# -- export ------------------------------------------------------------------


def check_export_target(name, export_dir, overwrite):
    """Checks the export name and refuses an existing export, before training.

    Returns the destination path `export_dir/name`.
    """
    from kerascnn import export

    export_dir = _validation.check_string("export_dir", os.fspath(export_dir))
    if os.path.exists(export_dir) and not os.path.isdir(export_dir):
        _validation.fail("export_dir", "a folder (not a file)", export_dir)
    export.check_writable(export_dir, "export_dir")
    try:  # recovers a killed export; refuses a folder that is not an export
        return export.check_export_target(name, export_dir, overwrite)
    except export.NotAnExportError:
        raise
    except FileExistsError:
        raise FileExistsError(
            f"the export {os.path.join(export_dir, name)!r} already exists; "
            "pass --overwrite to replace it or --name/--export to choose "
            "another name (checked before training, nothing was done)"
        ) from None


def export_result(result, name, export_dir, overwrite, data_name):
    """Exports a `FitResult`'s model with its metrics; returns the path."""
    from kerascnn.export import export_or_fallback

    metadata = {
        "data": data_name,
        "metrics": {
            "test_accuracy": result.test_metrics["accuracy"],
            "test_loss": result.test_metrics["loss"],
        },
        "splits": result.splits,
        "normalization": result.normalization,
        "learning_rate": result.learning_rate,
        "schedule": result.schedule,
        "epochs": result.initial_epoch + result.epochs_run,
    }
    return export_or_fallback(result.model, name, directory=export_dir,
                              overwrite=overwrite, metadata=metadata,
                              class_names=list(result.class_names))
