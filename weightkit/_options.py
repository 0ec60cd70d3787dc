"""Every numeric command-line option is parsed and validated here, by its type.

Each command declares its numbers with these types, so a careless value (``--seed -1``,
``--seed 2**70``, ``--strength nan``, ``--validation-split nan``, ``--batch-size 2**70``) is refused
by click in one line naming the option and the allowed range, before anything is loaded:

- :class:`Real`: a finite float (NaN and infinities are refused), optionally in a range;
- :class:`Whole`: an integer, optionally in a range, never above :data:`MAX_COUNT` (what
  TensorFlow and numpy take as a size or a count without overflowing);
- :data:`SEED`: an integer from 0 to ``2**32 - 1``, what numpy and Keras accept as a seed.

Ranges that only the library can explain (``merge --ratio``: "the share of each layer's neurons")
are checked there too; the types here make sure such a value is at least a finite number.

:func:`prechecked` wraps every command (the group in :mod:`weightkit.cli` applies it) so that the
paths and ranges a refusal is most often about (the model path, ``--data``, ``--ratio``,
``--max-error``) are checked before the command body imports TensorFlow: such a refusal takes a
fraction of a second instead of the 6 s TensorFlow needs to load.
Nothing here imports more than click at module level; the checks import only TensorFlow-free
modules of :mod:`weightkit.analysis`.
"""

import functools

import math

import click

__all__ = ["MAX_COUNT", "MAX_SEED", "SEED", "Real", "Whole", "precheck", "prechecked", "seed_option"]

#: Largest count or size option (epochs, batch size, samples): a signed 32-bit integer.
MAX_COUNT = 2**31 - 1
#: Largest seed numpy's and Keras' generators take.
MAX_SEED = 2**32 - 1


class Real(click.FloatRange):
    """A finite float, optionally within ``[min, max]`` (either end open with ``min_open`` / ``max_open``).

    Parameters
    ----------
    min, max : float, default=None
        Bounds; None leaves that side unbounded.
    min_open, max_open : bool, default=False
        Exclude the bound itself.

    Examples
    --------
    >>> Real(min=0.0).convert("0.5", None, None)
    0.5
    """

    name = "float"

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            where = self._describe_range()
            wanted = f"a number in the range {where}" if where else "a finite number"
            self.fail(f"{value} is not a finite number; give {wanted}.", param, ctx)
        return number

    def _describe_range(self):
        if self.min is None and self.max is None:
            return ""  # no "[x]" in the help
        return super()._describe_range()

    def __repr__(self):
        return f"Real({self._describe_range() or 'x'})"


class Whole(click.IntRange):
    """An integer, optionally within ``[min, max]``; never above :data:`MAX_COUNT` unless ``max`` says more.

    Parameters
    ----------
    min, max : int, default=None
        Bounds; ``max=None`` still stops at :data:`MAX_COUNT` (a count TensorFlow takes).

    Examples
    --------
    >>> Whole(min=1).convert("32", None, None)
    32
    """

    name = "integer"

    def __init__(self, min=None, max=None, **kwargs):
        super().__init__(min=min, max=max, **kwargs)
        self._ceiling = MAX_COUNT if max is None else None

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if self._ceiling is not None and number > self._ceiling:
            self.fail(f"{value} is too large; give at most {self._ceiling}.", param, ctx)
        return number

    def __repr__(self):
        return f"Whole({self._describe_range()})"


#: A seed: 0 to 2**32 - 1.
SEED = Whole(min=0, max=MAX_SEED)


def seed_option(help_text):
    """``--seed`` (default 0) as every command that draws at random declares it."""
    return click.option("--seed", type=SEED, default=0, show_default=True, help=help_text)


#: Options that are a share between 0 and 1, with what they share (the words of the library's own check).
_SHARES = {
    "ratio": ("--ratio", False, "the share of each layer's neurons to remove), e.g. 0.5."),
    "max_error": ("--max-error", True, "the fraction of each consumer's input variance allowed to be lost), "
                                       "e.g. 0.01."),
}


def precheck(params):
    """Check a command's model path, ``--data`` and shares before anything heavy is imported.

    Parameters
    ----------
    params : dict
        The command's parsed parameters (``ctx.params``): ``model``, ``data``, ``ratio``,
        ``max_error`` and ``modes`` are checked where present and given.

    Raises
    ------
    weightkit.analysis.errors.WeightkitError
        The same line the loaders and the library would give later, naming the path or option.

    Notes
    -----
    A TensorFlow SavedModel folder is left to the command (``quantize`` converts one, the others
    refuse it in their own words).
    """
    from weightkit.analysis.errors import WeightkitError

    model = params.get("model")
    if isinstance(model, str):
        from weightkit.analysis.files.loading import check_model_path

        check_model_path(model)
    data = params.get("data")
    if isinstance(data, str):
        from weightkit.analysis.data.datasets import check_data_spec

        check_data_spec(data)
    for name, (option, closed, what) in _SHARES.items():
        value = params.get(name)
        if value is not None and not (0.0 <= value <= 1.0 if closed else 0.0 < value < 1.0):
            raise WeightkitError(f"{option} {value}: must be between 0 and 1 ({what}")
    modes = params.get("modes")
    if isinstance(modes, str):
        from weightkit.compress.quantize.modes import parse_modes  # the mode names alone: no TensorFlow

        parse_modes(modes)


def prechecked(command):
    """``command`` with :func:`precheck` run on its parameters before its body (applied once).

    Parameters
    ----------
    command : click.Command

    Returns
    -------
    click.Command
        The same object, its callback wrapped.
    """
    if getattr(command.callback, "_prechecked", False):
        return command
    body = command.callback

    @functools.wraps(body)
    def run(*args, **params):
        precheck(params)
        return body(*args, **params)

    run._prechecked = True
    command.callback = run
    return command
