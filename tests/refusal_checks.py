"""How a refused command is checked: run it in process, then exit 2, one line, nothing written, inputs unchanged.

Shared by ``test_bad_inputs.py``, ``test_bad_outputs.py`` and ``test_hostile_files.py``; also the careless
numbers every numeric option of every command is given.
"""

import hashlib
import os

from weightkit._common import run_cli
from weightkit.cli import cli


def numeric_options():
    """``{command: [click.Option]}`` of every option that takes a number, over every registered command."""
    import click

    found = {}
    context = click.Context(cli)
    for name in cli.list_commands(context):  # the lazy group imports each command here
        for param in cli.get_command(context, name).params:
            if isinstance(param, click.Option) and isinstance(param.type, (click.types._NumberParamTypeBase,
                                                                            click.types._NumberRangeBase)):
                found.setdefault(name, []).append(param)
    return found


def careless_values(param):
    """Values a careless user types for ``param``: NaN and infinities for a float, out of range for an integer."""
    import click

    if isinstance(param.type, (click.FloatRange, click.types.FloatParamType)):
        return ["nan", "inf", "-inf"]
    low = param.type.min if isinstance(param.type, click.IntRange) and param.type.min is not None else 0
    return [str(low - 1), str(2**70)]


def numeric_option_argv(command, option, value, models, data, out):
    """A valid ``command`` line (writing under ``out``) ending in ``option value`` (its only occurrence)."""
    known = {"demo": ["demo", "-o", os.path.join(out, "demo")]}
    for name in MODEL_COMMANDS + DATA_COMMANDS:
        known.setdefault(name.split()[0], _command_argv(name, models["good"], data["good"], out))
    argv = known.get(command, [command, models["good"], "-o", os.path.join(out, "out.keras")])
    if option in argv:
        index = argv.index(option)
        argv = argv[:index] + argv[index + 2:]
    return [*argv, option, value]


def tree_digest(folder):
    """{relative path: sha256 (or 'dir')} of everything under ``folder``, hidden files included."""
    digest = {}
    for directory, folders, files in os.walk(folder):
        for name in folders:
            digest[os.path.relpath(os.path.join(directory, name), folder)] = "dir"
        for name in files:
            path = os.path.join(directory, name)
            if os.path.islink(path) or not os.path.isfile(path):
                digest[os.path.relpath(path, folder)] = "special"
                continue
            with open(path, "rb") as handle:
                digest[os.path.relpath(path, folder)] = hashlib.sha256(handle.read()).hexdigest()
    return digest


def run(capsys, argv):
    capsys.readouterr()
    status = run_cli(cli, [str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _command_argv(command, model, data, out):
    """The argv of ``command`` on ``model`` (and ``data``), writing under the folder ``out``."""
    return {
        "analyze": ["analyze", model, "--json", os.path.join(out, "a.json")],
        "report": ["report", model, "-o", os.path.join(out, "report")],
        "retrain": ["retrain", model, "--data", data, "-o", os.path.join(out, "r.keras"), "--epochs", "1"],
        "merge": ["merge", model, "-o", os.path.join(out, "m.keras")],
        "merge --data": ["merge", model, "-o", os.path.join(out, "m.keras"), "--data", data],
        "analyze --data": ["analyze", model, "--data", data, "--json", os.path.join(out, "a.json")],
        "quantize": ["quantize", model, "-o", os.path.join(out, "q")],
        "quantize --data": ["quantize", model, "-o", os.path.join(out, "q"), "--data", data,
                            "--modes", "float32,dynamic"],
    }[command]


def check_refused(capsys, argv, out, corpus_root, *, names=(), message=None):
    """Run argv; assert exit 2, one error line naming one of ``names``, no output, corpus unchanged."""
    before_inputs = tree_digest(corpus_root)
    before_out = tree_digest(out)
    status, stdout, err = run(capsys, argv)
    command = f"weightkit {argv[0]}"
    lines = err.splitlines()
    assert status == 2, (status, err)
    assert len(lines) == 1, err
    assert lines[0].startswith(f"{command}: error: "), err
    assert "Traceback" not in err + stdout
    if names:
        assert any(str(name) in lines[0] for name in names), (names, lines[0])
    if message is not None:
        assert lines[0] == f"{command}: error: {message}"
    assert tree_digest(out) == before_out
    assert tree_digest(corpus_root) == before_inputs
    MESSAGES_SEEN[os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]] = lines[0]
    return lines[0]


#: {test id: the error line}: what users see, collected for the README table.
MESSAGES_SEEN = {}


def _root(corpus):
    return os.path.dirname(os.path.dirname(corpus[0]["good"]))


#: The commands that load a model, and those that take --data.
MODEL_COMMANDS = ["analyze", "report", "retrain", "merge", "quantize"]
DATA_COMMANDS = ["retrain", "merge --data", "quantize --data", "analyze --data"]
