"""`kerascnn train`: `fit` + `export_model` from the command line.

Every `build_cnn` and `fit` option is a flag; the export target is checked
before training so a finished run is never lost to an existing folder. A run
whose loss diverged exits with code 1 and is not exported (unless
`--export-diverged`). Under `TF_CONFIG` with several workers, every worker
runs the same command and only the chief writes the export and the plots.
"""

import argparse
import sys

from kerascnn.cli import _common


def register(subparsers):
    parser = _common.add_parser(
        subparsers, "train",
        help_text="train a CNN on mnist5k, digits or an image folder and "
                  "export it",
        description=(
            "Train a CNN with kerascnn.training.fit (stratified split, "
            "normalizer adapted on the training split, imbalance handling, "
            "early stopping with the best weights restored), print the test "
            "report and the loss-curve diagnosis, and export a verified "
            "SavedModel to EXPORT_DIR/NAME. --data is 'mnist5k', 'digits' or "
            "a folder with one sub-folder of images per class."),
        example="kerascnn train --data digits --depth 1 --epochs 10 "
                "--export digits_cnn")
    parser.add_argument("--data", required=True, default=argparse.SUPPRESS,
                        help="'mnist5k', 'digits' or a folder of class "
                             "sub-folders")
    parser.add_argument("--validation-split", type=float, default=0.1,
                        help="fraction held out for early stopping")
    parser.add_argument("--test-split", type=float, default=0.1,
                        help="fraction held out for the final test")
    parser.add_argument("--plot-dir", default=None,
                        help="folder for loss-curve and confusion-matrix PNGs")
    parser.add_argument("--tensorboard-dir", default=None,
                        help="folder for TensorBoard logs")
    _common.add_data_arguments(parser)
    _common.add_model_arguments(parser)
    _common.add_fit_arguments(parser)
    group = _common.add_export_arguments(parser)
    group.add_argument("--export-diverged", action="store_true",
                       help="export even when the loss diverged (exit code "
                            "1 and no export otherwise)")
    parser.set_defaults(func=run)
    return parser


def run(args):
    from kerascnn.core import distribute
    from kerascnn.training import fit

    chief = distribute.is_chief()
    destination = None
    if chief:  # the other workers write nothing under the user's folders
        destination = _common.check_export_target(
            args.export, args.export_dir, args.overwrite)
    result = fit(args.data, validation_split=args.validation_split,
                 test_split=args.test_split, plot_dir=args.plot_dir,
                 tensorboard_dir=args.tensorboard_dir,
                 model_kwargs=_common.model_kwargs_from_args(args),
                 **_common.data_kwargs_from_args(args),
                 **_common.fit_kwargs_from_args(args))
    if args.verbose:
        print()
        print(result.report.summary())
        print()
    print(result.summary())
    if result.diverged and not args.export_diverged:
        print(f"kerascnn train: the run diverged ({result.divergence}); "
              "not exported (lower --learning-rate, or pass "
              "--export-diverged to export it anyway)", file=sys.stderr)
        return 1
    with distribute.worker_output_dir(args.export_dir) as export_dir:
        path = _common.export_result(result, args.export, export_dir,
                                     args.overwrite, data_name=str(args.data))
    if chief:
        print(f"Exported SavedModel: {path}")
        print(f"Predict with: kerascnn predict --model {destination} "
              "IMAGE...")
    return 0
