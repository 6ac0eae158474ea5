"""The command line's first seconds: help without TensorFlow, a quiet start,
and every error as one line with an exit code (a traceback only with
--debug)."""

import argparse
import json
import subprocess
import sys

import pytest

from kerascnn import cli


def _run(*args, timeout=300):
    return subprocess.run([sys.executable, *args], capture_output=True,
                          text=True, timeout=timeout)


def test_help_imports_no_tensorflow():
    code = (
        "import sys, json, contextlib, io\n"
        "from kerascnn.cli import main\n"
        "codes = []\n"
        "for argv in (['--help'], ['train', '--help'], ['quickstart', "
        "'--help'], ['predict', '--help'], ['transfer', '--help'], "
        "['tune', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit as exit:\n"
        "            codes.append(exit.code)\n"
        "print(json.dumps({'codes': codes, 'heavy': sorted(m for m in "
        "('tensorflow', 'keras', 'keras_tuner', 'sklearn') "
        "if m in sys.modules)}))\n")
    done = _run("-c", code)
    assert done.returncode == 0, done.stderr[-2000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found == {"codes": [0] * 6, "heavy": []}
    assert done.stderr == ""


def test_train_help_is_quiet():
    done = _run("-m", "kerascnn", "train", "--help")
    assert done.returncode == 0
    assert "--epochs" in done.stdout
    assert done.stderr == ""


def test_tiny_run_error_is_one_line_without_tensorflow_logs(tmp_path):
    # A run that imports TensorFlow, then fails on its input: stderr holds
    # the one error line and nothing from TensorFlow's C++ logging.
    missing = str(tmp_path / "no_such_model")
    image = tmp_path / "x.png"
    image.write_bytes(b"")
    done = _run("-m", "kerascnn", "predict", "--model", missing, str(image))
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("kerascnn predict: error: ")
    assert "Traceback" not in done.stderr
    # --debug anywhere: the traceback, then the same line.
    debug = _run("-m", "kerascnn", "predict", "--model", missing, str(image),
                 "--debug")
    assert debug.returncode == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert debug.stderr.strip().splitlines()[-1] == lines[0]
    assert "cudart_stub" not in debug.stderr
    assert "absl::InitializeLog" not in debug.stderr


def _parser_raising(error):
    def build_parser():
        parser = cli._Parser(prog="kerascnn")
        sub = parser.add_subparsers(dest="command", parser_class=cli._Parser)
        command = sub.add_parser("boom")

        def run(args):
            raise error

        command.set_defaults(func=run)
        return parser

    return build_parser


@pytest.mark.parametrize("error, code, text", [
    (ValueError("Argument `x` must be 1. Received: x=2"), 2,
     "kerascnn boom: error: Argument `x` must be 1. Received: x=2"),
    (FileNotFoundError(2, "No such file or directory", "a.png"), 2,
     "kerascnn boom: error: [Errno 2] No such file or directory: 'a.png'"),
    (PermissionError(13, "Permission denied", "/out"), 2,
     "kerascnn boom: error: [Errno 13] Permission denied: '/out'"),
    (IsADirectoryError(21, "Is a directory", "d"), 2,
     "kerascnn boom: error: [Errno 21] Is a directory: 'd'"),
    (KeyError("input_shape"), 2,
     "kerascnn boom: error: KeyError: missing key 'input_shape'"),
    (RuntimeError("graph execution\nfailed"), 1,
     "kerascnn boom: failed: RuntimeError: graph execution failed "
     "(run with --debug for the traceback)"),
    (KeyboardInterrupt(), 130, "kerascnn boom: interrupted"),
])
def test_errors_become_one_line_and_an_exit_code(monkeypatch, capsys, error,
                                                 code, text):
    monkeypatch.setattr(cli, "build_parser", _parser_raising(error))
    assert cli.main(["boom"]) == code
    err = capsys.readouterr().err
    assert err.splitlines() == [text]


def test_debug_shows_the_traceback(monkeypatch, capsys):
    monkeypatch.setattr(cli, "build_parser",
                        _parser_raising(RuntimeError("deep")))
    assert cli.main(["boom", "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.splitlines()[-1] == "kerascnn boom: failed: RuntimeError: deep"


def test_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as exit:
        cli.main(["train", "--epochs", "zero"])
    assert exit.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kerascnn train: error: ")


def test_split_debug_keeps_arguments_after_double_dash():
    assert cli._split_debug(["train", "--debug", "--", "--debug"]) == (
        ["train", "--", "--debug"], True)
    assert cli._split_debug(["train"]) == (["train"], False)
    assert isinstance(cli.build_parser(), argparse.ArgumentParser)
