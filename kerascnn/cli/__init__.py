"""The `kerascnn` command line.

Each subcommand lives in its own module of this package and defines
``register(subparsers)``, which adds its parser and sets ``func`` to the
function that runs it. Errors in the user's input (`ValueError`,
`FileNotFoundError`) are printed as one line, not a traceback.
"""

import argparse
import importlib
import importlib.util
import os
import sys

# Subcommand modules, in the order `--help` lists them.
_COMMANDS = ("quickstart", "train", "predict", "transfer", "tune")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kerascnn",
        description=(
            "Train, tune, transfer and export convolutional networks with "
            "the best practices built in. Run `kerascnn COMMAND --help` for "
            "a command's options."
        ),
    )
    from kerascnn import __version__

    parser.add_argument("--version", action="version",
                        version=f"kerascnn {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _COMMANDS:
        module_name = f"kerascnn.cli.{command}"
        if importlib.util.find_spec(module_name) is None:
            continue
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv=None):
    """Runs the command line; returns the process exit code."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, FileExistsError) as error:
        print(f"kerascnn {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"kerascnn {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
