"""What every command shares: options, error handling, output consoles and progress."""

import os
import re
import sys
import traceback

import click

from weightkit._options import Real

__all__ = ["debug_option", "unsafe_option", "force_option", "quiet_option", "model_argument",
           "run_cli", "load_model_or_exit", "stdout_console", "stderr_console", "progress_reporter", "progress_lines",
           "note", "metric_option", "threshold_option", "no_space_message", "bias_option"]

_STATE = {"debug": bool(os.environ.get("WEIGHTKIT_DEBUG")), "quiet": False}


def _set_state(key):
    def callback(ctx, param, value):
        if value:
            _STATE[key] = True
        return value

    return callback


def debug_option(function):
    return click.option("--debug", is_flag=True, expose_value=False, is_eager=True,
                        callback=_set_state("debug"),
                        help="Show full tracebacks instead of one-line errors.")(function)


def quiet_option(function):
    return click.option("--quiet", "-q", is_flag=True, expose_value=False,
                        callback=_set_state("quiet"),
                        help="No progress display.")(function)


def unsafe_option(function):
    return click.option("--unsafe", is_flag=True,
                        help="Allow Lambda layers and custom classes to run code while loading. "
                             "Only for files you trust.")(function)


def force_option(function):
    return click.option("--force", is_flag=True, help="Replace an existing output.")(function)


def metric_option(function):
    """``--metric {pearson,mad}`` of the analysis commands (analyze, report)."""
    return click.option("--metric", type=click.Choice(["pearson", "mad"]), default="pearson", show_default=True,
                        help="Similarity that defines a redundant group.")(function)


def threshold_option(function):
    """``--threshold`` of the analysis commands, with each metric's default in its help."""
    return click.option("--threshold", type=Real(), default=None,
                        help="Pearson: minimum r (default 0.9). MAD: maximum fraction of the layer's median MAD "
                             "(default 0.2).")(function)


def bias_option(function):
    """``--include-bias/--exclude-bias``, one default for every command that compares neuron rows: the bias is in.

    Measured on the demo's digits MLP (64-256-256-10, L2 3e-3, 40 epochs; means over seeds 0-2, test accuracy
    0.9777): merging every group with r >= 0.9 removed 102 neurons with the bias in the rows and 47.7 without it,
    both at accuracy 0.9768 and agreement 0.9991; at a 50% ratio 0.9685 against 0.9647, at 70% 0.9563 against
    0.9341. ``--include-bias`` (analyze, report) and ``--exclude-bias`` (merge) keep working.
    """
    return click.option("--include-bias/--exclude-bias", "include_bias", default=True, show_default=True,
                        help="Compare each neuron's weight row with its bias appended, or without it "
                             "(merge's α always uses the bias).")(function)


def model_argument(function):
    # readable=False: the loader says "cannot be read (permission denied); fix its permissions." itself.
    return click.argument("model", type=click.Path(dir_okay=True, readable=False, path_type=str))(function)


def stdout_console():
    from rich.console import Console

    return Console(file=sys.stdout, highlight=False, soft_wrap=False,
                   width=None if sys.stdout.isatty() else 160)


def stderr_console():
    from rich.console import Console

    return Console(file=sys.stderr, highlight=False)


def note(message):
    """One informational line on stderr (suppressed by --quiet)."""
    if not _STATE["quiet"]:
        click.echo(f"weightkit: {message}", err=True)


def load_model_or_exit(path, *, unsafe=False, compile=True, finite=False):
    """Load a model through :func:`weightkit.analysis.load_model`, printing its notes.

    A model without any weights is refused; with ``finite`` (commands that write a model from it)
    so is one with a NaN or Inf weight (see :func:`weightkit.analysis.files.loading.check_model_weights`).
    """
    from weightkit.analysis import load_model
    from weightkit.analysis.files.loading import check_model_weights

    if unsafe:
        click.echo("weightkit: warning: --unsafe: code stored in the model file may run while loading.",
                   err=True)
    loaded = load_model(path, unsafe=unsafe, compile=compile)
    check_model_weights(loaded.model, path, finite=finite)
    for text in loaded.notes:
        note(f"{path}: {text}")
    return loaded


_TEMPORARY = re.compile(r"^\.(.+)\.[0-9a-f]{6}-\d+-[a-z0-9_]{8}\.part(\.[^.]*)?$")


