"""``slice_streams``: every residual stream of a model that can be sliced, cut to a width or a share of its energy."""

from weightkit.analysis.data.inputs import as_model
from weightkit.analysis.errors import WeightkitError
from weightkit.compress.stream.find import find_stream, find_streams
from weightkit.compress.stream.slicing import sliced_model, stream_basis

__all__ = ["slice_streams"]


def _width(keep, energy, basis, width):
    if keep is not None:
        return max(1, min(width, int(keep) if isinstance(keep, int) else round(float(keep) * width)))
    return basis.width_keeping(float(energy))


def slice_streams(model, x, *, keep=None, energy=None, unsafe=False):
    """Slice every residual stream of ``model`` that can be (SliceGPT, no fine-tune): see :mod:`.slicing`.

    Parameters
    ----------
    model : keras.Model, str or os.PathLike
        Not modified.
    x : ndarray of shape (n_samples, ...), or a list of them (one per input)
        Inputs whose stream directions choose the rotation (a few hundred training inputs).
    keep : float or int, default=None
        The share of each stream's channels kept (a float in (0, 1]) or the width itself (an int).
    energy : float, default=None
        Instead: the fewest directions that keep this share of the stream's second moment (0.99).
    unsafe : bool, default=False

    Returns
    -------
    model : keras.Model
        Uncompiled; the original when nothing was sliced.
    streams : list of dict
        Per stream: ``joins``, ``width``, ``kept`` and ``energy_kept``, or ``reason`` when it was left alone.

    Raises
    ------
    WeightkitError
        When neither or both of ``keep`` and ``energy`` are given, or they are out of range.
    """
    if (keep is None) == (energy is None):
        raise WeightkitError("slice_streams: give keep (a share of the channels, or a width) or energy, not both.")
    if keep is not None and not (isinstance(keep, int) and keep >= 1 or 0.0 < float(keep) <= 1.0):
        raise WeightkitError(f"keep={keep}: a share in (0, 1] of the stream's channels, or a width of at least 1.")
    if energy is not None and not 0.0 < float(energy) <= 1.0:
        raise WeightkitError(f"energy={energy}: a share of the stream's second moment in (0, 1].")
    current = as_model(model, unsafe=unsafe).model
    done = []
    for stream in find_streams(current):
        if stream.problem:
            done.append({"joins": stream.joins, "width": stream.width, "reason": stream.problem})
            continue
        stream = find_stream(current, stream.joins)  # the model may have changed since: find it again
        basis = stream_basis(current, stream, x)
        width = _width(keep, energy, basis, stream.width)
        if width < stream.width:
            current = sliced_model(current, stream, basis, width)
        done.append({"joins": stream.joins, "width": stream.width, "kept": width, "energy_kept": basis.kept(width)})
    return current, done
