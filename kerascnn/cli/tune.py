"""`kerascnn tune`: a KerasTuner search from the command line.

Runs `kerascnn.tuning.search` with KerasTuner's progress output, prints the
best configuration and its test metrics and, with `--export NAME`, writes a
verified SavedModel (`kerascnn.export.export_model`) and checks that the
reloaded SavedModel reproduces the test accuracy. `--distributed chief` /
`--distributed worker` run KerasTuner's chief/worker mode across processes or
machines (same command, same `--directory` layout, one chief).

`--overwrite` restarts the search; an existing export is replaced only with
`--overwrite-export` (checked before the search). Rerunning a project with
other data or settings is refused before any trial.
"""

import json
import os

import numpy as np

from kerascnn import _validation
from kerascnn.cli import _common
from kerascnn.core import settings

DEFAULTS = {
    "data": "mnist5k",
    "tuner": "hyperband",
    "max_trials": 10,
    "epochs": 8,
    "batch_size": 64,
    "patience": 2,
    "directory": "kerascnn_tuning",
    "export_dir": "saved_models",
    "oracle_address": "127.0.0.1:8000",
}


# The library's vocabularies (importing them does not import TensorFlow).
TUNERS = settings.TUNERS
SCHEDULES = settings.SCHEDULES


def register(subparsers):
    """Adds the `tune` parser."""
    parser = subparsers.add_parser(
        "tune",
        help="search filter size, stride, padding, depth and learning rate",
        description=(
            "Tune a CNN with KerasTuner over the lecture's hyperparameters. "
            "Conv stacks that collapse for the input size are never drawn. "
            "Running the same command again resumes the search."),
    )
    parser.add_argument("--data", default=DEFAULTS["data"],
                        help="mnist5k, digits or an image folder (one "
                        "sub-folder per class). Default: %(default)s")
    parser.add_argument("--tuner", default=DEFAULTS["tuner"],
                        choices=TUNERS, help="Default: %(default)s")
    parser.add_argument("--max-trials", type=int,
                        default=DEFAULTS["max_trials"],
                        help="Default: %(default)s")
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"],
                        help="epochs per trial at most. Default: %(default)s")
    parser.add_argument("--batch-size", type=int,
                        default=DEFAULTS["batch_size"],
                        help="per-replica batch size. Default: %(default)s")
    parser.add_argument("--patience", type=int, default=DEFAULTS["patience"],
                        help="early-stopping patience. Default: %(default)s")
    parser.add_argument("--space", default=None,
                        help="search space as JSON (inline or a file), e.g. "
                        "'{\"depths\": [1, 2], \"filter_sizes\": [3, 5]}'")
    parser.add_argument("--class-weight", default=None,
                        choices=settings.CLASS_WEIGHT_METHODS)
    parser.add_argument("--schedule", default=None, choices=SCHEDULES,
                        help="cyclical learning rate policy")
    parser.add_argument("--augmentation", default=None,
                        help="a kerascnn.data.augmentation preset")
    parser.add_argument("--retrain", action="store_true",
                        help="retrain the best configuration on train + "
                        "validation")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--directory", default=DEFAULTS["directory"],
                        help="KerasTuner directory. Default: %(default)s")
    parser.add_argument("--project-name", default=None,
                        help="Default: the tuner name")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh instead of resuming")
    parser.add_argument("--export", default=None, metavar="NAME",
                        help="export the best model as a verified SavedModel")
    parser.add_argument("--export-dir", default=DEFAULTS["export_dir"],
                        help="Default: %(default)s")
    parser.add_argument("--overwrite-export", action="store_true",
                        help="replace an existing export of the same name "
                        "(--overwrite restarts the search)")
    parser.add_argument("--distributed", default=None,
                        choices=("chief", "worker"),
                        help="KerasTuner chief/worker mode")
    parser.add_argument("--oracle-address",
                        default=DEFAULTS["oracle_address"],
                        help="host:port of the chief. Default: %(default)s")
    parser.add_argument("--tuner-id", default=None,
                        help="worker id (tuner0, tuner1, ...)")
    parser.add_argument("--quiet", action="store_true",
                        help="no KerasTuner / Keras progress output")
    _common.add_data_arguments(parser)
    _common.add_accelerator_arguments(parser.add_argument_group(
        "accelerators"))
    parser.set_defaults(func=run)
    return parser


