"""The `kerascnn` command line.

Each subcommand lives in its own module of this package and defines
``register(subparsers)``, which adds its parser and sets ``func`` to the
function that runs it. Building the parsers imports neither TensorFlow nor
Keras (each command imports them inside its ``run``), so ``kerascnn --help``
and ``kerascnn COMMAND --help`` answer at once.

Every error ends as one line on stderr and an exit code, never a Python
traceback (unless ``--debug``):

- 2: a usage or input error: a bad argument value (`ValueError`, including
  kerascnn's `ArgumentError`), a missing, existing, unreadable or unwritable
  path (`OSError`: `FileNotFoundError`, `FileExistsError`,
  `PermissionError`, `IsADirectoryError`, ...), a key missing from a metadata
  file (`KeyError`), an image too large to decode.
- 1: a run that failed for another reason (e.g. a TensorFlow runtime error).
- 130: interrupted (Ctrl-C).

``--debug`` (anywhere on the command line) prints the full traceback before
that line. TensorFlow's C++ start-up log lines are not shown unless
``TF_CPP_MIN_LOG_LEVEL`` is set to 0 or 1 in the environment.
"""

import argparse
import contextlib
import importlib
import importlib.util
import os
import re
import sys
import traceback

import kerascnn

# Subcommand modules, in the order `--help` lists them.
_COMMANDS = ("quickstart", "train", "predict", "transfer", "tune")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

# Errors in what the user gave us (arguments, files, metadata): exit 2.
_USAGE_ERRORS = (ValueError, OSError, KeyError)
# Named so that PIL need not be imported to recognise them.
_USAGE_ERROR_NAMES = ("DecompressionBombError",)

# A line of TensorFlow's C++ logging (absl/glog format), e.g.
# "I0000 00:00:1796225297.764527   18797 cudart_stub.cc:31] Could not ...".
_CPP_LOG_LINE = re.compile(r"^[IWE]\d{4} [\d:. ]+\s+\d+ [\w./-]+:\d+\] ")
_CPP_LOG_BANNER = "WARNING: All log messages before absl::InitializeLog()"


class _Parser(argparse.ArgumentParser):
    """Reports a usage error in one line: `kerascnn CMD: error: ...`."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see "
                              f"`{self.prog} --help`)\n")


def build_parser():
    """The `kerascnn` parser with every subcommand (no TensorFlow import)."""
    parser = _Parser(
        prog="kerascnn",
        description=(
            "Train, tune, transfer and export convolutional networks with "
            "the best practices built in. Run `kerascnn COMMAND --help` for "
            "a command's options."
        ),
    )
    parser.add_argument("--version", action="version",
                        version=f"kerascnn {kerascnn.__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full Python traceback of an error "
                             "(may be given anywhere on the command line)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND",
                                       parser_class=_Parser)
    for command in _COMMANDS:
        module_name = f"kerascnn.cli.{command}"
        if importlib.util.find_spec(module_name) is None:
            continue
        importlib.import_module(module_name).register(subparsers)
    return parser


def _split_debug(argv):
    """Removes `--debug` from anywhere before a `--`; returns (argv, debug)."""
    argv = list(argv)
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end]
    argv = [a for i, a in enumerate(argv) if i >= end or a != "--debug"]
    return argv, debug


@contextlib.contextmanager
def _without_cpp_logs():
    """Captures stderr (the file descriptor) and writes back all but
    TensorFlow's C++ log lines; everything if the block raises (other than
    `SystemExit`, argparse's usage errors, whose lines are kept anyway)."""
    if kerascnn._TF_LOG_LEVEL_FROM_USER in ("0", "1"):
        yield  # the user asked for TensorFlow's logs
        return
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. embedded)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        except SystemExit:
            failed = False
            raise
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines()
                    if failed or (line.strip()
                                  and not _CPP_LOG_LINE.match(line)
                                  and not line.startswith(_CPP_LOG_BANNER))]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


def quiet_tensorflow_import():
    """Imports TensorFlow and Keras without their C++ start-up log lines.

    `TF_CPP_MIN_LOG_LEVEL` (set by `import kerascnn`) silences TensorFlow's
    own logging, but lines written before absl logging is initialised (the
    CUDA probe, the banner) reach stderr whatever its value. The import runs
    with stderr captured, and so does device discovery (on a machine without
    a GPU, CUDA's probe logs an error line); the C++ log lines are dropped
    and anything else (Python warnings) is written back, everything if the
    import fails. Does nothing if TensorFlow is already imported or the user
    set `TF_CPP_MIN_LOG_LEVEL` below 2 (they asked for the logs).
    """
    if "tensorflow" in sys.modules and "keras" in sys.modules:
        return
    with _without_cpp_logs():
        import keras  # noqa: F401  (imports TensorFlow)
        import tensorflow as tf

        # Device discovery (cuInit on a machine without a GPU logs an error
        # line) happens here too, not in the middle of a run.
        tf.config.list_physical_devices()


def _exit_code(error):
    if isinstance(error, _USAGE_ERRORS) or type(
            error).__name__ in _USAGE_ERROR_NAMES:
        return EXIT_USAGE
    return EXIT_FAILED


def _one_line(error):
    """The error as one line: its message, with the type when that helps."""
    if isinstance(error, KeyError):
        text = f"missing key {error}"
    else:
        text = str(error)
    if not isinstance(error, (ValueError, OSError)) or not text:
        text = f"{type(error).__name__}: {text}" if text else type(
            error).__name__
    return " ".join(text.split())


def main(argv=None):
    """Runs the command line; returns the process exit code."""
    argv, debug = _split_debug(sys.argv[1:] if argv is None else argv)
    command = "kerascnn"
    try:
        # A command module that imports TensorFlow to build its parser is
        # slow, but must not be noisy either.
        with _without_cpp_logs():
            parser = build_parser()
            args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return EXIT_USAGE
        command = f"kerascnn {args.command}"
        quiet_tensorflow_import()
        result = args.func(args)
    except KeyboardInterrupt:
        if debug:
            traceback.print_exc()
        print(f"{command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except SystemExit:
        raise  # argparse: --help, --version and one-line usage errors
    except Exception as error:  # noqa: BLE001 - the CLI's last resort
        if debug:
            traceback.print_exc()
        code = _exit_code(error)
        kind = "error" if code == EXIT_USAGE else "failed"
        hint = "" if debug else " (run with --debug for the traceback)"
        print(f"{command}: {kind}: {_one_line(error)}"
              + (hint if code == EXIT_FAILED else ""), file=sys.stderr)
        return code
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