def no_space_message(error):
    """``"PATH: no space left on device"`` when ``error`` (or what caused it) is a full disk, else None.

    Recognises ``OSError`` with ENOSPC / EDQUOT / EFBIG (a file-size limit), and the HDF5 and
    TensorFlow errors that carry only the text (``errno = 28``): :func:`weightkit.analysis.files.io.full_disk_error`.
    A weightkit temporary (``.NAME.HOST-PID-RANDOM.part``) is named by its output.
    """
    from weightkit.analysis.files.io import full_disk_error

    error, code = full_disk_error(error)
    if code is None:
        return None
    path = getattr(error, "filename", None)
    if not path:
        found = re.search(r"(?:filename|name) = '([^']+)'", str(error))
        path = found.group(1) if found else None
    return f"{_output_of(path) if path else 'an output'}: no space left on device ({os.strerror(code).lower()}); " \
           "free space or choose another output folder, nothing was left half-written"


def _output_of(path):
    folder, name = os.path.split(os.fspath(path))
    found = _TEMPORARY.match(name)
    return os.path.join(folder, found.group(1)) if found else os.fspath(path)


class progress_reporter:
    """A rich progress bar on stderr, shown only for a terminal and without --quiet.

    Use as a context manager; call the instance as ``progress(done, total, name)``.
    """

    def __init__(self, description):
        self.description = description
        self._progress = None
        self._task = None

    def __enter__(self):
        if sys.stderr.isatty() and not _STATE["quiet"]:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[item]}"), TimeElapsedColumn(),
                                      console=stderr_console(), transient=True)
            self._progress.__enter__()
            self._task = self._progress.add_task(self.description, total=None, item="")
        return self

    def __call__(self, done, total, name=""):
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=total, item=name)

    def note(self, message):
        """Like :func:`note`, printed above the live bar (a plain write would break its line)."""
        if self._progress is not None:
            self._progress.console.print(f"weightkit: {message}", markup=False, highlight=False)
        else:
            note(message)

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)
        return False


def progress_lines(description, interval=10.0):
    """A live bar on a terminal; plain log lines when stderr is not one (a log file, CI).

    The lines (:class:`weightkit.console.quantize_progress.LogProgress`): one when a step starts and
    one every ``interval`` seconds while it runs, so a long step never leaves a log silent. Nothing
    with ``--quiet``.
    """
    if sys.stderr.isatty():
        return progress_reporter(description)
    from weightkit.console.quantize_progress import LogProgress

    return LogProgress(note, interval=interval)


def _command_name(argv):
    for word in argv:
        if not word.startswith("-"):
            return f"weightkit {word}"
    return "weightkit"


def run_cli(group, argv=None):
    """Run the click group; turn user errors into one line on stderr and exit status 2.

    Returns
    -------
    int
        The exit status: 0 on success, 2 for a user error, 1 for an internal error, 130 when
        interrupted.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    # Flags from an earlier run in the same process (tests, notebooks) must not leak into this one.
    _STATE["debug"] = bool(os.environ.get("WEIGHTKIT_DEBUG")) or "--debug" in argv
    _STATE["quiet"] = False
    prog = _command_name(argv)
    try:
        group.main(args=argv, prog_name="weightkit", standalone_mode=False)
        return 0
    except click.exceptions.Exit as exit_:
        return exit_.exit_code
    except click.exceptions.Abort:
        click.echo(f"{prog}: aborted", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo(f"{prog}: interrupted; no output was left half-written", err=True)
        return 130
    except click.ClickException as error:
        if _STATE["debug"]:
            traceback.print_exc()
        message = " ".join(error.format_message().split())
        click.echo(f"{prog}: error: {message} (see '{prog} --help')", err=True)
        return 2
    except MemoryError:
        click.echo(f"{prog}: error: out of memory; give a smaller model, fewer layers (--layers) or less data "
                   "(--samples, a smaller --data)", err=True)
        return 1
    except Exception as error:  # noqa: BLE001 - last resort: one line, traceback with --debug
        # Imported here, not at the top: `weightkit --help` must not pay for `analysis` (scipy).
        from weightkit.analysis.errors import WeightkitError

        if isinstance(error, WeightkitError):
            if _STATE["debug"]:
                traceback.print_exc()
            click.echo(f"{prog}: error: {error}", err=True)
            return error.exit_code
        full = no_space_message(error)
        if full is not None:
            if _STATE["debug"]:
                traceback.print_exc()
            click.echo(f"{prog}: error: {full}", err=True)
            return 2
        if _STATE["debug"]:
            traceback.print_exc()
        else:
            text = " ".join(str(error).split())[:300]
            click.echo(f"{prog}: internal error: {type(error).__name__}: {text} "
                       "(rerun with --debug for the traceback and report it)", err=True)
        return 1