def _space(text):
    if text is None:
        return None
    source = text
    if os.path.isfile(text):
        with open(text, encoding="utf-8") as handle:
            source = handle.read()
    try:
        return json.loads(source)
    except json.JSONDecodeError:
        _validation.fail("space", "a JSON object or a JSON file", text)


def _check_export_name(name):
    # Checked before the search, so a bad name does not cost a search.
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                  "0123456789._-")
    if not name or set(name) - allowed or name in (".", ".."):
        _validation.fail("export", "a plain folder name (letters, digits, "
                         "'.', '_', '-')", name)


def run(args):
    """Runs the search; returns the exit code."""
    from kerascnn import tuning
    from kerascnn.export import NotAnExportError

    if args.export is not None:
        _check_export_name(args.export)
    if args.export is not None and args.distributed != "worker":
        try:  # before the search, so a bad target does not cost a search
            _common.check_export_target(args.export, args.export_dir,
                                        args.overwrite_export)
        except NotAnExportError:
            raise
        except FileExistsError:
            raise FileExistsError(
                f"the export {os.path.join(args.export_dir, args.export)!r} "
                "already exists; pass --overwrite-export to replace it or "
                "--export to choose another name (--overwrite restarts the "
                "search; checked before the search, nothing was done)"
            ) from None
    result = tuning.search(
        args.data, tuner=args.tuner, space=_space(args.space),
        max_trials=args.max_trials, epochs=args.epochs,
        batch_size=args.batch_size, patience=args.patience,
        class_weight=args.class_weight, schedule=args.schedule,
        augmentation=args.augmentation, seed=args.seed,
        directory=args.directory, project_name=args.project_name,
        overwrite=args.overwrite, retrain=args.retrain,
        distributed=args.distributed, oracle_address=args.oracle_address,
        tuner_id=args.tuner_id, verbose=0 if args.quiet else 1,
        **_common.data_kwargs_from_args(args),
        **_common.accelerator_kwargs_from_args(args))
    print()
    print(result.summary())
    if result.files:
        print("Results: " + ", ".join(result.files.values()))
    if args.export is None or result.role == "worker":
        return 0
    if result.best_model is None:
        print("kerascnn tune: no model to export (no completed trial, or the "
              "workers' checkpoints are not reachable from this chief)")
        return 1
    return _export(result, args.export, args.export_dir)


def _export(result, name, directory):
    from kerascnn.export import export_or_fallback, load_export

    splits = result.splits
    x_check = splits.x_test if len(splits.x_test) else splits.x_val
    y_check = splits.y_test if len(splits.y_test) else splits.y_val
    split_name = "test" if len(splits.x_test) else "validation"
    model = result.best_model
    path = export_or_fallback(
        model, name, directory=directory,
        sample=x_check[:8].astype("float32"), overwrite=True,
        class_names=result.class_names,
        metadata={"metrics": {f"{split_name}_{k}": v
                              for k, v in result.test_metrics.items()},
                  "hyperparameters": result.best_hyperparameters,
                  "tuning": result.to_dict()})
    exported = load_export(path)
    x = x_check.astype("float32")
    served = np.concatenate([exported.serve(x[i:i + 256])
                             for i in range(0, len(x), 256)])
    keras_probs = model.predict(x, verbose=0)
    served_accuracy = float(np.mean(served.argmax(axis=1) == y_check))
    keras_accuracy = float(np.mean(keras_probs.argmax(axis=1) == y_check))
    print(f"Exported {path}: SavedModel {split_name} accuracy "
          f"{served_accuracy:.4f} (Keras model {keras_accuracy:.4f}, max "
          f"|difference| {float(np.max(np.abs(served - keras_probs))):.2e})")
    if served_accuracy != keras_accuracy:
        print("kerascnn tune: the exported SavedModel does not reproduce the "
              "model's predictions")
        return 1
    return 0
